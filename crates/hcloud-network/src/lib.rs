//! `hcloud-network`: the metadata document in, systemd-networkd `.network` files out.
//!
//! - [`render`]: pure rendering of a document into file texts (one per interface).
//! - [`sync_dir`]: write changed files atomically, remove this agent's stale files, touch nothing else.
//! - [`reload_networkd`]: ask systemd-networkd over D-Bus to reload (live root only).
//! - [`hotplug`]: the queue of hotplug events between the udev rule and the refresh service.
//! - [`run`]: all of it, as the binary does it.

pub mod cli;
pub mod hotplug;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use hcloud_metadata::atomic::{WriteError, remove_file};
use hcloud_metadata::{IdentityError, LoadError, Root, WriteOptions, WriteOutcome, write_atomic};

pub use render::{Effect, Problem, RenderOptions, Rendered, render};

/// Where the files go on a server (resolved under the root).
pub const DEFAULT_OUTPUT_DIR: &str = "/run/systemd/network";
/// Hidden mark in the output directory: files were written, networkd not yet reloaded.
pub const RELOAD_PENDING: &str = ".hcloud-network-reload-pending";

/// What [`sync_dir`] did, by file name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// Files of skipped entries left as they were.
    pub kept: Vec<String>,
}

impl Changes {
    pub fn any(&self) -> bool {
        !self.written.is_empty() || !self.removed.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot create the output directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot list the output directory {path}: {source}")]
    List { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Is this a file name this agent owns (`10-hcloud-*.network`)?
pub fn is_own_file(name: &str) -> bool {
    name.len() > render::PREFIX.len() + render::SUFFIX.len()
        && name.starts_with(render::PREFIX)
        && name.ends_with(render::SUFFIX)
}

/// Make `dir` hold exactly `files` among this agent's files: write what differs (atomically,
/// mode 0644), remove own files not in `files` unless listed in `keep`, leave everything else.
pub fn sync_dir(
    dir: &Path,
    files: &BTreeMap<String, String>,
    keep: &std::collections::BTreeSet<String>,
) -> Result<Changes, SyncError> {
    fs::create_dir_all(dir).map_err(|source| SyncError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut changes = Changes::default();
    for (name, text) in files {
        match write_atomic(&dir.join(name), text.as_bytes(), WriteOptions::mode(0o644))? {
            WriteOutcome::Written => changes.written.push(name.clone()),
            WriteOutcome::Unchanged => changes.unchanged.push(name.clone()),
        }
    }
    let entries = fs::read_dir(dir).map_err(|source| SyncError::List {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut present = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SyncError::List {
            path: dir.to_path_buf(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not ours: ours are ASCII
        };
        // Only regular files and symlinks: a drop-in directory of the same name is the user's.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_own_file(&name) && !is_dir && !files.contains_key(&name) {
            present.push(name);
        }
    }
    present.sort();
    for name in present {
        if keep.contains(&name) {
            changes.kept.push(name);
        } else if remove_file(&dir.join(&name))? {
            changes.removed.push(name);
        }
    }
    Ok(changes)
}

/// What [`reload_networkd`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    Reloaded,
    /// systemd-networkd is not on the bus: it reads the files when it starts.
    NotRunning,
}

pub const NETWORKD_BUS_NAME: &str = "org.freedesktop.network1";

/// A connection to the system bus when systemd-networkd is on it; `None` when it is not running.
fn networkd_bus() -> Result<Option<zbus::blocking::Connection>, zbus::Error> {
    let conn = zbus::blocking::Connection::system()?;
    let dbus = zbus::blocking::fdo::DBusProxy::new(&conn)?;
    let name = zbus::names::BusName::try_from(NETWORKD_BUS_NAME)?;
    Ok(dbus.name_has_owner(name)?.then_some(conn))
}

/// Ask systemd-networkd to reload its configuration (`networkctl reload`). Links whose
/// `.network` file appeared, changed or disappeared are reconfigured; the others are left alone.
pub fn reload_networkd() -> Result<Reload, zbus::Error> {
    let Some(conn) = networkd_bus()? else {
        return Ok(Reload::NotRunning);
    };
    conn.call_method(
        Some(NETWORKD_BUS_NAME),
        "/org/freedesktop/network1",
        Some("org.freedesktop.network1.Manager"),
        "Reload",
        &(),
    )?;
    Ok(Reload::Reloaded)
}

/// The MAC addresses our files match (`MACAddress=` of each file's `[Match]`).
pub fn matched_macs(files: &BTreeMap<String, String>) -> BTreeSet<String> {
    files
        .values()
        .flat_map(|text| text.lines())
        .filter_map(|l| l.strip_prefix("MACAddress="))
        .map(|m| m.trim().to_ascii_lowercase())
        .collect()
}

/// Asks networkd to reconfigure (`networkctl reconfigure`) every link it has put in the `failed`
/// state whose MAC one of our files matches, and returns their names. networkd's reload leaves
/// failed links alone (systemd 252), and a hot-plugged NIC can fail before its file exists: renamed
/// while networkd configured it, its DHCP client fails with EBUSY. The link's MAC is read from
/// /sys/class/net under `root`.
pub fn reconfigure_failed_links(
    conn: &zbus::blocking::Connection,
    root: &Root,
    macs: &BTreeSet<String>,
) -> Result<Vec<String>, zbus::Error> {
    let manager = zbus::blocking::Proxy::new(
        conn,
        NETWORKD_BUS_NAME,
        "/org/freedesktop/network1",
        "org.freedesktop.network1.Manager",
    )?;
    let links: Vec<(i32, String, zbus::zvariant::OwnedObjectPath)> =
        manager.call("ListLinks", &())?;
    let mut done = Vec::new();
    for (ifindex, name, path) in links {
        let mac_file = root.join(format!("/sys/class/net/{name}/address"));
        let Ok(mac) = fs::read_to_string(&mac_file) else {
            continue;
        };
        if !macs.contains(&mac.trim().to_ascii_lowercase()) {
            continue;
        }
        let link = zbus::blocking::Proxy::new(
            conn,
            NETWORKD_BUS_NAME,
            path,
            "org.freedesktop.network1.Link",
        )?;
        let state: String = link.get_property("AdministrativeState")?;
        if state == "failed" {
            let () = manager.call("ReconfigureLink", &(ifindex,))?;
            done.push(name);
        }
    }
    Ok(done)
}

/// Everything `hcloud-network` is asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: Root,
    /// The document's path as given (resolved under the root when read).
    pub metadata: PathBuf,
    /// The output directory as given (resolved under the root).
    pub output_dir: PathBuf,
    pub private_dhcp: bool,
}

/// How a run ended, when it got as far as writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub changes: Changes,
    pub problems: Vec<Problem>,
    pub reload: Option<Reload>,
}

impl Outcome {
    /// Everything in the document was configured.
    pub fn complete(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}; no network file was changed")]
    Identity(#[from] IdentityError),
    #[error("{0}; the files that were already written stay")]
    Sync(#[from] SyncError),
    #[error(
        "the network files changed but systemd-networkd could not be asked to reload over D-Bus: {0}; \
         run `networkctl reload`"
    )]
    Reload(zbus::Error),
}

/// Load, check, render, write, reload. Logs one line per decision.
pub fn run(cfg: &Config) -> Result<Outcome, RunError> {
    let doc_path = cfg.root.join(&cfg.metadata);
    let doc = hcloud_metadata::load_document(&doc_path)?;
    hcloud_metadata::check_instance(&cfg.root, doc.instance_id)?;
    let opts = RenderOptions {
        private_dhcp: cfg.private_dhcp,
        source: cfg.metadata.display().to_string(),
    };
    let rendered = render(&doc, &opts);
    for p in &rendered.problems {
        log::warn!("{p}");
    }
    let out_dir = cfg.root.join(&cfg.output_dir);
    let changes = sync_dir(&out_dir, &rendered.files, &rendered.keep)?;
    let dir = out_dir.display();
    for name in &changes.written {
        let what = rendered
            .summaries
            .get(name)
            .map(String::as_str)
            .unwrap_or("");
        log::info!("wrote {dir}/{name}: {what}");
    }
    for name in &changes.unchanged {
        log::debug!("unchanged {dir}/{name}");
    }
    for name in &changes.removed {
        log::info!("removed {dir}/{name}: its interface is no longer in the metadata");
    }
    for name in &changes.kept {
        log::warn!("kept {dir}/{name} as it was: its entry in the metadata was skipped");
    }

    // A run that wrote files but did not get to the reload (killed, D-Bus failure) leaves this
    // mark, so the next run reloads even though it finds the files up to date.
    let pending = out_dir.join(RELOAD_PENDING);
    let was_pending = cfg.root.is_live() && pending.exists();
    let reload = if !changes.any() && !was_pending {
        log::info!(
            "network configuration unchanged ({} file(s) in {dir}); networkd not reloaded",
            changes.unchanged.len()
        );
        None
    } else if !cfg.root.is_live() {
        log::info!(
            "root is {}: files written, networkd not reloaded",
            cfg.root.dir().display()
        );
        None
    } else {
        if was_pending && !changes.any() {
            log::info!("an earlier run wrote files but did not reload networkd: reloading now");
        }
        if let Err(e) = hcloud_metadata::atomic::open_marker(&pending) {
            log::debug!(
                "cannot mark the reload as pending ({}): {e}",
                pending.display()
            );
        }
        match reload_networkd() {
            Ok(r) => {
                if r == Reload::Reloaded {
                    log::info!(
                        "asked systemd-networkd to reload: the changed interfaces are reconfigured"
                    );
                } else {
                    log::info!(
                        "systemd-networkd is not running: it reads the files when it starts"
                    );
                }
                let _ = remove_file(&pending);
                Some(r)
            }
            Err(e) => return Err(RunError::Reload(e)),
        }
    };

    // Also when nothing changed: a refresh that finds its files written may find the link failed.
    if cfg.root.is_live() && reload != Some(Reload::NotRunning) {
        let failed = match networkd_bus() {
            Ok(Some(conn)) => {
                reconfigure_failed_links(&conn, &cfg.root, &matched_macs(&rendered.files))
            }
            Ok(None) => Ok(Vec::new()),
            // Nothing was reloaded, so nothing needed the bus: stay quiet.
            Err(_) if reload.is_none() => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        match failed {
            Ok(names) => {
                for n in names {
                    log::warn!(
                        "{n}: systemd-networkd had given up on it (state failed), which a reload \
                         does not undo; asked it to reconfigure {n} with our file"
                    );
                }
            }
            Err(e) => log::warn!("cannot check systemd-networkd's links for failed ones: {e}"),
        }
    }

    let configured = rendered.files.len();
    if rendered.problems.is_empty() {
        log::info!("configured {configured} interface(s) from {}", opts.source);
    } else {
        let skipped = rendered
            .problems
            .iter()
            .filter(|p| p.effect == Effect::Skipped)
            .count();
        let dropped = rendered.problems.len() - skipped;
        let mut what = Vec::new();
        if skipped > 0 {
            what.push(format!(
                "{skipped} entr{} skipped",
                if skipped == 1 { "y" } else { "ies" }
            ));
        }
        if dropped > 0 {
            what.push(format!("{dropped} value(s) left out"));
        }
        log::warn!(
            "configured {configured} interface(s) from {}, but {}: fix the network in the \
             Hetzner Cloud API, or override it in /etc/systemd/network",
            opts.source,
            what.join(" and "),
        );
    }
    Ok(Outcome {
        changes,
        problems: rendered.problems,
        reload,
    })
}
