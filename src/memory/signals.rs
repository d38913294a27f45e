//! The signals of one decision, computed on the scoring path and stored with it: the
//! image's sha256 (already in the log), its PDQ hash and quality, the normalised text's
//! sha256, and the package's embeddings where it has them.

use image::RgbImage;
use memeguard_package::package::sha256_hex;
use unicode_normalization::UnicodeNormalization;

use super::pdq::{PdqHash, pdq_hash};

/// Pictures larger than this on either side are shrunk (aspect kept) before PDQ: the hash
/// depends on coarse structure only, and full-size filtering of a 40-megapixel upload
/// would cost more than scoring it.
const PDQ_MAX_SIDE: u32 = 512;

/// What a decision is matched on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub image_sha256: Option<String>,
    pub pdq: Option<PdqHash>,
    /// PDQ's quality (0..=100); hashes below [`super::PDQ_MIN_QUALITY`] are not matched.
    pub pdq_quality: Option<u32>,
    /// sha256 of [`normalise_text`] of the scored text.
    pub text_norm_sha256: String,
    /// `image_embedding` ⊕ `text_embedding`, each L2-normalised, then the whole
    /// L2-normalised; `None` when the package has no embedding outputs.
    pub embedding: Option<Vec<f32>>,
}

/// The text as matched: Unicode NFKC (so full-width letters, ligatures and the like fold
/// to their plain forms), lower-cased, every character that is neither a letter, a digit
/// nor white space dropped (punctuation, symbols, emoji), runs of white space collapsed to
/// one space, and the ends trimmed. "Hello,  WORLD!" and "hello world" are the same text.
pub fn normalise_text(text: &str) -> String {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).collect();
    let kept: String = folded.chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// sha256 (hex) of [`normalise_text`].
pub fn text_norm_sha256(text: &str) -> String {
    sha256_hex(normalise_text(text).as_bytes())
}

/// PDQ hash and quality of a decoded picture (shrunk first when large).
pub fn picture_pdq(image: &RgbImage) -> (PdqHash, u32) {
    if image.width() > PDQ_MAX_SIDE || image.height() > PDQ_MAX_SIDE {
        let scale = f64::from(PDQ_MAX_SIDE) / f64::from(image.width().max(image.height()));
        let w = ((f64::from(image.width()) * scale).round() as u32).max(1);
        let h = ((f64::from(image.height()) * scale).round() as u32).max(1);
        pdq_hash(&image::imageops::thumbnail(image, w, h))
    } else {
        pdq_hash(image)
    }
}

/// The joint embedding: each part L2-normalised, concatenated, then normalised again
/// (so image and text weigh the same and a dot product is a cosine similarity).
pub fn joint_embedding(image: Option<&[f32]>, text: Option<&[f32]>) -> Option<Vec<f32>> {
    if image.is_none() && text.is_none() {
        return None;
    }
    let mut joint = Vec::new();
    for part in [image, text].into_iter().flatten() {
        let norm = part.iter().map(|v| v * v).sum::<f32>().sqrt();
        joint.extend(part.iter().map(|v| if norm > 0.0 { v / norm } else { 0.0 }));
    }
    let norm = joint.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    joint.iter_mut().for_each(|v| *v /= norm);
    Some(joint)
}

/// An embedding as stored (little-endian f32s).
pub fn embedding_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// [`embedding_to_bytes`] read back; `None` for a length that is not whole f32s.
pub fn embedding_from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_folds_case_width_punctuation_and_space() {
        assert_eq!(normalise_text("  Hello,\t WORLD!! "), "hello world");
        assert_eq!(normalise_text("ＨＥＬＬＯ ﬁne"), "hello fine");
        assert_eq!(normalise_text("don't — stop…"), "dont stop");
        assert_eq!(normalise_text("Ça   va? 😀"), "ça va");
        assert_eq!(text_norm_sha256("A b."), text_norm_sha256("a   B"));
        assert_ne!(text_norm_sha256("a b"), text_norm_sha256("ab"));
    }

    #[test]
    fn the_joint_embedding_is_unit_length_and_weighs_parts_equally() {
        let j = joint_embedding(Some(&[3.0, 4.0]), Some(&[0.0, 10.0])).unwrap();
        let norm: f32 = j.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
        let h = 1.0 / 2f32.sqrt();
        let want = [0.6 * h, 0.8 * h, 0.0, h];
        assert!(j.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{j:?}");
        assert!(joint_embedding(None, None).is_none());
        assert_eq!(embedding_from_bytes(&embedding_to_bytes(&j)).unwrap(), j);
    }
}
