//! Training data: the Hateful Memes reader, the synthetic meme generator, augmentations and the loader.
