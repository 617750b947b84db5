//! `hcloud-dl-metadata`: fetch `metadata` and `metadata/private-networks`, normalize them into
//! the document and write it atomically (0644). Runs every boot. A document for another instance
//! is never written; when nothing valid can be had within the budget, the previous document is
//! kept byte for byte and the run succeeds only if that document belongs to this server.

pub mod cli;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use hcloud_metadata::fetch::{DownloadArgs, FetchError, Fetcher, Rejection, Reply};
use hcloud_metadata::{
    Document, Identity, PrivateNetwork, Root, Summary, Verdict, WriteOptions, WriteOutcome,
    load_document, parse_private_networks, parse_summary, write_atomic,
};

pub struct Options {
    pub download: DownloadArgs,
    /// The document path, resolved under the root.
    pub output: PathBuf,
    /// Retry until the private networks listed match the `86:00:00:*` NICs present.
    pub sync_private_nics: bool,
}

/// What a successful run did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
    Printed,
    /// Fetching failed; the previous document of this instance was kept.
    KeptPrevious,
}

fn text(reply: &Reply) -> Result<&str, Rejection> {
    std::str::from_utf8(&reply.body)
        .map_err(|_| Rejection::Retry("the body is not UTF-8 text".into()))
}

fn accept_ok(reply: &Reply) -> Result<(), Rejection> {
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        Err(Rejection::Fatal(format!("HTTP {}", reply.status)))
    }
}

fn log_warnings(what: &str, warnings: &[String]) {
    for w in warnings {
        log::warn!("{what}: {w}");
    }
}

/// The summary. One without a key the service always sends (`public-keys`, `network-config`,
/// `hostname`, ...: `[]` when there is nothing; a body cut short at a line boundary looks like
/// this) is a broken answer: it is
/// retried, and at the end of the budget the run fails like any failed fetch, so the previous
/// document of this instance is kept whole. Values of such an answer are never used.
fn fetch_summary(f: &Fetcher) -> Result<Summary, FetchError> {
    let summary = f.get("metadata", |reply| {
        accept_ok(&reply)?;
        let summary =
            parse_summary(text(&reply)?).map_err(|e| Rejection::Retry(e.to_string()))?;
        if summary.lacking.is_empty() {
            return Ok(summary);
        }
        Err(Rejection::Retry(format!(
            "the summary has no `{}` (the service always sends it, empty when there is nothing): a broken answer",
            summary.lacking.join("` and no `")
        )))
    })?;
    log_warnings(&f.url("metadata"), &summary.warnings);
    Ok(summary)
}

/// The private networks; a 404 means the server has none (the endpoint is not served then on
/// some generations), not a failure.
fn fetch_private(f: &Fetcher) -> Result<Vec<PrivateNetwork>, FetchError> {
    let parsed = f.get("metadata/private-networks", |reply| {
        if reply.status == 404 {
            log::info!(
                "{}: HTTP 404, taken as no private networks",
                f.url("metadata/private-networks")
            );
            return Ok(Default::default());
        }
        accept_ok(&reply)?;
        parse_private_networks(text(&reply)?).map_err(|e| Rejection::Retry(e.to_string()))
    })?;
    log_warnings(&f.url("metadata/private-networks"), &parsed.warnings);
    Ok(parsed.networks)
}

/// MACs (lower case) of the `86:00:00:*` NICs present under `<root>/sys/class/net`. Virtual
/// devices (veths, bridges: their sysfs link points under `devices/virtual`) may carry a random
/// `86:*` MAC and are not private networks, as in the hotplug udev rule.
pub fn present_private_nics(root: &Root) -> BTreeSet<String> {
    let mut macs = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(root.join("/sys/class/net")) else {
        return macs;
    };
    for e in entries.flatten() {
        let virtual_device = std::fs::read_link(e.path())
            .is_ok_and(|target| target.to_string_lossy().contains("devices/virtual/"));
        if virtual_device {
            continue;
        }
        if let Ok(mac) = std::fs::read_to_string(e.path().join("address")) {
            let mac = mac.trim().to_ascii_lowercase();
            if mac.starts_with("86:00:00:") {
                macs.insert(mac);
            }
        }
    }
    macs
}

fn listed_macs(private: &[PrivateNetwork]) -> BTreeSet<String> {
    private
        .iter()
        .filter_map(|p| p.mac_address.clone())
        .collect()
}

/// Fetch both bodies (and, with `sync`, wait for private-networks to match the NICs present).
fn fetch_document(f: &Fetcher, root: &Root, sync: bool) -> Result<Document, FetchError> {
    let summary = fetch_summary(f)?;
    let mut private = fetch_private(f)?;
    if sync {
        let mut pause = Duration::from_millis(500);
        loop {
            let present = present_private_nics(root);
            let listed = listed_macs(&private);
            if present == listed {
                log::info!(
                    "private networks match the NICs present ({} attached)",
                    present.len()
                );
                break;
            }
            let missing: Vec<_> = present.difference(&listed).cloned().collect();
            let gone: Vec<_> = listed.difference(&present).cloned().collect();
            log::info!(
                "waiting for the metadata service to catch up: NICs not yet listed {missing:?}, listed but absent {gone:?}"
            );
            if !f.pause(pause) {
                log::warn!(
                    "private networks still differ from the NICs present after the budget; writing what the service lists"
                );
                break;
            }
            pause = (pause * 2).min(Duration::from_secs(3));
            private = fetch_private(f)?;
        }
    }
    Ok(Document::from_service(&summary, &private))
}

fn describe(doc: &Document) -> String {
    let n = &doc.network;
    format!(
        "instance {}, hostname {}, IPv4 {}, IPv6 {}, {} private network(s), {} SSH key(s)",
        doc.instance_id,
        doc.hostname.as_deref().unwrap_or("(none)"),
        n.ipv4_address.as_deref().unwrap_or("none"),
        n.ipv6_subnet.as_deref().unwrap_or("none"),
        n.private.len(),
        doc.ssh_keys.len()
    )
}

/// Keep the previous document when it belongs to this instance; otherwise fail with `why`.
fn fall_back(output: &Path, identity: &Identity, why: anyhow::Error) -> anyhow::Result<Outcome> {
    let prev = match load_document(output) {
        Ok(prev) => prev,
        Err(e) => {
            return Err(why.context(format!("and there is no usable previous document ({e})")));
        }
    };
    match identity.check(prev.instance_id) {
        Ok(Verdict::Matches) => {
            log::warn!(
                "{why:#}; keeping the previous document {} of this instance ({})",
                output.display(),
                prev.instance_id
            );
            Ok(Outcome::KeptPrevious)
        }
        Ok(Verdict::NotHetzner { .. }) => Err(why.context(format!(
            "the previous document {} was kept, but DMI cannot confirm it belongs to this server",
            output.display()
        ))),
        Err(e) => Err(why.context(format!(
            "the previous document {} was kept but {e}",
            output.display()
        ))),
    }
}

pub fn run(opts: &Options) -> anyhow::Result<Outcome> {
    let root = Root::new(&opts.download.root);
    let identity = Identity::read(&root)?;
    let fetcher = opts.download.fetcher()?;
    let doc = match fetch_document(&fetcher, &root, opts.sync_private_nics) {
        Ok(doc) => doc,
        Err(e) if opts.download.stdout => return Err(e.into()),
        Err(e) => return fall_back(&opts.output, &identity, anyhow!(e)),
    };
    match identity.check(doc.instance_id) {
        Ok(Verdict::Matches) => {}
        Ok(Verdict::NotHetzner { vendor }) => log::info!(
            "DMI vendor is {}, not Hetzner: the instance id cannot be checked",
            vendor.as_deref().unwrap_or("unknown")
        ),
        Err(e) => {
            log::error!(
                MESSAGE_ID = hcloud_metadata::logging::message_id::INSTANCE_MISMATCH;
                "{e}"
            );
            bail!("refusing to write {}: {e}", opts.output.display());
        }
    }
    let json = doc.to_json();
    if opts.download.stdout {
        std::io::stdout()
            .write_all(&json)
            .context("writing to stdout")?;
        return Ok(Outcome::Printed);
    }
    if let Some(dir) = opts.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let outcome =
        write_atomic(&opts.output, &json, WriteOptions::mode(0o644)).with_context(|| {
            format!(
                "cannot write the metadata document {}",
                opts.output.display()
            )
        })?;
    match outcome {
        WriteOutcome::Written => {
            log::info!("wrote {}: {}", opts.output.display(), describe(&doc));
            Ok(Outcome::Written)
        }
        WriteOutcome::Unchanged => {
            log::info!(
                "{} is up to date: {}",
                opts.output.display(),
                describe(&doc)
            );
            Ok(Outcome::Unchanged)
        }
    }
}
