//! Where the two downloaders keep what they write: each in a state directory of its own under
//! `/var/lib`, so that their units can run with all of `/etc` read-only (docs/security.md). The
//! public paths stay where they are, as symbolic links the agents ship and own:
//!
//! ```text
//! /etc/hcloud-metadata.json -> /var/lib/hcloud-dl-metadata/hcloud-metadata.json
//! /etc/hcloud-userdata      -> /var/lib/hcloud-dl-userdata/hcloud-userdata
//! ```
//!
//! Readers open the public path as before. A writer given the public path writes through the
//! link only when it is exactly this one ([`write_target`]); any other link stays refused
//! ([`crate::atomic`]). [`migrate`] makes the link (before the sandboxed download, with the
//! privileges to write `/etc`): a regular file found there, written by an earlier version or by
//! hand, moves into the state directory first, so nothing that was there is lost.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::atomic::{WriteError, WriteOptions, write_atomic};
use crate::{DOCUMENT_PATH, Root, USERDATA_PATH};

/// A public path and the file in a state directory it links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    /// The path readers use, e.g. `/etc/hcloud-metadata.json`.
    pub public: &'static str,
    /// The file the agent writes, in its own state directory.
    pub state: &'static str,
    /// The documented mode of the file.
    pub mode: u32,
    /// The mode of the state directory when it has to be created.
    pub dir_mode: u32,
    /// Files kept beside the public path (`<public><suffix>`) that move with it.
    pub companions: &'static [(&'static str, u32)],
}

/// `hcloud-dl-metadata`'s document.
pub const METADATA: Shipped = Shipped {
    public: DOCUMENT_PATH,
    state: "/var/lib/hcloud-dl-metadata/hcloud-metadata.json",
    mode: 0o644,
    dir_mode: 0o755,
    companions: &[],
};

/// `hcloud-dl-userdata`'s user data, and the file naming the instance it belongs to.
pub const USERDATA: Shipped = Shipped {
    public: USERDATA_PATH,
    state: "/var/lib/hcloud-dl-userdata/hcloud-userdata",
    mode: 0o600,
    dir_mode: 0o700,
    companions: &[(".instance-id", 0o644)],
};

const ALL: [&Shipped; 2] = [&METADATA, &USERDATA];

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn is_shipped_link(path: &Path, shipped: &Shipped) -> bool {
    fs::read_link(path).is_ok_and(|t| t == Path::new(shipped.state))
}

/// The file to write for `output` (already resolved under `root`): the state file when `output`
/// is a public path and the shipped link is there, else `output` itself.
pub fn write_target(root: &Root, output: &Path) -> PathBuf {
    ALL.iter()
        .find(|s| output == root.join(s.public) && is_shipped_link(output, s))
        .map(|s| root.join(s.state))
        .unwrap_or_else(|| output.to_path_buf())
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// The shipped link was already there.
    Linked,
    /// Nothing was at the public path; the link was made.
    Created,
    /// A regular file was there; it moved into the state directory and the link replaced it.
    Moved,
}

/// Why [`migrate`] left the public path alone.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "{path} is a symbolic link to {target}, not to {state} as the package ships it: remove it so the agent can make its own"
    )]
    ForeignLink {
        path: PathBuf,
        target: String,
        state: PathBuf,
    },
    #[error("{path} is not a regular file ({kind}): remove it so the agent can make its link")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MigrateError + 'a {
    move |error| MigrateError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// Make the public path of `shipped` the link into its state directory (under `root`),
/// moving a regular file found there (and its companions) into the state directory first. The
/// link replaces the file by a rename, so a reader finds the old file or the link, never
/// nothing. A link that is not ours, or a directory, is left alone and reported.
pub fn migrate(root: &Root, shipped: &Shipped) -> Result<Migration, MigrateError> {
    let public = root.join(shipped.public);
    let state = root.join(shipped.state);
    let found = match fs::symlink_metadata(&public) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("inspect", &public)(e)),
    };
    let moved = match found.as_ref().map(|m| m.file_type()) {
        Some(t) if t.is_symlink() => {
            if is_shipped_link(&public, shipped) {
                return Ok(Migration::Linked);
            }
            return Err(MigrateError::ForeignLink {
                target: fs::read_link(&public)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "?".into()),
                path: public,
                state,
            });
        }
        Some(t) if !t.is_file() => {
            return Err(MigrateError::NotAFile {
                kind: if t.is_dir() {
                    "a directory"
                } else {
                    "a special file"
                },
                path: public,
            });
        }
        Some(_) => true,
        None => false,
    };
    let dir = state.parent().unwrap_or(Path::new("/"));
    DirBuilder::new()
        .recursive(true)
        .mode(shipped.dir_mode)
        .create(dir)
        .map_err(io_err("create", dir))?;
    if moved {
        move_into(&public, &state, shipped.mode)?;
    }
    for (suffix, mode) in shipped.companions {
        let old = with_suffix(&public, suffix);
        if fs::symlink_metadata(&old).is_ok_and(|m| m.is_file()) {
            move_into(&old, &with_suffix(&state, suffix), *mode)?;
            fs::remove_file(&old).map_err(io_err("remove", &old))?;
        }
    }
    replace_with_link(&public, Path::new(shipped.state))?;
    Ok(if moved {
        Migration::Moved
    } else {
        Migration::Created
    })
}

/// `--migrate` of a downloader: [`migrate`], saying what it did (or why not) in the log.
pub fn migrate_command(root: &Root, shipped: &Shipped) -> std::process::ExitCode {
    if migrate_logged(root, shipped) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// [`migrate`], saying what it did (or why not) in the log; false on failure.
fn migrate_logged(root: &Root, shipped: &Shipped) -> bool {
    let public = root.join(shipped.public);
    match migrate(root, shipped) {
        Ok(Migration::Linked) => true,
        Ok(Migration::Created) => {
            log::info!("linked {} to {}", public.display(), shipped.state);
            true
        }
        Ok(Migration::Moved) => {
            log::info!(
                "moved {} to {} and left a link in its place",
                public.display(),
                shipped.state
            );
            true
        }
        Err(e) => {
            log::error!("{e}");
            false
        }
    }
}

/// Copy `from` to `to` atomically, keeping its mode within `documented` (the file systems of
/// `/etc` and `/var/lib` may differ, so no rename).
fn move_into(from: &Path, to: &Path, documented: u32) -> Result<(), MigrateError> {
    let bytes = fs::read(from).map_err(io_err("read", from))?;
    let mode = fs::metadata(from)
        .map(|m| m.permissions().mode() & documented)
        .map_err(io_err("inspect", from))?;
    write_atomic(to, &bytes, WriteOptions::mode(mode))?;
    Ok(())
}

/// Put a symbolic link to `target` at `path` by renaming a new link over it.
fn replace_with_link(path: &Path, target: &Path) -> Result<(), MigrateError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.link-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err("create link", &tmp))?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("rename into place", path)(e));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        let root = Root::new(dir.path());
        (dir, root)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_missing_public_path_gets_the_link_and_the_directory() {
        let (_d, root) = tree();
        assert_eq!(migrate(&root, &USERDATA).unwrap(), Migration::Created);
        let public = root.join(USERDATA_PATH);
        assert_eq!(fs::read_link(&public).unwrap(), Path::new(USERDATA.state));
        assert_eq!(mode(&root.join("/var/lib/hcloud-dl-userdata")), 0o700);
        assert_eq!(write_target(&root, &public), root.join(USERDATA.state));
        assert_eq!(migrate(&root, &USERDATA).unwrap(), Migration::Linked);
    }

    #[test]
    fn a_regular_file_moves_with_its_companion_and_its_mode() {
        let (_d, root) = tree();
        let public = root.join(USERDATA_PATH);
        fs::write(&public, b"#cloud-config\n").unwrap();
        fs::set_permissions(&public, fs::Permissions::from_mode(0o640)).unwrap();
        let marker = with_suffix(&public, ".instance-id");
        fs::write(&marker, b"42\n").unwrap();
        assert_eq!(migrate(&root, &USERDATA).unwrap(), Migration::Moved);
        assert_eq!(fs::read_link(&public).unwrap(), Path::new(USERDATA.state));
        let state = root.join(USERDATA.state);
        assert_eq!(fs::read(&state).unwrap(), b"#cloud-config\n");
        // 0640 within the documented 0600.
        assert_eq!(mode(&state), 0o600);
        assert_eq!(
            fs::read(with_suffix(&state, ".instance-id")).unwrap(),
            b"42\n"
        );
        assert!(!marker.exists());
    }

    #[test]
    fn a_foreign_link_is_left_alone_and_not_written_through() {
        let (_d, root) = tree();
        let public = root.join(DOCUMENT_PATH);
        symlink("/etc/shadow", &public).unwrap();
        let e = migrate(&root, &METADATA).unwrap_err();
        assert!(
            e.to_string().contains("symbolic link to /etc/shadow"),
            "{e}"
        );
        assert_eq!(fs::read_link(&public).unwrap(), Path::new("/etc/shadow"));
        assert_eq!(write_target(&root, &public), public);
        // The relative spelling of the right target is not the shipped link either.
        fs::remove_file(&public).unwrap();
        symlink(
            "../var/lib/hcloud-dl-metadata/hcloud-metadata.json",
            &public,
        )
        .unwrap();
        assert_eq!(write_target(&root, &public), public);
    }

    #[test]
    fn a_directory_at_the_public_path_is_reported() {
        let (_d, root) = tree();
        fs::create_dir(root.join(DOCUMENT_PATH)).unwrap();
        let e = migrate(&root, &METADATA).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[test]
    fn other_outputs_are_written_where_they_are() {
        let (_d, root) = tree();
        migrate(&root, &METADATA).unwrap();
        let other = root.join("/tmp/doc.json");
        assert_eq!(write_target(&root, &other), other);
    }
}
