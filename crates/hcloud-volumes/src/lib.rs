//! `hcloud-volumes`: the stock Hetzner images' volume automount, as a service instead of a
//! `curl` inside udev. A udev rule starts `hcloud-volumes@<id>.service` when a volume with a
//! filesystem appears; the service asks the metadata service's internal endpoint whether the
//! user asked for automount, and if so records the volume in `/etc/fstab` (one line,
//! `nofail,discard`, written atomically, never twice) and has systemd mount it at
//! `/mnt/HC_Volume_<id>`. Unformatted volumes and volumes the user mounts elsewhere are left
//! alone; nothing is ever unmounted.

pub mod cli;
pub mod device;
pub mod fstab;

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hcloud_metadata::fetch::{FetchConfig, FetchError, Fetcher, Rejection};
use hcloud_metadata::{Root, WriteOptions, write_atomic};

pub use device::{DeviceError, VolumeDevice, probe};

/// Where fstab lives.
pub const FSTAB: &str = "/etc/fstab";
/// fstab's documented mode, and the widest it is ever written with.
pub const FSTAB_MODE: u32 = 0o644;
/// The lock that serializes fstab updates of volumes attached at the same time.
pub const LOCK: &str = "/run/hcloud-volumes/fstab.lock";

/// What one run decided; each is one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The volume went away before the service ran.
    NotAttached,
    /// No filesystem on it: never touched.
    Unformatted,
    /// A signature that is not a mountable filesystem (LUKS, RAID member, swap...).
    NotAFilesystem { usage: String, fs_type: String },
    /// fstab mounts it elsewhere (the user's own line): left to the user.
    RecordedElsewhere { line: usize, file: String },
    /// Already recorded at `/mnt/HC_Volume_<id>` (a reattach or a reboot): mounted again.
    AlreadyRecorded { line: usize },
    /// The metadata service says automount was not requested (or its window has passed).
    NotRequested,
    /// Newly recorded in fstab and mounted.
    Recorded {
        mount_point: String,
        fs_type: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("asking the metadata service whether volume {id} is to be mounted: {source}")]
    Fetch {
        id: u64,
        #[source]
        source: FetchError,
    },
    #[error("volume {id}: filesystem type {fs_type:?} from udev is not a plain name; not recorded")]
    BadFsType { id: u64, fs_type: String },
    #[error("{action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("writing {0}")]
    Write(#[from] hcloud_metadata::atomic::WriteError),
    #[error(
        "volume {id}: no usable answer from `hcloud-volumes ask {id}` in {path}: {why}; not recorded"
    )]
    Answer { id: u64, path: PathBuf, why: String },
    #[error(
        "volume {id} is recorded in /etc/fstab but systemd could not mount it ({command}): {detail}; see journalctl -u {unit}"
    )]
    Mount {
        id: u64,
        command: String,
        unit: String,
        detail: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |error| Error::Io {
        action,
        path,
        error,
    }
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub root: Root,
    /// The metadata service base URL (`.../hetzner/v1/`); the internal endpoint is
    /// `/_internal/v1/volumes/<id>` on the same host.
    pub metadata_url: String,
    /// Whole retry budget for the question.
    pub budget: Duration,
}

/// `http://host:port/whatever` → `http://host:port/`.
pub fn origin(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}/")
}

/// Ask `/_internal/v1/volumes/<id>`: 200 means the user asked for automount; 404 means not
/// (or the answer expired, a few minutes after the attach).
pub fn automount_requested(metadata_url: &str, id: u64, budget: Duration) -> Result<bool, Error> {
    let mut cfg = FetchConfig::new(&origin(metadata_url), budget);
    cfg.request_timeout = Duration::from_secs(3);
    cfg.max_body = 64 * 1024;
    let fetcher = Fetcher::new(cfg).map_err(|source| Error::Fetch { id, source })?;
    fetcher
        .get(&format!("_internal/v1/volumes/{id}"), |reply| {
            match reply.status {
                200..=299 => Ok(true),
                404 => Ok(false),
                s => Err(Rejection::Fatal(format!("unexpected HTTP {s}"))),
            }
        })
        .map_err(|source| Error::Fetch { id, source })
}

/// `mkdir -p -m 0755`.
fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io("create", dir))
}

/// Hold the fstab lock while the guard lives.
struct Lock(#[allow(dead_code)] File);

fn lock(root: &Root) -> Result<Lock, Error> {
    let path = root.join(LOCK);
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    // Never through a symlink planted at the lock's path.
    let f = hcloud_metadata::atomic::open_marker(&path)?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(Error::Io {
            action: "lock",
            path,
            error: std::io::Error::last_os_error(),
        });
    }
    Ok(Lock(f))
}

/// fstab's bytes and how to write it back: its documented mode 0644 is the ceiling (a narrower
/// mode is kept, a wider one narrowed), its owner is kept. A symlink is refused when written
/// (NixOS generates a linked fstab; see `docs/security.md`).
fn read_fstab(path: &Path) -> Result<(Vec<u8>, WriteOptions), Error> {
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            let text = fs::read(path).map_err(io("read", path))?;
            // Keep the owner; ask for a chown only when it differs from ours (the unit's
            // system call filter refuses chown, and it is never needed on a server).
            // SAFETY: geteuid/getegid cannot fail and touch no memory.
            let me = unsafe { (libc::geteuid(), libc::getegid()) };
            let owner = (meta.uid(), meta.gid());
            let opts = WriteOptions {
                mode: FSTAB_MODE,
                owner: (owner != me && !meta.file_type().is_symlink()).then_some(owner),
            };
            Ok((text, opts))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((Vec::new(), WriteOptions::mode(FSTAB_MODE)))
        }
        Err(e) => Err(io("read", path)(e)),
    }
}

/// What systemd does on a live system: reload the fstab generator's units, then mount.
fn systemd_mount(id: u64, reload: bool) -> Result<(), Error> {
    let unit = fstab::mount_unit(id);
    let mut steps: Vec<Vec<&str>> = Vec::new();
    if reload {
        steps.push(vec!["daemon-reload"]);
    }
    steps.push(vec!["start", &unit]);
    for args in steps {
        let command = format!("systemctl {}", args.join(" "));
        let out = Command::new("systemctl")
            .args(&args)
            .output()
            .map_err(|e| Error::Mount {
                id,
                command: command.clone(),
                unit: unit.clone(),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::Mount {
                id,
                command,
                unit,
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

/// What the volume needs before anything is written: a question to the metadata service
/// (`Ok`), or an outcome that needs none (`Err`).
fn examine(root: &Root, id: u64) -> Result<Result<(VolumeDevice, String), Outcome>, Error> {
    let dev = match probe(root, id) {
        Ok(d) => d,
        Err(DeviceError::NotAttached { .. }) => return Ok(Err(Outcome::NotAttached)),
        Err(e) => return Err(e.into()),
    };
    let Some(fs_type) = dev.fs_type.clone() else {
        return Ok(Err(Outcome::Unformatted));
    };
    let usage = dev.fs_usage.clone().unwrap_or_default();
    if usage != "filesystem" {
        return Ok(Err(Outcome::NotAFilesystem { usage, fs_type }));
    }
    if !device::valid_fs_type(&fs_type) {
        return Err(Error::BadFsType { id, fs_type });
    }
    // A quick look without the lock: a reboot or a reattach needs no question.
    let (text, _) = read_fstab(&root.join(FSTAB))?;
    Ok(match fstab::find(&text, &dev) {
        fstab::Recorded::Elsewhere { line, file } => Err(Outcome::RecordedElsewhere { line, file }),
        fstab::Recorded::AtMountPoint { line } => Err(Outcome::AlreadyRecorded { line }),
        fstab::Recorded::No => Ok((dev, fs_type)),
    })
}

/// Where `hcloud-volumes ask` leaves the answer for `attach --answered`: `yes` or `no`.
pub fn answer_path(root: &Root, id: u64) -> PathBuf {
    root.join(format!("/run/hcloud-volumes/{id}.automount"))
}

/// What `hcloud-volumes ask <id>` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// The volume needs no question; `attach` will say why.
    NoQuestion(Outcome),
    /// The metadata service's answer, left in [`answer_path`].
    Answered(bool),
}

/// The unit's sandboxed step (`hcloud-volumes ask <id>`): the only one that talks to the network,
/// with `/etc` read-only. Asks whether automount was requested, when the volume needs the
/// question, and leaves the answer for the step that writes fstab and mounts
/// ([`attach`] with [`answered`]).
pub fn ask(
    opts: &Options,
    id: u64,
    fetch: impl FnOnce(&str, u64, Duration) -> Result<bool, Error>,
) -> Result<Asked, Error> {
    let path = answer_path(&opts.root, id);
    hcloud_metadata::atomic::remove_file(&path)?;
    if let Err(outcome) = examine(&opts.root, id)? {
        return Ok(Asked::NoQuestion(outcome));
    }
    let yes = fetch(&opts.metadata_url, id, opts.budget)?;
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    let word: &[u8] = if yes { b"yes\n" } else { b"no\n" };
    write_atomic(&path, word, WriteOptions::mode(0o644))?;
    Ok(Asked::Answered(yes))
}

/// The answer `ask` left, as the `ask` argument of [`attach`] (`attach --answered`): read once
/// and removed. A link, anything but `yes` or `no`, or no answer at all is an error: the
/// question was needed and nothing trustworthy answered it.
pub fn answered(root: &Root) -> impl FnOnce(&str, u64, Duration) -> Result<bool, Error> + '_ {
    move |_, id, _| {
        let path = answer_path(root, id);
        let bad = |why: String| Error::Answer {
            id,
            path: path.clone(),
            why,
        };
        let text =
            hcloud_metadata::atomic::read_handover(&path, 16).map_err(|e| bad(e.to_string()))?;
        hcloud_metadata::atomic::remove_file(&path)?;
        match text.trim_end() {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(bad("neither yes nor no".into())),
        }
    }
}

/// Handle one attached volume (`hcloud-volumes attach <id>`). `ask` answers whether automount
/// was requested; it is only called for a formatted volume fstab does not know yet.
pub fn attach(
    opts: &Options,
    id: u64,
    ask: impl FnOnce(&str, u64, Duration) -> Result<bool, Error>,
) -> Result<Outcome, Error> {
    let root = &opts.root;
    let (dev, fs_type) = match examine(root, id)? {
        Ok(found) => found,
        Err(outcome @ Outcome::AlreadyRecorded { .. }) => {
            if root.is_live() {
                systemd_mount(id, false)?;
            }
            return Ok(outcome);
        }
        Err(outcome) => return Ok(outcome),
    };
    if !ask(&opts.metadata_url, id, opts.budget)? {
        return Ok(Outcome::NotRequested);
    }
    let fstab_path = root.join(FSTAB);
    let mount_point = fstab::mount_point(id);
    let mp_path = root.join(&mount_point);
    create_dir(&mp_path)?;
    {
        let _guard = lock(root)?;
        // Read again under the lock: another volume's service may have written meanwhile.
        let (text, wopts) = read_fstab(&fstab_path)?;
        match fstab::find(&text, &dev) {
            fstab::Recorded::No => {
                let new = fstab::with_line(&text, &fstab::line_for(id, &fs_type));
                write_atomic(&fstab_path, &new, wopts)?;
            }
            fstab::Recorded::AtMountPoint { .. } => {}
            fstab::Recorded::Elsewhere { line, file } => {
                return Ok(Outcome::RecordedElsewhere { line, file });
            }
        }
    }
    if root.is_live() {
        systemd_mount(id, true)?;
    }
    Ok(Outcome::Recorded {
        mount_point,
        fs_type,
    })
}

/// The log line of an outcome.
pub fn describe(id: u64, o: &Outcome) -> String {
    match o {
        Outcome::NotAttached => {
            format!("Volume {id} is no longer attached; nothing to do")
        }
        Outcome::Unformatted => {
            format!("Volume {id} has no filesystem; left untouched")
        }
        Outcome::NotAFilesystem { usage, fs_type } => format!(
            "Volume {id} holds {fs_type} ({usage}), not a mountable filesystem; left untouched"
        ),
        Outcome::RecordedElsewhere { line, file } => format!(
            "Volume {id} is mounted at {file} by line {line} of /etc/fstab; left to that line"
        ),
        Outcome::AlreadyRecorded { line } => format!(
            "Volume {id} is recorded at {} (line {line} of /etc/fstab); mounted",
            fstab::mount_point(id)
        ),
        Outcome::NotRequested => format!(
            "Volume {id}: automount was not requested (or was requested more than a few minutes ago); not mounted"
        ),
        Outcome::Recorded {
            mount_point,
            fs_type,
        } => format!("Volume {id} ({fs_type}) recorded in /etc/fstab and mounted at {mount_point}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_internal_endpoint_is_on_the_metadata_host() {
        assert_eq!(
            origin("http://169.254.169.254/hetzner/v1/"),
            "http://169.254.169.254/"
        );
        assert_eq!(
            origin("http://127.0.0.1:4711/hetzner/v1"),
            "http://127.0.0.1:4711/"
        );
    }
}
