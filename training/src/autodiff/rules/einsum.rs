//! Einsum. The output is multilinear in the operands, so the gradient of operand k is
//! itself an Einsum: `GO` contracted with the other operands into operand k's labels
//! (`ij,jk->ik` gives `ik,jk->ij` and `ij,ik->jk`). A label summed within operand k
//! alone (`ij->i`) is left out of that Einsum and broadcast back after; a label twice
//! in one operand (a diagonal or trace, `ii->i`) is refused, naming the equation. Ellipsis dims may broadcast between operands: the result is summed
//! back to the operand's shape.

use std::collections::HashMap;

use memeguard_onnx::Attr;

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Einsum", einsum);
}

/// One operand's or the output's labels, `'.'` standing for an ellipsis.
fn labels(term: &str) -> Vec<char> {
    term.replace("...", ".").chars().collect()
}

/// The operands' terms and the output's, the implicit output spelled out: the labels
/// that appear once, sorted, after the ellipsis if there is one.
fn parse(equation: &str) -> Option<(Vec<Vec<char>>, Vec<char>)> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<Vec<char>> = lhs.split(',').map(labels).collect();
    if terms.iter().flatten().any(|&ch| ch != '.' && !ch.is_ascii_alphabetic()) {
        return None;
    }
    let output = match rhs {
        Some(r) => labels(&r),
        None => {
            let mut counts: HashMap<char, usize> = HashMap::new();
            for &ch in terms.iter().flatten().filter(|&&ch| ch != '.') {
                *counts.entry(ch).or_default() += 1;
            }
            let mut once: Vec<char> = counts.into_iter().filter(|&(_, n)| n == 1).map(|(ch, _)| ch).collect();
            once.sort_unstable();
            if terms.iter().flatten().any(|&ch| ch == '.') {
                once.insert(0, '.');
            }
            once
        }
    };
    Some((terms, output))
}

fn spell(term: &[char]) -> String {
    term.iter().map(|&ch| if ch == '.' { "...".to_string() } else { ch.to_string() }).collect()
}

fn einsum(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let equation = c.attr_str("equation").unwrap_or_default();
    let (terms, output) =
        parse(&equation).ok_or_else(|| c.unsupported(format!("cannot read the equation `{equation}`")))?;
    if terms.len() != c.num_inputs() {
        return Err(c.unsupported(format!("equation `{equation}` names {} operands", terms.len())));
    }
    for k in 0..terms.len() {
        if !c.needs_grad(k) {
            continue;
        }
        let term = &terms[k];
        if term.iter().enumerate().any(|(i, ch)| term[..i].contains(ch)) {
            return Err(c.unsupported(format!(
                "equation `{equation}`: operand {k} ({}) has a label twice (a diagonal)",
                spell(term)
            )));
        }
        // Labels summed within this operand alone: the gradient is computed without them
        // and broadcast along them after.
        let alone =
            |ch: &char| !output.contains(ch) && !terms.iter().enumerate().any(|(j, t)| j != k && t.contains(ch));
        let kept: Vec<char> = term.iter().copied().filter(|ch| !alone(ch)).collect();
        let mut inputs = vec![g.clone()];
        let mut spec = vec![spell(&output)];
        for (j, t) in terms.iter().enumerate().filter(|&(j, _)| j != k) {
            inputs.push(c.input(j).to_string());
            spec.push(spell(t));
        }
        // An operand without the ellipsis that others have: ONNX Runtime wants the
        // ellipsis in the output, so it is kept there and summed away after.
        let sum_ellipsis = output.contains(&'.') && !term.contains(&'.');
        let target = if sum_ellipsis { format!("...{}", spell(&kept)) } else { spell(&kept) };
        let gi = if inputs.len() == 1 && spec[0] == target {
            g.clone()
        } else {
            let grad_equation = format!("{}->{target}", spec.join(","));
            let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            c.op("Einsum", &refs, &[("equation", Attr::Str(grad_equation))])
        };
        let operand = c.input(k).to_string();
        let gi = if sum_ellipsis {
            let ellipsis_rank = ellipsis_rank(c, &terms)
                .ok_or_else(|| c.unsupported(format!("equation `{equation}`: the operands' ranks must be known")))?;
            if ellipsis_rank == 0 { gi } else { c.reduce_sum(&gi, &(0..ellipsis_rank).collect::<Vec<_>>(), false) }
        } else {
            gi
        };
        let gi = if kept.len() < term.len() {
            // Axes of the summed labels in the operand: from the front before an
            // ellipsis, from the end after it.
            let dots = term.iter().position(|&ch| ch == '.');
            let axes: Vec<i64> = (0..term.len())
                .filter(|&p| alone(&term[p]))
                .map(|p| match dots {
                    Some(d) if p > d => p as i64 - term.len() as i64,
                    _ => p as i64,
                })
                .collect();
            let axes = c.const_i64s(&axes);
            let gi = c.op("Unsqueeze", &[&gi, &axes], &[]);
            let shape = c.shape_of(&operand);
            c.op("Expand", &[&gi, &shape], &[])
        } else {
            gi
        };
        let gi = if term.contains(&'.') { c.unbroadcast(&gi, &operand) } else { gi };
        c.set_grad(k, gi);
    }
    Ok(())
}

/// How many dims the ellipsis stands for in the output: the most any operand gives it.
fn ellipsis_rank(c: &RuleCtx, terms: &[Vec<char>]) -> Option<i64> {
    let mut most = 0;
    for (j, t) in terms.iter().enumerate().filter(|(_, t)| t.contains(&'.')) {
        let rank = c.rank(c.input(j))? as i64;
        most = most.max(rank - (t.len() as i64 - 1));
    }
    Some(most)
}
