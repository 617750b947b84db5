//! Root's key as a credential from another source: systemd-imds' import writes the metadata's
//! first key as `ssh.authorized_keys.root` into `/run/credstore`, and systemd's tmpfiles
//! `provision.conf` copies it into `/root/.ssh/authorized_keys` when that file is absent,
//! outside the managed block. The agent never trusts the credential over the document: the
//! block holds the document's keys only. It warns (once per run; the unit runs once per boot)
//! when the credential holds a key the document does not, or when a copy of the credential's
//! key sits outside the block, where it survives the key's removal in Hetzner Cloud.

use std::collections::HashSet;

use hcloud_metadata::Root;
use hcloud_metadata::competitors::{self, SSH_KEY_CREDENTIAL};

use crate::key::{self, PublicKey};

/// One finding about one credential file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The credential's path as on the server.
    pub credential: String,
    /// Fingerprints of its keys that are not in the document.
    pub not_in_metadata: Vec<String>,
    /// Fingerprints of its keys that also stand, line for line, outside the managed block.
    pub copied_outside: Vec<String>,
}

impl Conflict {
    /// The warning, naming the credential, what wins and the hand-over.
    pub fn message(&self, file: &str) -> String {
        let mut parts = Vec::new();
        if !self.not_in_metadata.is_empty() {
            parts.push(format!(
                "it holds {} that the metadata does not ({}); the metadata wins: the managed block holds only the metadata's keys",
                if self.not_in_metadata.len() == 1 { "a key" } else { "keys" },
                self.not_in_metadata.join(", ")
            ));
        }
        if !self.copied_outside.is_empty() {
            parts.push(format!(
                "{file} has {} outside the managed block, as systemd's tmpfiles provision.conf writes it ({}); like every line outside the block it is kept byte for byte, and it stays when the key is removed in Hetzner Cloud: remove the line by hand",
                if self.copied_outside.len() == 1 { "its key" } else { "its keys" },
                self.copied_outside.join(", ")
            ));
        }
        format!(
            "credential {} (systemd-imds' import or another source) differs from the metadata: {}. To hand the key import over to hcloud-ssh-keys, boot with `systemd.imds.import=0` (see {})",
            self.credential,
            parts.join("; "),
            competitors::DOCS
        )
    }
}

/// Compare root's key credentials with the document's `keys` and the lines `outside` the block.
pub fn conflicts(root: &Root, keys: &[PublicKey], outside: &[String]) -> Vec<Conflict> {
    let ours: HashSet<&[u8]> = keys.iter().map(|k| k.blob.as_slice()).collect();
    let outside: HashSet<&str> = outside.iter().map(|l| l.trim()).collect();
    let mut found = Vec::new();
    for cred in competitors::credentials(root, SSH_KEY_CREDENTIAL) {
        let mut c = Conflict {
            credential: cred.path,
            not_in_metadata: Vec::new(),
            copied_outside: Vec::new(),
        };
        for line in cred.text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Ok(k) = key::parse(line) else {
                continue;
            };
            if !ours.contains(k.blob.as_slice()) {
                c.not_in_metadata.push(k.fingerprint());
            }
            if outside.contains(line) {
                c.copied_outside.push(k.fingerprint());
            }
        }
        if !c.not_in_metadata.is_empty() || !c.copied_outside.is_empty() {
            found.push(c);
        }
    }
    found
}
