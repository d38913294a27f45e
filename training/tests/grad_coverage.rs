//! Every op with a gradient rule has a finite-difference check: each op the registry
//! lists (other than those that pass no gradient at all) must be named, as a string
//! literal such as `"Gather"`, in one of the `tests/grad_*.rs` files, which check
//! their rules against finite differences. This catches a rule added without a test;
//! it cannot tell a thorough test from a thin one.

use std::path::Path;

use memeguard_training::autodiff::rules::nondiff::NO_GRADIENT;
use memeguard_training::autodiff::supported_ops;

/// The source of every `tests/grad_*.rs` file but this one.
fn grad_test_sources() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut text = String::new();
    for entry in std::fs::read_dir(&dir).expect("the tests folder") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("grad_") && name.ends_with(".rs") && name != "grad_coverage.rs" {
            text.push_str(&std::fs::read_to_string(&path).expect("a readable test file"));
        }
    }
    text
}

#[test]
fn every_gradient_rule_has_a_finite_difference_check() {
    let sources = grad_test_sources();
    let unchecked: Vec<&str> = supported_ops()
        .into_iter()
        .filter(|op| !NO_GRADIENT.contains(op))
        .filter(|op| !sources.contains(&format!("\"{op}\"")))
        .collect();
    assert!(unchecked.is_empty(), "gradient rules without a finite-difference check in tests/grad_*.rs: {unchecked:?}");
}

#[test]
fn the_no_gradient_list_only_names_registered_ops() {
    let ops = supported_ops();
    let stray: Vec<&&str> = NO_GRADIENT.iter().filter(|op| !ops.contains(op)).collect();
    assert!(stray.is_empty(), "{stray:?}");
}
