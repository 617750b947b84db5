//! Opening and replacing `authorized_keys` without being tricked by the user who owns it.
//!
//! The directory is opened once, without following a symlink in its last component, and every
//! later step works relative to that descriptor (`openat`, `renameat`), so swapping a path
//! component for a symlink between the checks and the write changes nothing. A directory or file
//! owned by anyone but the user or root is refused, so is a file with several hard links (it
//! could be another file's second name) and anything that is not a regular file.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, unlinkat};

use crate::passwd::User;

/// A larger file is refused: nobody keeps this many keys, and it protects the agent's memory.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "refusing {path}: it is a symbolic link; the SSH key agent never writes through a symlink"
    )]
    Symlink { path: PathBuf },
    #[error(
        "refusing {path}: it is owned by uid {owner}, not by {user} (uid {uid}) or root; \
         fix its owner (chown) and run again"
    )]
    Owner {
        path: PathBuf,
        owner: u32,
        user: String,
        uid: u32,
    },
    #[error("refusing {path}: it is {what}, not a {expected}")]
    WrongKind {
        path: PathBuf,
        what: &'static str,
        expected: &'static str,
    },
    #[error(
        "refusing {path}: it has {links} hard links, so it may be another file's second name; \
         replace it with a file of its own"
    )]
    HardLinks { path: PathBuf, links: u64 },
    #[error(
        "refusing {path}: the directory is writable by group or others (mode {mode:o}); chmod go-w it"
    )]
    WritableDir { path: PathBuf, mode: u32 },
    #[error("refusing {path}: it is larger than {MAX_FILE_SIZE} bytes")]
    TooLarge { path: PathBuf },
    #[error("the home directory {path} of {user} does not exist")]
    NoHome { path: PathBuf, user: String },
    #[error("the directory {path} does not exist")]
    NoDir { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TargetError {
    /// A refusal for safety (as opposed to an I/O failure).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, TargetError::Io { .. })
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> TargetError + 'a {
    move |e| TargetError::Io {
        action,
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    }
}

fn kind_of(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a named pipe",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
        _ => "something unknown",
    }
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

fn check_owner(st: &FileStat, path: &Path, user: &User) -> Result<(), TargetError> {
    if st.st_uid == user.uid || st.st_uid == 0 {
        Ok(())
    } else {
        Err(TargetError::Owner {
            path: path.to_path_buf(),
            owner: st.st_uid,
            user: user.name.clone(),
            uid: user.uid,
        })
    }
}

/// Open a directory by path, following symlinks (used for the home directory and the parent of a
/// custom directory: places the administrator chose).
fn open_dir(path: &Path) -> Result<Option<OwnedFd>, TargetError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => Ok(Some(OwnedFd::from(f))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TargetError::Io {
            action: "open the directory",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Open `name` in `parent` as a directory without following a symlink.
fn open_dir_at(
    parent: &OwnedFd,
    name: &OsStr,
    path: &Path,
) -> Result<Option<OwnedFd>, TargetError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(parent.as_fd(), name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => {
            let st = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(io("inspect", path))?;
            if is(&st, SFlag::S_IFLNK) {
                Err(TargetError::Symlink {
                    path: path.to_path_buf(),
                })
            } else if is(&st, SFlag::S_IFDIR) {
                Err(io("open the directory", path)(e))
            } else {
                Err(TargetError::WrongKind {
                    path: path.to_path_buf(),
                    what: kind_of(&st),
                    expected: "directory",
                })
            }
        }
        Err(e) => Err(io("open the directory", path)(e)),
    }
}

/// Where the keys go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `<home>/.ssh/authorized_keys`: `.ssh` is created if missing and kept 0700, owned by the user.
    Home { home: PathBuf },
    /// A file the administrator named: its directory must exist, be owned by the user or root
    /// and not be writable by group or others; its mode and owner are left alone.
    File { path: PathBuf },
}

/// The current file, read through a descriptor that was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub content: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// An open, checked directory and what the file in it holds.
#[derive(Debug)]
pub struct Target {
    dir: OwnedFd,
    pub dir_path: PathBuf,
    pub name: OsString,
    pub existing: Option<Existing>,
}

/// What [`Target::replace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Written,
    Unchanged,
}

impl Target {
    /// The file's full path, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir_path.join(&self.name)
    }

    /// Open and check the directory and the file. With `create` false a missing `.ssh` is not
    /// created and `Ok(None)` is returned.
    pub fn open(
        location: &Location,
        user: &User,
        create: bool,
    ) -> Result<Option<Target>, TargetError> {
        let (dir, dir_path, name) = match location {
            Location::Home { home } => {
                let home_fd = open_dir(home)?.ok_or_else(|| TargetError::NoHome {
                    path: home.clone(),
                    user: user.name.clone(),
                })?;
                let st = fstat(home_fd.as_fd()).map_err(io("inspect", home))?;
                check_owner(&st, home, user)?;
                let ssh = home.join(".ssh");
                let dir = match open_dir_at(&home_fd, OsStr::new(".ssh"), &ssh)? {
                    Some(d) => d,
                    None if !create => return Ok(None),
                    None => {
                        match mkdirat(home_fd.as_fd(), ".ssh", Mode::S_IRWXU) {
                            Ok(()) | Err(Errno::EEXIST) => {}
                            Err(e) => return Err(io("create", &ssh)(e)),
                        }
                        log::info!("created {}", ssh.display());
                        open_dir_at(&home_fd, OsStr::new(".ssh"), &ssh)?
                            .ok_or_else(|| TargetError::NoDir { path: ssh.clone() })?
                    }
                };
                let st = fstat(dir.as_fd()).map_err(io("inspect", &ssh))?;
                check_owner(&st, &ssh, user)?;
                if st.st_uid != user.uid || st.st_gid != user.gid {
                    fchown(
                        dir.as_fd(),
                        Some(Uid::from_raw(user.uid)),
                        Some(Gid::from_raw(user.gid)),
                    )
                    .map_err(io("change the owner of", &ssh))?;
                }
                if st.st_mode & 0o7777 != 0o700 {
                    fchmod(dir.as_fd(), Mode::S_IRWXU).map_err(io("change the mode of", &ssh))?;
                }
                (dir, ssh, OsString::from("authorized_keys"))
            }
            Location::File { path } => {
                let (Some(dir_path), Some(name)) = (path.parent(), path.file_name()) else {
                    return Err(TargetError::WrongKind {
                        path: path.clone(),
                        what: "a directory",
                        expected: "file path",
                    });
                };
                let dir = match (dir_path.parent(), dir_path.file_name()) {
                    (Some(up), Some(dir_name)) => {
                        let up_fd = open_dir(up)?.ok_or_else(|| TargetError::NoDir {
                            path: up.to_path_buf(),
                        })?;
                        open_dir_at(&up_fd, dir_name, dir_path)?
                    }
                    _ => open_dir(dir_path)?,
                }
                .ok_or_else(|| TargetError::NoDir {
                    path: dir_path.to_path_buf(),
                })?;
                let st = fstat(dir.as_fd()).map_err(io("inspect", dir_path))?;
                check_owner(&st, dir_path, user)?;
                if st.st_mode & 0o022 != 0 {
                    return Err(TargetError::WritableDir {
                        path: dir_path.to_path_buf(),
                        mode: st.st_mode & 0o7777,
                    });
                }
                (dir, dir_path.to_path_buf(), name.to_os_string())
            }
        };
        let mut target = Target {
            dir,
            dir_path,
            name,
            existing: None,
        };
        target.existing = target.read_existing(user)?;
        Ok(Some(target))
    }

    fn read_existing(&self, user: &User) -> Result<Option<Existing>, TargetError> {
        let path = self.path();
        // O_NONBLOCK: a named pipe planted here must not hang the agent before fstat says what it is.
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = match openat(
            self.dir.as_fd(),
            self.name.as_os_str(),
            flags,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(TargetError::Symlink { path }),
            Err(e) => return Err(io("open", &path)(e)),
        };
        let st = fstat(fd.as_fd()).map_err(io("inspect", &path))?;
        if !is(&st, SFlag::S_IFREG) {
            return Err(TargetError::WrongKind {
                path,
                what: kind_of(&st),
                expected: "regular file",
            });
        }
        check_owner(&st, &path, user)?;
        if st.st_nlink > 1 {
            return Err(TargetError::HardLinks {
                path,
                links: st.st_nlink as u64,
            });
        }
        let mut content = Vec::new();
        File::from(fd)
            .take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut content)
            .map_err(|source| TargetError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
        if content.len() as u64 > MAX_FILE_SIZE {
            return Err(TargetError::TooLarge { path });
        }
        Ok(Some(Existing {
            content,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
        }))
    }

    /// Replace the file atomically with `content`, mode 0600, owned by the user: a temporary
    /// file in the same directory, fsync, rename, fsync of the directory. Nothing is written when
    /// content, mode and owner are already right.
    pub fn replace(&self, content: &[u8], user: &User) -> Result<Replaced, TargetError> {
        if let Some(e) = &self.existing
            && e.content == content
            && e.mode == 0o600
            && (e.uid, e.gid) == (user.uid, user.gid)
        {
            return Ok(Replaced::Unchanged);
        }
        let mut tmp_name = OsString::from(".");
        tmp_name.push(&self.name);
        tmp_name.push(".hcloud-ssh-keys.tmp");
        let tmp_path = self.dir_path.join(&tmp_name);
        let result = self.write_tmp_and_rename(&tmp_name, &tmp_path, content, user);
        if result.is_err() {
            let _ = unlinkat(
                self.dir.as_fd(),
                tmp_name.as_bytes(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        result.map(|()| Replaced::Written)
    }

    fn write_tmp_and_rename(
        &self,
        tmp_name: &OsStr,
        tmp_path: &Path,
        content: &[u8],
        user: &User,
    ) -> Result<(), TargetError> {
        // A leftover of a crashed run; unlinkat removes a planted symlink itself, not its target.
        match unlinkat(self.dir.as_fd(), tmp_name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io("remove the leftover", tmp_path)(e)),
        }
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            self.dir.as_fd(),
            tmp_name,
            flags,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(io("create", tmp_path))?;
        fchmod(fd.as_fd(), Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(io("change the mode of", tmp_path))?;
        let st = fstat(fd.as_fd()).map_err(io("inspect", tmp_path))?;
        if (st.st_uid, st.st_gid) != (user.uid, user.gid) {
            fchown(
                fd.as_fd(),
                Some(Uid::from_raw(user.uid)),
                Some(Gid::from_raw(user.gid)),
            )
            .map_err(io("change the owner of", tmp_path))?;
        }
        let mut file = File::from(fd);
        let werr = |source| TargetError::Io {
            action: "write",
            path: tmp_path.to_path_buf(),
            source,
        };
        file.write_all(content).map_err(werr)?;
        file.sync_all().map_err(|source| TargetError::Io {
            action: "sync",
            path: tmp_path.to_path_buf(),
            source,
        })?;
        drop(file);
        let path = self.path();
        renameat(
            self.dir.as_fd(),
            tmp_name,
            self.dir.as_fd(),
            self.name.as_os_str(),
        )
        .map_err(io("rename into place", &path))?;
        fsync(self.dir.as_fd()).map_err(io("sync the directory", &self.dir_path))?;
        Ok(())
    }
}
