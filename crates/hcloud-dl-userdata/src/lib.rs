//! `hcloud-dl-userdata`: fetch `userdata` and write `/etc/hcloud-userdata` (0600) with exactly
//! the bytes served: binary-safe, never decoded, never executed. HTTP 204, 404 or an empty 200
//! mean "no user data" and give an empty file. A failed fetch never touches the previous file.

pub mod cli;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use hcloud_metadata::fetch::{DownloadArgs, Rejection};
use hcloud_metadata::{WriteOptions, WriteOutcome, write_atomic};

pub struct Options {
    pub download: DownloadArgs,
    /// The user data path, resolved under the root.
    pub output: PathBuf,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Written(usize),
    Unchanged(usize),
    Printed(usize),
}

/// Map a final reply to the user data bytes.
pub fn accept(status: u16, body: Vec<u8>) -> Result<Vec<u8>, Rejection> {
    match status {
        200..=203 | 205..=299 => Ok(body),
        204 | 404 => Ok(Vec::new()),
        other => Err(Rejection::Fatal(format!("HTTP {other}"))),
    }
}

pub fn run(opts: &Options) -> anyhow::Result<Outcome> {
    let fetcher = opts.download.fetcher()?;
    let data = fetcher
        .get("userdata", |reply| accept(reply.status, reply.body))
        .with_context(|| {
            format!(
                "no user data fetched; {} was left as it was",
                opts.output.display()
            )
        })?;
    if opts.download.stdout {
        std::io::stdout()
            .write_all(&data)
            .context("writing to stdout")?;
        return Ok(Outcome::Printed(data.len()));
    }
    if let Some(dir) = opts.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let outcome = write_atomic(&opts.output, &data, WriteOptions::mode(0o600))
        .with_context(|| format!("cannot write the user data {}", opts.output.display()))?;
    let what = if data.is_empty() {
        "no user data".to_string()
    } else {
        format!("{} bytes", data.len())
    };
    Ok(match outcome {
        WriteOutcome::Written => {
            log::info!("wrote {} ({what})", opts.output.display());
            Outcome::Written(data.len())
        }
        WriteOutcome::Unchanged => {
            log::info!("{} is up to date ({what})", opts.output.display());
            Outcome::Unchanged(data.len())
        }
    })
}
