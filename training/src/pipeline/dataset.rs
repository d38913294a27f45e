//! A data set for a workflow: the Hateful Memes layout read from disk, its splits, and
//! the tokenizer (trained on the training texts, or brought along).

use std::path::{Path, PathBuf};

use memeguard_package::TextTokenizer;

use crate::data::{HatefulMemes, ImageCheck, LoadError, Meme, Split};

/// Errors loading data.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{dir} has no `{split}` memes (expected {file})")]
    EmptySplit { dir: String, split: &'static str, file: &'static str },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// Memes by split plus the tokenizer.
pub struct Dataset {
    pub root: PathBuf,
    pub data: HatefulMemes,
    pub tokenizer: TextTokenizer,
}

impl Dataset {
    /// Reads `root`; trains a WordPiece tokenizer of `vocab_size` on the training texts
    /// unless `tokenizer` is given.
    pub fn load(root: &Path, tokenizer: Option<TextTokenizer>, vocab_size: usize) -> Result<Self, DatasetError> {
        let data = HatefulMemes::load(root, ImageCheck::Header)?;
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => {
                let texts: Vec<String> = data.split(Split::Train).iter().map(|m| m.text.clone()).collect();
                if texts.is_empty() {
                    return Err(DatasetError::EmptySplit {
                        dir: root.display().to_string(),
                        split: "train",
                        file: Split::Train.file_name(),
                    });
                }
                TextTokenizer::train_wordpiece(&texts, vocab_size)
                    .map_err(|e| DatasetError::Tokenizer(e.to_string()))?
            }
        };
        Ok(Dataset { root: root.to_path_buf(), data, tokenizer })
    }

    /// The memes of `split`, or an error naming the file that should hold them.
    pub fn split(&self, split: Split) -> Result<Vec<Meme>, DatasetError> {
        let memes = self.data.split(split).to_vec();
        if memes.is_empty() {
            return Err(DatasetError::EmptySplit {
                dir: self.root.display().to_string(),
                split: split.name(),
                file: split.file_name(),
            });
        }
        Ok(memes)
    }

    /// The dev split: `dev_seen`, else `dev_unseen`.
    pub fn dev(&self) -> Result<Vec<Meme>, DatasetError> {
        self.split(Split::DevSeen).or_else(|_| self.split(Split::DevUnseen))
    }

    /// Label counts of a split, for manifests and reports.
    pub fn summary(&self) -> serde_json::Value {
        let mut splits = serde_json::Map::new();
        for split in self.data.splits() {
            let memes = self.data.split(split);
            let hateful = memes.iter().filter(|m| m.label == Some(1)).count();
            let labelled = memes.iter().filter(|m| m.label.is_some()).count();
            splits.insert(
                split.name().into(),
                serde_json::json!({"memes": memes.len(), "labelled": labelled, "hateful": hateful}),
            );
        }
        serde_json::json!({"root": self.root.display().to_string(), "splits": splits, "vocab_size": self.tokenizer.vocab_size()})
    }
}
