//! `hcloud-hostname`: give the server the name it has in Hetzner Cloud.
//!
//! Applies only the metadata document (a `firstboot.hostname` credential is only compared). On
//! the running system (`--root /`) the static and the transient hostname are set through
//! systemd-hostnamed over D-Bus; where hostnamed cannot be reached, `/etc/hostname` is written
//! atomically and sethostname(2) is called. With another root only `<root>/etc/hostname` is
//! written. Then (unless `--no-etc-hosts`) the name goes into a managed block of `/etc/hosts`
//! (see [`hosts`]).
//!
//! The unit splits this in two, so that the part that reads the document never runs with `/etc`
//! writable: `--no-etc` (`Config::hand_over`) sets the name and leaves it in [`HANDOVER`];
//! `--etc-only` ([`write_etc`]) then writes `/etc/hostname` (where hostnamed did not) and the
//! block, from that name alone, validated again.

pub mod cli;
pub mod hostnamed;
pub mod hosts;
pub mod validate;

use std::path::{Path, PathBuf};

use hcloud_metadata::atomic::WriteError;
use hcloud_metadata::logging::message_id;
use hcloud_metadata::{IdentityError, LoadError, Root, WriteOptions, WriteOutcome, write_atomic};

pub use validate::{HOST_NAME_MAX, Hostname, InvalidHostname, validate};

/// Where the static hostname lives.
pub const HOSTNAME_FILE: &str = "/etc/hostname";

/// What to do, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: Root,
    /// The document, resolved under the root.
    pub metadata: PathBuf,
    /// The bus where hostnamed is reached; `None` is the system bus.
    pub dbus_address: Option<String>,
    /// Keep the server name in a managed block of `/etc/hosts`.
    pub etc_hosts: bool,
    /// Write nothing in `/etc` (the unit's sandboxed run): hand the applied name over to
    /// [`write_etc`] through [`HANDOVER`] instead.
    pub hand_over: bool,
}

/// Where the sandboxed run leaves the name it applied for the run that may write `/etc`: the
/// name as the document has it on the first line, on the second `hostnamed` (which wrote
/// `/etc/hostname` itself) or `fallback` (`/etc/hostname` is still to be written).
pub const HANDOVER: &str = "/run/hcloud-hostname/applied";
/// The handover is a name and a word; anything longer was not written by us.
const HANDOVER_MAX: u64 = 512;

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The document has no hostname: nothing was touched.
    NoHostname,
    /// Not the live system: only `<root>/etc/hostname` was written (or already right).
    File {
        path: PathBuf,
        outcome: WriteOutcome,
    },
    /// systemd-hostnamed set the static and the transient hostname.
    Hostnamed { name: String },
    /// hostnamed was not available: `/etc/hostname` and sethostname(2).
    Fallback {
        name: String,
        file: WriteOutcome,
        kernel_changed: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "refusing the hostname from {path}: {source}; the hostname and {HOSTNAME_FILE} are left \
         as they are (rename the server in Hetzner Cloud to a valid hostname)"
    )]
    Invalid {
        path: String,
        #[source]
        source: InvalidHostname,
    },
    #[error("refusing the handover {path}: {why}; /etc is left as it is")]
    Handover { path: String, why: String },
    #[error("cannot create the directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Hostnamed(#[from] hostnamed::Refused),
    #[error("the hostname is set, but {0}")]
    Hosts(#[from] hosts::HostsError),
    #[error(
        "systemd-hostnamed is not available ({why}) and the fallback cannot write the hostname: \
         {source}; start systemd-hostnamed, or let the service write /etc (ReadWritePaths=/etc)"
    )]
    FallbackWrite {
        why: String,
        #[source]
        source: Box<Error>,
    },
    #[error(
        "systemd-hostnamed is not available ({why}) and sethostname({name:?}) failed: {source}; \
         start systemd-hostnamed, or give the service CAP_SYS_ADMIN and the sethostname system call"
    )]
    Sethostname {
        why: String,
        name: String,
        #[source]
        source: nix::Error,
    },
}

impl Error {
    /// The exit status: 3 the document cannot be used, 4 it belongs to another server,
    /// 5 the hostname in it is refused, 1 anything else (could not apply).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Load(_) => 3,
            Error::Identity(_) => 4,
            Error::Invalid { .. } => 5,
            _ => 1,
        }
    }
}

/// Load the document, check it belongs to this server, validate its hostname and apply it.
pub fn run(cfg: &Config) -> Result<Applied, Error> {
    if cfg.hand_over {
        // A name left by an earlier run must not be written after this one applied none.
        hcloud_metadata::atomic::remove_file(&cfg.root.join(HANDOVER))?;
    }
    let path = cfg.root.join(&cfg.metadata);
    let doc = hcloud_metadata::load_document(&path)?;
    if let Err(e) = hcloud_metadata::check_instance(&cfg.root, doc.instance_id) {
        if matches!(e, IdentityError::Mismatch { .. }) {
            log::error!(MESSAGE_ID = message_id::INSTANCE_MISMATCH; "{e}");
        }
        return Err(e.into());
    }
    let Some(raw) = doc.hostname.as_deref() else {
        log::info!(
            "{} has no hostname; the hostname is left as it is",
            path.display()
        );
        return Ok(Applied::NoHostname);
    };
    let name = validate(raw).map_err(|source| Error::Invalid {
        path: path.display().to_string(),
        source,
    })?;
    if let Some(long) = &name.shortened_from {
        log::warn!(
            "the server name {long:?} is longer than the kernel's limit of {HOST_NAME_MAX} \
             characters; using its first label {:?}",
            name.as_str()
        );
    }
    warn_about_credential(&cfg.root, raw);
    let applied = apply(cfg, &name)?;
    if cfg.hand_over {
        hand_over(cfg, raw, &applied)?;
        return Ok(applied);
    }
    if cfg.etc_hosts {
        update_hosts(&cfg.root, &name)?;
    }
    Ok(applied)
}

/// Leave the applied name in [`HANDOVER`] for [`write_etc`].
fn hand_over(cfg: &Config, raw: &str, applied: &Applied) -> Result<(), Error> {
    let how = match applied {
        Applied::Fallback { .. } | Applied::File { .. } => "fallback",
        _ => "hostnamed",
    };
    let path = cfg.root.join(HANDOVER);
    write_file_bytes(&path, format!("{raw}\n{how}\n").as_bytes())?;
    log::info!(
        "left {raw:?} in {} for the step that writes /etc",
        path.display()
    );
    Ok(())
}

/// The unit's second step, with the privileges to write `/etc` and no outside input but the
/// handover of the sandboxed run, which is validated again: write `/etc/hostname` if hostnamed
/// did not, and the managed block of `/etc/hosts` (unless `etc_hosts` is false). No handover
/// (the document had no name): nothing to do.
pub fn write_etc(root: &Root, etc_hosts: bool) -> Result<(), Error> {
    let path = root.join(HANDOVER);
    let Some(text) = read_handover(&path)? else {
        log::info!(
            "{} is missing: no name was applied, /etc is left as it is",
            path.display()
        );
        return Ok(());
    };
    let mut lines = text.lines();
    let (raw, how) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let name = validate(raw).map_err(|source| Error::Invalid {
        path: path.display().to_string(),
        source,
    })?;
    match how {
        "hostnamed" => {}
        "fallback" => {
            let file = root.join(HOSTNAME_FILE);
            let outcome = write_file(&file, &name)?;
            log::info!(
                "{} {} with {:?}",
                verb(outcome),
                file.display(),
                name.as_str()
            );
        }
        other => {
            return Err(Error::Handover {
                path: path.display().to_string(),
                why: format!("unknown way {other:?} (expected hostnamed or fallback)"),
            });
        }
    }
    if etc_hosts {
        update_hosts(root, &name)?;
    }
    hcloud_metadata::atomic::remove_file(&path)?;
    Ok(())
}

/// The handover's text: `None` when there is none; a link, a non-file or an oversize file is
/// refused without being read.
fn read_handover(path: &Path) -> Result<Option<String>, Error> {
    use hcloud_metadata::atomic::{HandoverError, read_handover};
    match read_handover(path, HANDOVER_MAX) {
        Ok(text) => Ok(Some(text)),
        Err(HandoverError::Missing) => Ok(None),
        Err(e) => Err(Error::Handover {
            path: path.display().to_string(),
            why: e.to_string(),
        }),
    }
}

fn update_hosts(root: &Root, name: &Hostname) -> Result<(), Error> {
    {
        let path = root.join(hosts::HOSTS_FILE);
        match hosts::update(&path, name) {
            Ok(outcome) => log::info!(
                "{} the managed block of {}: {}",
                verb(outcome),
                path.display(),
                hosts::lines(name).join(", ")
            ),
            // Someone else owns the file on purpose (NixOS links it into the store): say so,
            // do not fail the hostname for it.
            Err(e @ hosts::HostsError::Symlink { .. }) => log::warn!("{e}"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// systemd-imds' import (or another source) may leave a `firstboot.hostname` credential, which
/// systemd-firstboot applies on a first boot. It is never trusted over the document: one warning
/// per credential that names a different host (the unit runs once per boot).
pub fn warn_about_credential(root: &Root, document_name: &str) {
    use hcloud_metadata::competitors::{self, HOSTNAME_CREDENTIAL};
    for cred in competitors::credentials(root, HOSTNAME_CREDENTIAL) {
        let theirs = cred.text.trim();
        if theirs.is_empty() || theirs == document_name {
            continue;
        }
        log::warn!(
            MESSAGE_ID = message_id::CREDENTIAL_CONFLICT;
            "credential {} (systemd-imds' import or another source) names the host {theirs:?}, \
             the metadata {document_name:?}; the metadata wins: the hostname is set to the \
             metadata's name. To hand the hostname over to hcloud-hostname, boot with \
             `systemd.imds.import=0` (see {})",
            cred.path,
            competitors::DOCS
        );
    }
}

/// Set `name` the way the root allows.
pub fn apply(cfg: &Config, name: &Hostname) -> Result<Applied, Error> {
    let shown = name.as_str();
    if !cfg.root.is_live() {
        let path = cfg.root.join(HOSTNAME_FILE);
        if cfg.hand_over {
            // Written by write_etc, from the handover.
            return Ok(Applied::File {
                path,
                outcome: WriteOutcome::Unchanged,
            });
        }
        let outcome = write_file(&path, name)?;
        log::info!(
            "{} {} with {shown:?} (root {} is not the running system: no D-Bus, no sethostname)",
            verb(outcome),
            path.display(),
            cfg.root.dir().display()
        );
        return Ok(Applied::File { path, outcome });
    }
    match hostnamed::set(cfg.dbus_address.as_deref(), name.as_str())? {
        hostnamed::Outcome::Set => {
            log::info!(
                "hostname set to {shown:?} through systemd-hostnamed (static and transient)"
            );
            Ok(Applied::Hostnamed {
                name: name.to_string(),
            })
        }
        hostnamed::Outcome::Unavailable(why) => {
            log::info!("{why}; falling back to {HOSTNAME_FILE} and sethostname(2)");
            fallback(cfg, name, why)
        }
    }
}

fn verb(outcome: WriteOutcome) -> &'static str {
    match outcome {
        WriteOutcome::Written => "wrote",
        WriteOutcome::Unchanged => "kept",
    }
}

fn write_file(path: &Path, name: &Hostname) -> Result<WriteOutcome, Error> {
    write_file_bytes(path, format!("{name}\n").as_bytes())
}

fn write_file_bytes(path: &Path, bytes: &[u8]) -> Result<WriteOutcome, Error> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(write_atomic(path, bytes, WriteOptions::mode(0o644))?)
}

/// No hostnamed: write `/etc/hostname` (the static name for the next boot) and set the kernel
/// hostname now.
fn fallback(cfg: &Config, name: &Hostname, why: String) -> Result<Applied, Error> {
    let shown = name.as_str();
    let path = cfg.root.join(HOSTNAME_FILE);
    let file = if cfg.hand_over {
        // Written by the step that may write /etc (write_etc), from the handover.
        WriteOutcome::Unchanged
    } else {
        let file = write_file(&path, name).map_err(|e| Error::FallbackWrite {
            why: why.clone(),
            source: Box::new(e),
        })?;
        log::info!("{} {} with {shown:?}", verb(file), path.display());
        file
    };
    let current = nix::unistd::gethostname().ok();
    let kernel_changed = current.as_deref() != Some(std::ffi::OsStr::new(name.as_str()));
    if kernel_changed {
        nix::unistd::sethostname(name.as_str()).map_err(|source| Error::Sethostname {
            why,
            name: name.to_string(),
            source,
        })?;
        log::info!("kernel hostname set to {shown:?} with sethostname(2)");
    } else {
        log::info!("kernel hostname is already {shown:?}");
    }
    Ok(Applied::Fallback {
        name: name.to_string(),
        file,
        kernel_changed,
    })
}
