//! A model package on disk: `manifest.json` + `model.onnx` + `tokenizer.json` in one
//! directory. [`ModelPackage::open`] validates everything before anything runs;
//! [`write_package`] writes a complete package or nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{check_model, decode_model, encode_model};
use sha2::{Digest, Sha256};

use crate::contract::{contract_problems, default_opset};
use crate::manifest::{MANIFEST_FILE, MANIFEST_FORMAT_VERSION, MODEL_FILE, Manifest, ManifestError, TOKENIZER_FILE};
use crate::tokenizer::{TextTokenizer, TokenizerError};

/// Why a package was refused or could not be written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("model package {} does not exist or is not a directory", .dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("model package {}: {file} is missing", .dir.display())]
    MissingFile { dir: PathBuf, file: String },
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} {source}", .path.display())]
    Manifest { path: PathBuf, source: ManifestError },
    #[error(
        "{} has sha256 {actual}, but manifest.json records {expected}: the file was changed or damaged after packaging",
        .path.display()
    )]
    ChecksumMismatch { path: PathBuf, expected: String, actual: String },
    #[error("{} is not a valid ONNX model: {message}", .path.display())]
    ModelDecode { path: PathBuf, message: String },
    #[error("{} fails the ONNX checks:\n  {}", .path.display(), .problems.join("\n  "))]
    ModelInvalid { path: PathBuf, problems: Vec<String> },
    #[error("{} does not obey the model package contract:\n  {}", .path.display(), .problems.join("\n  "))]
    ModelContract { path: PathBuf, problems: Vec<String> },
    #[error("{} {source}", .path.display())]
    Tokenizer { path: PathBuf, source: TokenizerError },
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("model package {} already exists: a version is never overwritten, choose a new version", .dir.display())]
    AlreadyExists { dir: PathBuf },
}

/// A validated package. It holds the manifest and the tokenizer, not the model's
/// weights: sessions are built from `model.onnx` on disk ([`ModelPackage::model_path`]),
/// so a served model's weights live once in memory, in ONNX Runtime. Package versions
/// are written once and never modified, which is what makes reading the file again safe.
#[derive(Clone)]
pub struct ModelPackage {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub tokenizer: TextTokenizer,
}

impl std::fmt::Debug for ModelPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelPackage").field("dir", &self.dir).field("id", &self.id()).finish_non_exhaustive()
    }
}

impl ModelPackage {
    /// Reads and validates the package in `dir`: the manifest parses and has a format
    /// version this build reads; every listed file is present with the recorded sha256;
    /// `model.onnx` decodes, passes the structural checks, matches the manifest's opset
    /// and IR version and declares the contract's inputs and outputs; `tokenizer.json` loads.
    pub fn open(dir: &Path) -> Result<ModelPackage, PackageError> {
        if !dir.is_dir() {
            return Err(PackageError::NotADirectory { dir: dir.to_path_buf() });
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest_text = String::from_utf8(read(dir, MANIFEST_FILE)?).map_err(|_| PackageError::Manifest {
            path: manifest_path.clone(),
            source: ManifestError::Malformed("it is not UTF-8 text".into()),
        })?;
        let manifest = Manifest::parse(&manifest_text)
            .map_err(|source| PackageError::Manifest { path: manifest_path.clone(), source })?;

        // Every listed file must exist before any is hashed, so "missing" wins over "changed".
        let mut contents = Vec::new();
        for name in manifest.files.keys() {
            contents.push((name, read(dir, name)?));
        }
        for (name, bytes) in &contents {
            let actual = sha256_hex(bytes);
            let expected = &manifest.files[*name];
            if &actual != expected {
                return Err(PackageError::ChecksumMismatch {
                    path: dir.join(name),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let mut take = |file: &str| {
            let at = contents.iter().position(|(n, _)| n.as_str() == file).expect("listed");
            contents.swap_remove(at).1
        };
        let model_bytes = take(MODEL_FILE);
        let tokenizer_bytes = take(TOKENIZER_FILE);
        drop(contents);

        let model_path = dir.join(MODEL_FILE);
        let model = decode_model(&model_bytes, MODEL_FILE)
            .map_err(|e| PackageError::ModelDecode { path: model_path.clone(), message: e.to_string() })?;
        // The bytes are not kept: one copy of the weights (the decoded graph) while checking.
        drop(model_bytes);
        if let Err(e) = check_model(&model, false) {
            return Err(PackageError::ModelInvalid { path: model_path, problems: e.problems });
        }
        let mut problems = contract_problems(&model, manifest.image.size, manifest.text.max_length);
        if default_opset(&model) != Some(manifest.opset) || model.ir_version != Some(manifest.ir_version) {
            problems.push(format!(
                "the model has opset {:?} and IR version {:?}, but manifest.json records opset {} and IR version {}",
                default_opset(&model),
                model.ir_version,
                manifest.opset,
                manifest.ir_version
            ));
        }
        if !problems.is_empty() {
            return Err(PackageError::ModelContract { path: model_path, problems });
        }

        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer_text = String::from_utf8(tokenizer_bytes).map_err(|_| PackageError::Tokenizer {
            path: tokenizer_path.clone(),
            source: TokenizerError::Parse("it is not UTF-8 text".into()),
        })?;
        let tokenizer = TextTokenizer::from_json(&tokenizer_text)
            .map_err(|source| PackageError::Tokenizer { path: tokenizer_path, source })?;

        drop(model);
        Ok(ModelPackage { dir: dir.to_path_buf(), manifest, tokenizer })
    }

    /// Where `model.onnx` is (sessions are built from this file).
    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    /// `model.onnx`'s bytes, read again and checked against the manifest's sha256.
    pub fn model_bytes(&self) -> Result<Vec<u8>, PackageError> {
        let bytes = read(&self.dir, MODEL_FILE)?;
        let actual = sha256_hex(&bytes);
        let expected = &self.manifest.files[MODEL_FILE];
        if &actual != expected {
            return Err(PackageError::ChecksumMismatch { path: self.model_path(), expected: expected.clone(), actual });
        }
        Ok(bytes)
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        self.manifest.id()
    }

    /// The forward graph, read and decoded again (it was validated by `open`).
    pub fn model(&self) -> Result<ModelProto, PackageError> {
        decode_model(&self.model_bytes()?, MODEL_FILE)
            .map_err(|e| PackageError::ModelDecode { path: self.model_path(), message: e.to_string() })
    }
}

/// Writes a package into `dir` (which must not exist yet) and opens it back.
///
/// Stamps `manifest` with this build's `format_version`, the model's opset and IR
/// version and the sha256 of each file. Everything is written into a temporary
/// sibling directory, validated there, then renamed into place: a reader never sees
/// a half-written package, and a package that would not open is never written.
pub fn write_package(
    dir: &Path,
    mut manifest: Manifest,
    model: &ModelProto,
    tokenizer: &TextTokenizer,
) -> Result<ModelPackage, PackageError> {
    if dir.exists() {
        return Err(PackageError::AlreadyExists { dir: dir.to_path_buf() });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|source| PackageError::Write { path: parent.clone(), source })?;
    let staging = tempfile::Builder::new()
        .prefix(".memeguard-package-")
        .tempdir_in(&parent)
        .map_err(|source| PackageError::Write { path: parent.clone(), source })?;

    let model_bytes = encode_model(model);
    let tokenizer_json = tokenizer.to_json();
    manifest.format_version = MANIFEST_FORMAT_VERSION;
    manifest.opset = default_opset(model).unwrap_or(0);
    manifest.ir_version = model.ir_version.unwrap_or(0);
    manifest.files.clear();
    manifest.files.insert(MODEL_FILE.into(), sha256_hex(&model_bytes));
    manifest.files.insert(TOKENIZER_FILE.into(), sha256_hex(tokenizer_json.as_bytes()));

    write_synced(&staging.path().join(MODEL_FILE), &model_bytes)?;
    write_synced(&staging.path().join(TOKENIZER_FILE), tokenizer_json.as_bytes())?;
    write_synced(&staging.path().join(MANIFEST_FILE), manifest.to_json().as_bytes())?;
    let mut package = ModelPackage::open(staging.path())?;

    let staged = staging.keep();
    if let Err(source) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(PackageError::Write { path: dir.to_path_buf(), source });
    }
    package.dir = dir.to_path_buf();
    Ok(package)
}

/// Lowercase hex sha256 of `bytes`, as recorded in [`Manifest::files`].
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read(dir: &Path, file: &str) -> Result<Vec<u8>, PackageError> {
    let path = dir.join(file);
    std::fs::read(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => PackageError::MissingFile { dir: dir.to_path_buf(), file: file.to_string() },
        _ => PackageError::Read { path, source },
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    let err = |source| PackageError::Write { path: path.to_path_buf(), source };
    let mut file = std::fs::File::create(path).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}
