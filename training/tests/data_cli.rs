//! `memeguard-train synth` as a user runs it.

use std::process::Command;

fn train() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memeguard-train"))
}

#[test]
fn synth_writes_the_layout_and_reports_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let run = train()
        .args(["synth", "--out", out.to_str().unwrap(), "--train", "8", "--dev", "2", "--test", "2", "--size", "24"])
        .args(["--seed", "3", "--difficulty", "hard", "--concepts", "2", "--threads", "2"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("train.jsonl: 8 memes, 4 labelled hateful"), "{stdout}");
    assert_eq!(std::fs::read_dir(out.join("img")).unwrap().count(), 12);
    let description: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("synth.json")).unwrap()).unwrap();
    assert_eq!(description["config"]["concepts"], 2);
    assert_eq!(description["hateful_pairs"].as_array().unwrap().len(), 2);

    // Writing over it needs --force.
    let again = train().args(["synth", "--out", out.to_str().unwrap(), "--train", "1"]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn synth_refuses_bad_options_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let run = train().args(["synth", "--out", dir.path().to_str().unwrap(), "--concepts", "3"]).output().unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("even number from 2 to 6"));
    let help = train().args(["synth", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("benign-confounder"));
}
