//! A deterministic WordPiece vocabulary trainer.
//!
//! The `tokenizers` crate's own `WordPieceTrainer` numbers symbols in hash-map order
//! and breaks ties between equally frequent merges by those numbers, so two runs on
//! the same texts give different vocabularies. This trainer does the same BPE-style
//! procedure (merge the most frequent adjacent pair, `##` marks a continuation) with
//! every tie broken by the tokens' text, so the vocabulary is a function of the texts.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

/// The prefix of a token that continues a word.
pub const CONTINUATION: &str = "##";

/// Vocabulary from `words` (pre-tokenised, normalised words with their counts): the
/// `special` tokens first (ids 0..), then every character seen, both as a word start
/// and as `##` continuation (sorted), then merged tokens in merge order until
/// `vocab_size` tokens exist or no pair occurs `min_frequency` times.
pub fn train_vocab(
    words: &BTreeMap<String, u64>,
    special: &[&str],
    vocab_size: usize,
    min_frequency: u64,
) -> Vec<String> {
    let mut table = SymbolTable::default();
    for s in special {
        table.intern(s);
    }
    let alphabet: BTreeSet<char> = words.keys().flat_map(|w| w.chars()).collect();
    for c in &alphabet {
        table.intern(&c.to_string());
    }
    for c in &alphabet {
        table.intern(&format!("{CONTINUATION}{c}"));
    }

    let mut corpus: Vec<(Vec<u32>, u64)> = words
        .iter()
        .map(|(w, &n)| {
            let symbols = w
                .chars()
                .enumerate()
                .map(|(i, c)| table.id(&if i == 0 { c.to_string() } else { format!("{CONTINUATION}{c}") }))
                .collect();
            (symbols, n)
        })
        .collect();

    let mut pair_counts: HashMap<(u32, u32), u64> = HashMap::new();
    let mut pair_words: HashMap<(u32, u32), BTreeSet<usize>> = HashMap::new();
    for (index, (symbols, n)) in corpus.iter().enumerate() {
        for pair in symbols.windows(2).map(|p| (p[0], p[1])) {
            *pair_counts.entry(pair).or_default() += n;
            pair_words.entry(pair).or_default().insert(index);
        }
    }
    let mut queue: BinaryHeap<Candidate> =
        pair_counts.iter().map(|(&pair, &count)| Candidate::new(&table, pair, count)).collect();

    while table.len() < vocab_size {
        let Some(best) = queue.pop() else { break };
        let current = pair_counts.get(&best.pair).copied().unwrap_or(0);
        if current != best.count {
            // Stale entry: the pair's count changed after it was queued.
            if current > 0 {
                queue.push(Candidate::new(&table, best.pair, current));
            }
            continue;
        }
        if best.count < min_frequency.max(1) {
            break;
        }
        let merged =
            table.intern(&format!("{}{}", best.left, best.right.strip_prefix(CONTINUATION).unwrap_or(&best.right)));
        let mut changed: BTreeSet<(u32, u32)> = BTreeSet::new();
        for index in pair_words.remove(&best.pair).unwrap_or_default() {
            let (symbols, n) = &mut corpus[index];
            for pair in symbols.windows(2).map(|p| (p[0], p[1])) {
                let count = pair_counts.get_mut(&pair).expect("counted");
                *count -= *n;
                changed.insert(pair);
            }
            *symbols = merge_pair(symbols, best.pair, merged);
            for pair in symbols.windows(2).map(|p| (p[0], p[1])) {
                *pair_counts.entry(pair).or_default() += *n;
                pair_words.entry(pair).or_default().insert(index);
                changed.insert(pair);
            }
        }
        pair_counts.remove(&best.pair);
        for pair in changed {
            if let Some(&count) = pair_counts.get(&pair).filter(|&&c| c > 0) {
                queue.push(Candidate::new(&table, pair, count));
            }
        }
    }
    table.tokens
}

/// `symbols` with every non-overlapping occurrence of `pair`, left to right, replaced.
fn merge_pair(symbols: &[u32], pair: (u32, u32), merged: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(symbols.len());
    let mut i = 0;
    while i < symbols.len() {
        if i + 1 < symbols.len() && (symbols[i], symbols[i + 1]) == pair {
            out.push(merged);
            i += 2;
        } else {
            out.push(symbols[i]);
            i += 1;
        }
    }
    out
}

#[derive(Default)]
struct SymbolTable {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl SymbolTable {
    fn intern(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.ids.get(token) {
            return id;
        }
        let id = self.tokens.len() as u32;
        self.tokens.push(token.to_string());
        self.ids.insert(token.to_string(), id);
        id
    }

    fn id(&self, token: &str) -> u32 {
        self.ids[token]
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// A pair to merge: higher count first, then the smaller (left, right) text.
#[derive(PartialEq, Eq)]
struct Candidate {
    count: u64,
    left: String,
    right: String,
    pair: (u32, u32),
}

impl Candidate {
    fn new(table: &SymbolTable, pair: (u32, u32), count: u64) -> Self {
        Candidate {
            count,
            left: table.tokens[pair.0 as usize].clone(),
            right: table.tokens[pair.1 as usize].clone(),
            pair,
        }
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.count.cmp(&other.count).then_with(|| (&other.left, &other.right).cmp(&(&self.left, &self.right)))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
        list.iter().map(|(w, n)| (w.to_string(), *n)).collect()
    }

    #[test]
    fn merges_the_most_frequent_pair_first_and_ties_by_text() {
        // Pairs: (l,##o) 7, (##o,##w) 7, (##w,##e) 2, (##e,##r) 2; `#` sorts before letters,
        // so (##o,##w) wins the first tie and (##e,##r) the second.
        let vocab = train_vocab(&words(&[("low", 5), ("lower", 2)]), &["[UNK]"], 16, 1);
        let alphabet = ["e", "l", "o", "r", "w", "##e", "##l", "##o", "##r", "##w"];
        assert_eq!(&vocab[..11], [&["[UNK]"][..], &alphabet[..]].concat().as_slice());
        assert_eq!(&vocab[11..], ["##ow", "low", "##er", "lower"]);
    }

    #[test]
    fn stops_at_min_frequency_and_vocab_size() {
        let w = words(&[("ab", 1), ("cd", 3)]);
        assert_eq!(train_vocab(&w, &[], 100, 2).last().unwrap(), "cd");
        assert_eq!(train_vocab(&w, &[], 9, 1).len(), 9);
        assert!(!train_vocab(&w, &[], 100, 4).contains(&"cd".to_string()));
    }

    #[test]
    fn overlapping_pairs_merge_left_to_right() {
        assert_eq!(merge_pair(&[1, 1, 1], (1, 1), 9), vec![9, 1]);
        assert_eq!(merge_pair(&[1, 2, 1, 2], (1, 2), 9), vec![9, 9]);
    }
}
