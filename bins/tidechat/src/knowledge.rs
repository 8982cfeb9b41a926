//! `tidechat doc …`: knowledge documents from the command line.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use tidechat_engine::{DocumentUpload, Engine};

#[derive(Subcommand)]
pub enum DocCommand {
    /// Import documents (Markdown, HTML, plain text, PDF; by file extension),
    /// each split into chunks, embedded when an embedding model is set up,
    /// and searched with the FAQ from then on.
    Import {
        #[arg(long)]
        org: String,
        /// Title of the document (one file only); default: its own title or the file name.
        #[arg(long)]
        title: Option<String>,
        /// Sub-organization inside the tenant (narrows FAQ chat searches).
        #[arg(long)]
        organization_id: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List an organization's documents (JSON lines).
    List {
        #[arg(long)]
        org: String,
    },
}

pub async fn run(engine: &Engine, command: DocCommand) -> Result<()> {
    match command {
        DocCommand::Import {
            org,
            title,
            organization_id,
            files,
        } => {
            if title.is_some() && files.len() > 1 {
                anyhow::bail!("--title names one document: import one file with it");
            }
            let (org_id, ws) = engine.org_workspace(&org).await?;
            let total = files.len();
            for (i, file) in files.into_iter().enumerate() {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let started = Instant::now();
                let label = format!("[{}/{total}] {name}", i + 1);
                let progress = {
                    let label = label.clone();
                    move |done: usize, chunks: usize| {
                        eprint!("\r{label}: embedding {done}/{chunks} chunks");
                        let _ = std::io::stderr().flush();
                    }
                };
                eprint!("{label}: extracting");
                let upload = DocumentUpload {
                    title: title.clone(),
                    format: None,
                    file_name: Some(name.clone()),
                    content_type: None,
                    organization_id: organization_id.clone(),
                    bytes,
                };
                let document = engine
                    .create_document_in(&org_id, &ws, upload, Some(&progress))
                    .await
                    .with_context(|| format!("importing {}", file.display()))?;
                eprintln!(
                    "\r{label}: {} ({}), {} chunks, {} characters, {:.1} s",
                    document.id,
                    document.format.as_str(),
                    document.chunk_count,
                    document.chars,
                    started.elapsed().as_secs_f64()
                );
            }
            if engine.embedder().is_none() {
                eprintln!("no embedding model is set up: these documents are searched lexically (see `tidechat models install`)");
            }
            Ok(())
        }
        DocCommand::List { org } => {
            let (org_id, _) = engine.org_workspace(&org).await?;
            for d in engine.documents_of(&org_id).await? {
                println!(
                    "{}",
                    serde_json::json!({"documentId": d.id.as_str(), "title": d.title,
                        "format": d.format.as_str(), "chunkCount": d.chunk_count, "chars": d.chars})
                );
            }
            Ok(())
        }
    }
}
