//! `hcloud-ssh-keys`: keep the SSH keys of the Hetzner Cloud project in a managed block of a
//! user's `authorized_keys` (root's by default).
//!
//! Applies only the metadata document (root's key credential is only compared). The block holds
//! exactly the document's valid keys; every line outside it is the user's and is kept byte for
//! byte. Keys are validated one by one: a bad one is refused with a warning naming its position
//! and fingerprint, the good ones are written. When the document cannot be read or belongs to
//! another server, nothing is changed.

pub mod block;
pub mod cli;
pub mod credential;
pub mod key;
pub mod passwd;
pub mod target;

use std::collections::HashSet;
use std::path::PathBuf;

use hcloud_metadata::logging::message_id;
use hcloud_metadata::{IdentityError, LoadError, Root};

pub use block::BlockError;
pub use key::{KeyError, KeyType, PublicKey, Rejected};
pub use passwd::User;
pub use target::{Location, Replaced, Target, TargetError};

pub const PASSWD: &str = "/etc/passwd";

#[derive(Debug, Clone)]
pub struct Config {
    pub root: Root,
    /// The document, resolved under the root.
    pub metadata: PathBuf,
    pub user: String,
    /// A file to manage instead of `~/.ssh/authorized_keys`, resolved under the root.
    pub authorized_keys: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The file managed.
    pub path: PathBuf,
    /// `None` when there was nothing to do (no keys, no file, no block).
    pub outcome: Option<Replaced>,
    /// Fingerprints of keys now in the block that were not before.
    pub added: Vec<String>,
    /// Fingerprints of keys that were in the block and are gone.
    pub removed: Vec<String>,
    /// Keys in the block now.
    pub keys: usize,
    /// Lines of the document that were refused.
    pub rejected: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot read {path}: {source}")]
    Passwd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("there is no user {user:?} in {path}")]
    NoUser { user: String, path: PathBuf },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{path}: {source}; nothing was changed")]
    Block {
        path: PathBuf,
        #[source]
        source: BlockError,
    },
}

impl Error {
    /// The exit status: 3 the document cannot be used, 4 it belongs to another server,
    /// 5 the target file or directory is refused as unsafe, 1 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Load(_) => 3,
            Error::Identity(_) => 4,
            Error::Target(t) if t.is_refusal() => 5,
            Error::Block { .. } => 5,
            _ => 1,
        }
    }
}

/// Validate the document's key lines: the good keys (each blob once) and the number refused.
/// Each refusal is logged with its position and, when it can be decoded, its fingerprint.
pub fn validate_keys(lines: &[String], source: &str) -> (Vec<PublicKey>, usize) {
    let total = lines.len();
    let mut keys: Vec<PublicKey> = Vec::new();
    let mut seen = HashSet::new();
    let mut rejected = 0;
    for (i, line) in lines.iter().enumerate() {
        match key::parse(line) {
            Ok(k) => {
                if seen.insert(k.blob.clone()) {
                    keys.push(k);
                } else {
                    log::info!(
                        "key {} of {total} in {source} ({}) repeats an earlier key; it is written once",
                        i + 1,
                        k.fingerprint()
                    );
                }
            }
            Err(Rejected { error, fingerprint }) => {
                rejected += 1;
                let fp = fingerprint
                    .as_deref()
                    .unwrap_or("no fingerprint: no key data found in it");
                log::warn!(
                    MESSAGE_ID = message_id::SSH_KEY_REJECTED,
                    FINGERPRINT = fingerprint.as_deref().unwrap_or(""),
                    KEY_POSITION = i + 1;
                    "key {} of {total} in {source} ({fp}) rejected: {error}; the other keys are still written",
                    i + 1
                );
            }
        }
    }
    (keys, rejected)
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 key".into()
    } else {
        format!("{n} keys")
    }
}

fn key_label(k: &PublicKey) -> String {
    match &k.comment {
        Some(c) => format!("{} {} ({c})", k.kind.name(), k.fingerprint()),
        None => format!("{} {}", k.kind.name(), k.fingerprint()),
    }
}

pub fn run(cfg: &Config) -> Result<Report, Error> {
    let doc_path = cfg.root.join(&cfg.metadata);
    let doc = hcloud_metadata::load_document(&doc_path)?;
    if let Err(e) = hcloud_metadata::check_instance(&cfg.root, doc.instance_id) {
        if matches!(e, IdentityError::Mismatch { .. }) {
            log::error!(MESSAGE_ID = message_id::INSTANCE_MISMATCH; "{e}");
        }
        return Err(e.into());
    }

    let passwd_path = cfg.root.join(PASSWD);
    let passwd = std::fs::read_to_string(&passwd_path).map_err(|source| Error::Passwd {
        path: passwd_path.clone(),
        source,
    })?;
    let user = passwd::lookup(&passwd, &cfg.user).ok_or_else(|| Error::NoUser {
        user: cfg.user.clone(),
        path: passwd_path.clone(),
    })?;

    let (keys, rejected) = validate_keys(&doc.ssh_keys, &doc_path.display().to_string());
    let lines: Vec<String> = keys.iter().map(PublicKey::to_line).collect();

    let location = match &cfg.authorized_keys {
        Some(p) => Location::File {
            path: cfg.root.join(p),
        },
        None => Location::Home {
            home: cfg.root.join(&user.home),
        },
    };
    let default_path = match &location {
        Location::File { path } => path.clone(),
        Location::Home { home } => home.join(".ssh/authorized_keys"),
    };
    let Some(target) = Target::open(&location, &user, !keys.is_empty())? else {
        log::info!(
            "no SSH keys in the metadata and no {}: nothing to do",
            default_path.display()
        );
        return Ok(Report {
            path: default_path,
            outcome: None,
            added: vec![],
            removed: vec![],
            keys: 0,
            rejected,
        });
    };
    let path = target.path();
    let existing = target.existing.as_ref().map(|e| e.content.as_slice());
    let edited =
        block::edit(existing.unwrap_or_default(), &lines).map_err(|source| Error::Block {
            path: path.clone(),
            source,
        })?;
    if existing.is_none() && edited.content.is_empty() {
        log::info!(
            "no SSH keys in the metadata and no {}: nothing to do",
            path.display()
        );
        return Ok(Report {
            path,
            outcome: None,
            added: vec![],
            removed: vec![],
            keys: 0,
            rejected,
        });
    }

    // The credential is root's; it is compared, never used.
    if user.name == "root" {
        for c in credential::conflicts(&cfg.root, &keys, &edited.outside) {
            log::warn!(
                MESSAGE_ID = message_id::CREDENTIAL_CONFLICT;
                "{}",
                c.message(&path.display().to_string())
            );
        }
    }

    let old: Vec<PublicKey> = edited
        .old_block
        .iter()
        .filter_map(|l| key::parse(l).ok())
        .collect();
    let old_fps: HashSet<String> = old.iter().map(PublicKey::fingerprint).collect();
    let new_fps: HashSet<String> = keys.iter().map(PublicKey::fingerprint).collect();

    let outcome = target.replace(&edited.content, &user)?;

    let mut added = Vec::new();
    for k in keys.iter().filter(|k| !old_fps.contains(&k.fingerprint())) {
        let fp = k.fingerprint();
        log::info!(
            MESSAGE_ID = message_id::SSH_KEY_ADDED,
            FINGERPRINT = fp.as_str(),
            SSH_USER = user.name.as_str(),
            KEY_TYPE = k.kind.name();
            "added SSH key {} for {} to {}",
            key_label(k),
            user.name,
            path.display()
        );
        added.push(fp);
    }
    let mut removed = Vec::new();
    for k in old.iter().filter(|k| !new_fps.contains(&k.fingerprint())) {
        let fp = k.fingerprint();
        if removed.contains(&fp) {
            continue;
        }
        log::info!(
            MESSAGE_ID = message_id::SSH_KEY_REMOVED,
            FINGERPRINT = fp.as_str(),
            SSH_USER = user.name.as_str(),
            KEY_TYPE = k.kind.name();
            "removed SSH key {} for {} from {}: it is no longer in the metadata",
            key_label(k),
            user.name,
            path.display()
        );
        removed.push(fp);
    }
    match outcome {
        Replaced::Written => log::info!(
            "wrote {} from the metadata to the managed block of {}{}",
            count(keys.len()),
            path.display(),
            if rejected > 0 {
                format!(" ({rejected} refused)")
            } else {
                String::new()
            }
        ),
        Replaced::Unchanged => log::info!(
            "{} already holds the {} from the metadata",
            path.display(),
            count(keys.len())
        ),
    }
    Ok(Report {
        path,
        outcome: Some(outcome),
        added,
        removed,
        keys: keys.len(),
        rejected,
    })
}
