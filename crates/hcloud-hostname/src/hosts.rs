//! The server's name in `/etc/hosts`, as a stock Hetzner server has it (cloud-init's
//! `manage_etc_hosts`), so that `hostname -f`, `sudo` and anything else resolving the own name
//! get an answer from the file instead of waiting for DNS.
//!
//! ```text
//! # BEGIN hcloud-hostname: the server name from the Hetzner Cloud metadata; edits inside this block are replaced at every boot
//! 127.0.1.1 web.example.com web
//! ::1 web.example.com web
//! # END hcloud-hostname
//! ```
//!
//! The first name on a line is the canonical one (what `hostname -f` prints), so an FQDN comes
//! first and its first label second, as cloud-init writes it; a name without a dot stands alone.
//! A name cut to its first label for the kernel still has its full form first here. Every other
//! line of the file is the user's and kept byte for byte; the file keeps its mode and owner. A
//! symlinked `/etc/hosts` (NixOS links it into the store) is refused with a warning and left
//! alone; the hostname run still succeeds.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hcloud_metadata::block::{BlockError, Markers};
use hcloud_metadata::{WriteOptions, WriteOutcome, write_atomic};

use crate::Hostname;
use crate::validate::LABEL_MAX;

pub const HOSTS_FILE: &str = "/etc/hosts";

pub const MARKERS: Markers = Markers {
    begin: "# BEGIN hcloud-hostname: the server name from the Hetzner Cloud metadata; edits \
            inside this block are replaced at every boot",
    begin_prefix: "# BEGIN hcloud-hostname",
    end: "# END hcloud-hostname",
};

/// The longest name a resolver accepts (RFC 1035 without the root label).
const DNS_NAME_MAX: usize = 253;

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error(
        "refusing to edit {path}: it is a symlink (to {target}), so another tool manages it; the \
         server name is not added there. Make it a plain file to have it added, or run \
         hcloud-hostname with --no-etc-hosts to silence this"
    )]
    Symlink { path: PathBuf, target: String },
    #[error(
        "refusing to edit {path}: it is not a regular file; make it one, or run hcloud-hostname \
         with --no-etc-hosts"
    )]
    NotAFile { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}; nothing was changed")]
    Block {
        path: PathBuf,
        #[source]
        source: BlockError,
    },
    #[error(
        "cannot update {path}: {source} (run hcloud-hostname with --no-etc-hosts to leave it alone)"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: hcloud_metadata::atomic::WriteError,
    },
}

/// The names for the line: the full name first when it has a dot, then the first label.
pub fn names(name: &Hostname) -> Vec<String> {
    let full = name.shortened_from.as_deref().unwrap_or(name.as_str());
    let usable = full.len() <= DNS_NAME_MAX && full.split('.').all(|l| l.len() <= LABEL_MAX);
    let full = if usable { full } else { name.as_str() };
    let short = full.split('.').next().unwrap_or(full);
    if short == full {
        vec![full.to_string()]
    } else {
        vec![full.to_string(), short.to_string()]
    }
}

/// The lines of the managed block.
pub fn lines(name: &Hostname) -> Vec<String> {
    let names = names(name).join(" ");
    vec![format!("127.0.1.1 {names}"), format!("::1 {names}")]
}

/// Put the block for `name` into the hosts file at `path` (already resolved under the root).
/// A missing file is created with mode 0644.
pub fn update(path: &Path, name: &Hostname) -> Result<WriteOutcome, HostsError> {
    let (existing, opts) = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            return Err(HostsError::Symlink {
                path: path.to_path_buf(),
                target,
            });
        }
        Ok(m) if !m.file_type().is_file() => {
            return Err(HostsError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        Ok(m) => {
            let bytes = fs::read(path).map_err(|source| HostsError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            // Keep the owner; asking for the one we are anyway needs no CAP_CHOWN.
            let ours = (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            );
            let owner = (m.uid(), m.gid());
            let opts = WriteOptions {
                mode: m.mode() & 0o7777,
                owner: (owner != ours).then_some(owner),
            };
            (bytes, opts)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), WriteOptions::mode(0o644)),
        Err(source) => {
            return Err(HostsError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let edited = MARKERS
        .edit(&existing, &lines(name))
        .map_err(|source| HostsError::Block {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, &edited.content, opts).map_err(|source| HostsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate;

    fn name(s: &str) -> Hostname {
        validate(s).unwrap()
    }

    #[test]
    fn a_short_name_stands_alone_an_fqdn_comes_first() {
        assert_eq!(lines(&name("app-7")), ["127.0.1.1 app-7", "::1 app-7"]);
        assert_eq!(
            lines(&name("web.example.com")),
            ["127.0.1.1 web.example.com web", "::1 web.example.com web"]
        );
    }

    #[test]
    fn a_name_cut_for_the_kernel_keeps_its_full_form_here() {
        let long = format!("{}.example.com", "a".repeat(60));
        let n = name(&long);
        assert_eq!(n.as_str(), "a".repeat(60));
        assert_eq!(names(&n), [long.clone(), "a".repeat(60)]);
        // A label a resolver would refuse: only the kernel's name.
        let bad = format!("web.{}.example.com", "b".repeat(70));
        assert_eq!(names(&name(&bad)), ["web"]);
    }
}
