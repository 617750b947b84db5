//! `hcloud-dl-userdata`: fetch `userdata` and write `/etc/hcloud-userdata` (0600) with exactly
//! the bytes served: binary-safe, never decoded, never executed.
//!
//! The user data is tied to the instance: next to it, `/etc/hcloud-userdata.instance-id` names
//! the server it was fetched for (written after the data, removed before data of another
//! instance is written). A snapshot carries both into its clones, so:
//!
//! - a failed fetch keeps the previous file only when it is this server's; user data of another
//!   server (or of unknown origin) is removed and the run fails;
//! - HTTP 204 and an empty 200 mean "no user data" (an empty file); a 404 means the same, except
//!   when this server's user data is already there: Hetzner fixes user data when a server is
//!   created, so a 404 then is a broken answer and the file is kept.
//!
//! On a machine whose DMI does not say Hetzner there is no instance to compare with: the
//! previous file is kept on a failed fetch, as it always was.

pub mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hcloud_metadata::atomic::remove_file;
use hcloud_metadata::fetch::{DownloadArgs, Rejection};
use hcloud_metadata::{Identity, Root, WriteOptions, WriteOutcome, write_atomic};

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
    /// A 404 where this server's user data was already present: kept.
    Kept,
}

/// A final reply, as user data.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Data(Vec<u8>),
    /// 404: no user data, unless this server's is already there.
    NotFound,
}

/// Map a final reply to the user data bytes.
pub fn accept(status: u16, body: Vec<u8>) -> Result<Answer, Rejection> {
    match status {
        200..=203 | 205..=299 => Ok(Answer::Data(body)),
        204 => Ok(Answer::Data(Vec::new())),
        404 => Ok(Answer::NotFound),
        other => Err(Rejection::Fatal(format!("HTTP {other}"))),
    }
}

/// The file naming the instance the user data belongs to.
pub fn marker_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".instance-id");
    PathBuf::from(name)
}

/// Whose the user data on disk is.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    /// This server's, or DMI cannot tell (not a Hetzner machine).
    This,
    /// Another server's (the instance it names), or nobody's record (`None`).
    Other(Option<String>),
}

fn owner(output: &Path, serial: Option<&str>) -> Owner {
    let Some(serial) = serial else {
        return Owner::This;
    };
    let recorded = std::fs::read_to_string(marker_path(output))
        .ok()
        .map(|s| s.trim().to_string());
    match recorded {
        Some(r) if r.eq_ignore_ascii_case(serial) => Owner::This,
        other => Owner::Other(other),
    }
}

fn describe(owner: &Owner) -> String {
    match owner {
        Owner::Other(Some(id)) => format!("instance {id}'s"),
        _ => "of no recorded instance".into(),
    }
}

/// Remove user data that is not this server's after a failed fetch.
fn drop_foreign(output: &Path, owner: &Owner) -> anyhow::Result<()> {
    if output.exists() {
        remove_file(output)?;
        log::warn!(
            "removed {}: the user data there was {} (a snapshot clone?), not this server's, and none could be fetched",
            output.display(),
            describe(owner)
        );
    }
    remove_file(&marker_path(output))?;
    Ok(())
}

pub fn run(opts: &Options) -> anyhow::Result<Outcome> {
    let root = Root::new(&opts.download.root);
    let identity = Identity::read(&root)?;
    let serial = identity
        .is_hetzner()
        .then(|| identity.serial.clone())
        .flatten();
    let owner = owner(&opts.output, serial.as_deref());
    let fetcher = opts.download.fetcher()?;
    let answer = match fetcher.get("userdata", |reply| accept(reply.status, reply.body)) {
        Ok(answer) => answer,
        Err(e) if opts.download.stdout => return Err(e.into()),
        Err(e) if owner == Owner::This => {
            return Err(e).with_context(|| {
                format!(
                    "no user data fetched; {} was left as it was",
                    opts.output.display()
                )
            });
        }
        Err(e) => {
            drop_foreign(&opts.output, &owner)?;
            bail!(
                "no user data fetched ({e}); the previous {} was {} and is removed",
                opts.output.display(),
                describe(&owner)
            );
        }
    };
    let data = match answer {
        Answer::Data(d) => d,
        Answer::NotFound
            if owner == Owner::This
                && serial.is_some()
                && std::fs::metadata(&opts.output).is_ok_and(|m| m.len() > 0) =>
        {
            log::warn!(
                "{}: HTTP 404, but this server's user data is already in {} (user data is fixed at creation): kept",
                fetcher.url("userdata"),
                opts.output.display()
            );
            return Ok(Outcome::Kept);
        }
        Answer::NotFound => Vec::new(),
    };
    if opts.download.stdout {
        std::io::stdout()
            .write_all(&data)
            .context("writing to stdout")?;
        return Ok(Outcome::Printed(data.len()));
    }
    if let Some(dir) = opts.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let marker = marker_path(&opts.output);
    if owner != Owner::This {
        // No moment where another server's record names this server's data, or the reverse.
        remove_file(&marker).with_context(|| format!("cannot remove {}", marker.display()))?;
    }
    let outcome = write_atomic(&opts.output, &data, WriteOptions::mode(0o600))
        .with_context(|| format!("cannot write the user data {}", opts.output.display()))?;
    if let Some(serial) = &serial {
        write_atomic(
            &marker,
            format!("{serial}\n").as_bytes(),
            WriteOptions::mode(0o644),
        )
        .with_context(|| format!("cannot write {}", marker.display()))?;
    }
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
