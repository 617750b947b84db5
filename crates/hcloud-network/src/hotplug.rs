//! The queue between the udev rule and `hcloud-network-refresh.service`.
//!
//! udev must not do the work (it is sandboxed from the network and must not run long), and
//! `systemctl start` on a refresh that is already running does not run it again, so an event
//! that arrives mid-refresh would be lost. Instead the udev rule drops one marker file per event
//! into [`QUEUE_DIR`]; `hcloud-network-refresh.path` (`DirectoryNotEmpty=`) starts the refresh
//! while markers exist. The refresh first takes every marker ([`clear`]), then fetches and
//! renders. A marker dropped while it runs stays, and systemd starts the refresh again once it
//! has finished, because the directory is still not empty. So refreshes never overlap, a burst
//! of NICs costs one or two refreshes, and no event is lost.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use hcloud_metadata::Root;

/// Where the markers live (resolved under the root).
pub const QUEUE_DIR: &str = "/run/hcloud-network/hotplug";

#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct QueueError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A marker name: the event's tag (udev's `SEQNUM`, an action and a NIC name) reduced to
/// `[A-Za-z0-9_.-]`, never starting with a dot (the path unit ignores hidden files).
fn marker_name(tag: &str) -> String {
    let clean: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() {
        format!("event-{}", std::process::id())
    } else {
        clean.to_string()
    }
}

/// Record that the private NICs changed. Returns the marker's path.
pub fn queue(root: &Root, tag: &str) -> Result<PathBuf, QueueError> {
    let dir = root.join(QUEUE_DIR);
    fs::create_dir_all(&dir).map_err(|source| QueueError {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(marker_name(tag));
    hcloud_metadata::atomic::open_marker(&path).map_err(|e| QueueError {
        action: "write",
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(path)
}

/// Take every pending marker. Returns their names (sorted).
pub fn clear(root: &Root) -> Result<Vec<String>, QueueError> {
    let dir = root.join(QUEUE_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(QueueError {
                action: "list",
                path: dir,
                source,
            });
        }
    };
    let mut taken = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| QueueError {
            action: "list",
            path: dir.clone(),
            source,
        })?;
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => taken.push(entry.file_name().to_string_lossy().into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(QueueError {
                    action: "remove",
                    path,
                    source,
                });
            }
        }
    }
    taken.sort();
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_plain_names() {
        assert_eq!(marker_name("1234-add-enp7s0"), "1234-add-enp7s0");
        assert_eq!(marker_name("../../etc/passwd"), "_.._etc_passwd");
        assert!(marker_name("...").starts_with("event-"));
        assert!(marker_name("").starts_with("event-"));
    }

    #[test]
    fn queue_then_clear_takes_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert_eq!(clear(&root).unwrap(), Vec::<String>::new());
        queue(&root, "7-add-ens10").unwrap();
        queue(&root, "8-remove-ens11").unwrap();
        assert_eq!(clear(&root).unwrap(), ["7-add-ens10", "8-remove-ens11"]);
        assert_eq!(clear(&root).unwrap(), Vec::<String>::new());
        assert!(root.join(QUEUE_DIR).is_dir());
    }
}

/// The downloader of a refresh (`--refresh`) could not bring the document up to date.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot find hcloud-dl-metadata beside this program ({0}); pass --downloader")]
    NoDownloader(io::Error),
    #[error("cannot run the downloader {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the downloader {path} failed ({status}); the networks stay as they are")]
    Failed {
        path: PathBuf,
        status: std::process::ExitStatus,
    },
}

/// `hcloud-dl-metadata` in the directory of the running program: /usr/bin, /usr/local/bin
/// (install.sh) or the Nix store path of the package.
pub fn default_downloader() -> Result<PathBuf, SyncError> {
    let exe = std::env::current_exe().map_err(SyncError::NoDownloader)?;
    Ok(exe.with_file_name("hcloud-dl-metadata"))
}

/// Runs `downloader --sync-private-nics` for `root` and the document `metadata`, letting it wait
/// up to `timeout_secs` for the metadata to list the NICs present. Its log goes where ours goes.
pub fn sync_metadata(
    downloader: &Path,
    root: &Root,
    metadata: &Path,
    timeout_secs: u64,
) -> Result<(), SyncError> {
    let status = Command::new(downloader)
        .arg("--sync-private-nics")
        .arg("--timeout")
        .arg(timeout_secs.to_string())
        .arg("--root")
        .arg(root.dir())
        .arg("--output")
        .arg(metadata)
        .status()
        .map_err(|source| SyncError::Spawn {
            path: downloader.to_path_buf(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(SyncError::Failed {
            path: downloader.to_path_buf(),
            status,
        })
    }
}
