//! Atomic file replacement: a temporary file in the same directory, mode (and owner) set before
//! the rename, fsync of the file and of the directory. Unchanged content is not rewritten, so
//! mtimes only move when something changed. A crash, a full disk or a failed write never leaves
//! a partial or empty file where a good one was.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What [`write_atomic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    Unchanged,
}

/// Options for [`write_atomic`]: the file mode and, optionally, its owner.
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

/// An I/O error with the path and the step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {error}")]
pub struct WriteError {
    pub action: &'static str,
    pub path: PathBuf,
    pub error: io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |error| WriteError {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// True when `path` is a regular file (not a symlink) with these bytes, this mode and owner.
fn is_current(path: &Path, contents: &[u8], opts: &WriteOptions) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file()
        || meta.permissions().mode() & 0o7777 != opts.mode
        || meta.len() != contents.len() as u64
    {
        return false;
    }
    if let Some((uid, gid)) = opts.owner
        && (meta.uid() != uid || meta.gid() != gid)
    {
        return false;
    }
    fs::read(path).is_ok_and(|old| old == contents)
}

/// Replace `path` with `contents` atomically. The parent directory must exist.
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    opts: WriteOptions,
) -> Result<WriteOutcome, WriteError> {
    if is_current(path, contents, &opts) {
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
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write_tmp_and_rename(&tmp, path, dir, contents, &opts);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| WriteOutcome::Written)
}

fn write_tmp_and_rename(
    tmp: &Path,
    path: &Path,
    dir: &Path,
    contents: &[u8],
    opts: &WriteOptions,
) -> Result<(), WriteError> {
    // A leftover from a crashed run with the same pid would make create_new fail.
    let _ = fs::remove_file(tmp);
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
    file.sync_all().map_err(err("sync", tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(err("rename into place", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("sync directory", dir))?;
    Ok(())
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
