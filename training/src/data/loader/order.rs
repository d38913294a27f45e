//! The order in which an epoch visits the samples: as stored, shuffled, or class-balanced.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::seed::{Stream, rng_for};

/// How an epoch picks its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Every sample once, in stored order (evaluation).
    Sequential,
    /// Every sample once, in a new random order each epoch.
    #[default]
    Shuffle,
    /// Half the slots from each class, so batches are balanced on average whatever the
    /// class ratio: each class's samples are drawn without replacement, reshuffled and
    /// reused when the class runs out (the minority class repeats within an epoch).
    ClassBalanced,
}

/// The dataset indices of one epoch, `len` of them (`len` is the data set size for
/// `Sequential` and `Shuffle`). `labels` is needed only for `ClassBalanced`, where both
/// classes must be non-empty (the loader checks this when it is built).
pub fn epoch_order(sampling: Sampling, seed: u64, epoch: u64, labels: &[Option<u8>], len: usize) -> Vec<usize> {
    let mut rng = rng_for(seed, Stream::EpochOrder, &[epoch]);
    match sampling {
        Sampling::Sequential => (0..labels.len()).collect(),
        Sampling::Shuffle => {
            let mut order: Vec<usize> = (0..labels.len()).collect();
            order.shuffle(&mut rng);
            order
        }
        Sampling::ClassBalanced => {
            let classes: [Vec<usize>; 2] =
                [0, 1].map(|c| (0..labels.len()).filter(|&i| labels[i] == Some(c)).collect());
            // Which class each slot takes: exactly half each (the odd slot to class 1).
            let mut slots: Vec<usize> = (0..len).map(|i| usize::from(i >= len / 2)).collect();
            slots.shuffle(&mut rng);
            let mut pools: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
            slots
                .into_iter()
                .map(|class| {
                    if pools[class].is_empty() {
                        pools[class] = classes[class].clone();
                        pools[class].shuffle(&mut rng);
                    }
                    pools[class].pop().expect("the loader refuses an empty class")
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation_that_changes_with_the_epoch() {
        let labels = vec![None; 50];
        let a = epoch_order(Sampling::Shuffle, 1, 0, &labels, 50);
        let b = epoch_order(Sampling::Shuffle, 1, 1, &labels, 50);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(a, b);
        assert_eq!(a, epoch_order(Sampling::Shuffle, 1, 0, &labels, 50));
        assert_eq!(epoch_order(Sampling::Sequential, 1, 3, &labels, 50), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn class_balanced_gives_half_of_each_class_from_a_skewed_set() {
        // 90 negatives, 10 positives.
        let labels: Vec<Option<u8>> = (0..100).map(|i| Some(u8::from(i % 10 == 0))).collect();
        let order = epoch_order(Sampling::ClassBalanced, 5, 0, &labels, 100);
        assert_eq!(order.len(), 100);
        let positives = order.iter().filter(|&&i| labels[i] == Some(1)).count();
        assert_eq!(positives, 50);
        // Positives are reused evenly: each of the 10 appears 5 times.
        for p in (0..100).step_by(10) {
            assert_eq!(order.iter().filter(|&&i| i == p).count(), 5);
        }
    }
}
