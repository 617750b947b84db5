//! Atomic file replacement, the one write path of every agent: a temporary file in the same
//! directory, mode (and owner) set before the rename, fsync of the file and of the directory.
//! Unchanged content is not rewritten, so mtimes only move when something changed. A crash, a
//! full disk or a failed write never leaves a partial or empty file where a good one was.
//!
//! The rule for modes and links (docs/security.md):
//!
//! - [`WriteOptions::mode`] is the file's documented mode: a new file gets it, an existing file
//!   keeps its own mode when that is narrower, and never ends up wider (a mode of `0666` or a
//!   setuid bit on the target is narrowed to the documented mode).
//! - A symlink at the target path is refused with [`WriteError::Symlink`]: never replaced, never
//!   written through, whatever it points to. The agents own no symlink at any path they write
//!   (`/etc/hcloud-metadata.json`, `/etc/hcloud-userdata`, `/etc/fstab`, `/etc/hostname`,
//!   `/run/systemd/network/10-hcloud-*.network`), so a link there was made by someone else
//!   (NixOS's generated `/etc/fstab`, or a planted link) and is left for a person to look at.
//!   Anything else that is not a regular file (a directory, a FIFO) is refused the same way.
//! - The temporary file is `.<name>.tmp-<pid>`, created with `O_EXCL|O_NOFOLLOW`. Before each
//!   write, leftovers of that name whose process is gone, or that are older than an hour, are
//!   removed: a crash leaves nothing behind for long, whatever PID the next run gets, and a
//!   second run writing at the same time keeps its file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What [`write_atomic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    Unchanged,
}

/// Options for [`write_atomic`]: the documented mode (of a new file, and the ceiling of an
/// existing one) and, optionally, the owner.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
}

impl WriteOptions {
    pub fn mode(mode: u32) -> Self {
        WriteOptions { mode, owner: None }
    }
}

/// Why a write did not happen; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error(
        "refusing to write {path}: it is a symbolic link (to {target}); hcloud agents never replace or write through a link they did not make: remove it or make it a regular file"
    )]
    Symlink { path: PathBuf, target: String },
    #[error("refusing to write {path}: it is not a regular file ({kind})")]
    NotAFile { path: PathBuf, kind: &'static str },
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |error| WriteError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// The target as found: `None` when it does not exist yet.
fn existing(path: &Path) -> Result<Option<fs::Metadata>, WriteError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err("inspect", path)(e)),
    };
    let t = meta.file_type();
    if t.is_symlink() {
        let target = fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(WriteError::Symlink {
            path: path.to_path_buf(),
            target,
        });
    }
    if !t.is_file() {
        let kind = if t.is_dir() {
            "a directory"
        } else {
            "a special file"
        };
        return Err(WriteError::NotAFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok(Some(meta))
}

/// The mode the file gets: the target's own permission bits within the documented mode.
fn effective_mode(meta: Option<&fs::Metadata>, documented: u32) -> u32 {
    match meta {
        Some(m) => m.permissions().mode() & 0o777 & documented,
        None => documented,
    }
}

/// True when the target (a regular file) has these bytes, this mode and owner.
fn is_current(path: &Path, meta: &fs::Metadata, contents: &[u8], opts: &WriteOptions) -> bool {
    if meta.permissions().mode() & 0o7777 != opts.mode || meta.len() != contents.len() as u64 {
        return false;
    }
    if let Some((uid, gid)) = opts.owner
        && (meta.uid() != uid || meta.gid() != gid)
    {
        return false;
    }
    fs::read(path).is_ok_and(|old| old == contents)
}

const TMP_MARK: &str = ".tmp-";
/// A temporary file this old is a leftover whatever its PID says.
const STALE_AFTER: Duration = Duration::from_secs(3600);

fn tmp_prefix(name: &str) -> String {
    format!(".{name}{TMP_MARK}")
}

fn pid_running(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process; it touches no memory.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH))
}

/// Remove `.<name>.tmp-<pid>` files in `dir` that no running write can own: their process is
/// gone, the PID is ours (an earlier process that had it), or the file is older than an hour.
/// Best effort: a failure here never stops the write.
pub fn clean_stale_temporaries(dir: &Path, name: &str) {
    let prefix = tmp_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<i32>().ok().or(Some(i32::MAX)))
        else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        let ours = u32::try_from(pid).is_ok_and(|p| p == std::process::id());
        if (old || ours || !pid_running(pid)) && fs::remove_file(entry.path()).is_ok() {
            log::info!(
                "removed {}, left by an interrupted write",
                entry.path().display()
            );
        }
    }
}

/// Replace `path` with `contents` atomically. The parent directory must exist.
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    opts: WriteOptions,
) -> Result<WriteOutcome, WriteError> {
    let meta = existing(path)?;
    let opts = WriteOptions {
        mode: effective_mode(meta.as_ref(), opts.mode),
        owner: opts.owner,
    };
    if let Some(m) = &meta
        && is_current(path, m, contents, &opts)
    {
        return Ok(WriteOutcome::Unchanged);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    clean_stale_temporaries(dir, &name);
    let tmp = dir.join(format!("{}{}", tmp_prefix(&name), std::process::id()));
    let result = write_tmp_and_rename(&tmp, path, dir, contents, &opts);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| WriteOutcome::Written)
}

/// Test builds only: `HCLOUD_TEST_CRASH_AFTER=<step>` ends the process right after that step
/// of the write (`write`, `fsync`, `rename`, `dirsync`), as a power cut or a kill would; the
/// fault matrix proves the old or the new file is there afterwards, never a partial one.
/// Release builds have no such hook.
#[cfg(debug_assertions)]
fn crash_point(step: &str) {
    if std::env::var_os("HCLOUD_TEST_CRASH_AFTER").is_some_and(|v| v == step) {
        // SAFETY: _exit ends the process at once, like a kill: no cleanup, no core file.
        unsafe { libc::_exit(137) };
    }
}

#[cfg(not(debug_assertions))]
fn crash_point(_step: &str) {}

fn write_tmp_and_rename(
    tmp: &Path,
    path: &Path,
    dir: &Path,
    contents: &[u8],
    opts: &WriteOptions,
) -> Result<(), WriteError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(opts.mode)
        .custom_flags(libc::O_NOFOLLOW) // never create it through a planted symlink
        .open(tmp)
        .map_err(err("create", tmp))?;
    // The umask may have narrowed the mode given to open(2); set it exactly.
    file.set_permissions(fs::Permissions::from_mode(opts.mode))
        .map_err(err("set mode of", tmp))?;
    if let Some((uid, gid)) = opts.owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
            .map_err(err("change owner of", tmp))?;
    }
    file.write_all(contents).map_err(err("write", tmp))?;
    crash_point("write");
    file.sync_all().map_err(err("sync", tmp))?;
    crash_point("fsync");
    drop(file);
    fs::rename(tmp, path).map_err(err("rename into place", path))?;
    crash_point("rename");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("sync directory", dir))?;
    crash_point("dirsync");
    Ok(())
}

/// Create (or open) an empty marker or lock file, mode 0644, never through a symlink: a link
/// planted at `path` is refused with [`WriteError::Symlink`] and its target is not created or
/// truncated. The content of an existing file is left as it is.
pub fn open_marker(path: &Path) -> Result<File, WriteError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                WriteError::Symlink {
                    path: path.to_path_buf(),
                    target: fs::read_link(path)
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|_| "?".into()),
                }
            } else {
                err("create", path)(e)
            }
        })
}

/// Remove `path` if it exists; fsync the directory. Returns whether something was removed.
pub fn remove_file(path: &Path) -> Result<bool, WriteError> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(err("sync directory", dir))?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(err("remove", path)(e)),
    }
}

/// Why [`read_handover`] did not return a file's text.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("it is missing")]
    Missing,
    #[error("it is a symbolic link")]
    Symlink,
    #[error("it is not a regular file of at most {0} bytes")]
    NotSmallFile(u64),
    #[error("{0}")]
    Io(io::Error),
}

/// Read a small file that a less privileged step of the same unit left for a privileged one
/// (hcloud-hostname's name, hcloud-volumes' answer): never through a symlink, only a regular
/// file of at most `max` bytes. What it says is for the caller to validate.
pub fn read_handover(path: &Path, max: u64) -> Result<String, HandoverError> {
    use std::io::Read;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => HandoverError::Missing,
            Some(libc::ELOOP) => HandoverError::Symlink,
            _ => HandoverError::Io(e),
        })?;
    let meta = file.metadata().map_err(HandoverError::Io)?;
    if !meta.is_file() || meta.len() > max {
        return Err(HandoverError::NotSmallFile(max));
    }
    let mut text = String::new();
    file.take(max)
        .read_to_string(&mut text)
        .map_err(HandoverError::Io)?;
    Ok(text)
}
