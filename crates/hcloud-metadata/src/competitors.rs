//! Other software doing an agent's job on the same server: cloud-init, hc-utils,
//! NetworkManager, netplan, ifupdown, systemd-imds (systemd ≥ 261). Stock Hetzner images run some of them; an agent installed
//! on such a server would fight over the same files. Detection only reads files under the
//! root, so it works in `--root` trees; it returns plain data the agent logs as a warning
//! (see [`log_warnings`]). Nothing here changes anything.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Root;

/// Journal `MESSAGE_ID` of the warning "another tool does this job too".
pub const MESSAGE_ID: &str = "3c1a5e0b7f7d4c0f9a5e2b6f1d8e4a10";

/// Where the hand-over of each job is documented.
pub const DOCS: &str = "https://github.com/hcloud-agents/hcloud-agents/blob/main/docs/install.md";

/// A job an agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `hcloud-hostname`.
    Hostname,
    /// `hcloud-ssh-keys`: root's authorized keys.
    SshKeys,
    /// `hcloud-network`: public and private NICs.
    Network,
    /// `hcloud-volumes`: volume automount.
    Volumes,
}

impl Job {
    fn what(self) -> &'static str {
        match self {
            Job::Hostname => "sets the hostname",
            Job::SshKeys => "writes root's SSH keys from the metadata",
            Job::Network => "configures the network interfaces",
            Job::Volumes => "mounts Hetzner Cloud Volumes",
        }
    }
}

/// Another tool that does `job` here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Competitor {
    pub job: Job,
    /// `cloud-init`, `hc-utils`, `NetworkManager`, `netplan`, `ifupdown`, `systemd-imds`.
    pub tool: &'static str,
    /// What shows it is active (paths as on the server).
    pub evidence: String,
    /// How to hand the job over to the agent.
    pub hand_over: String,
}

impl fmt::Display for Competitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} also {} on this server ({}); both would change the same settings. To hand the job over: {} (see {DOCS})",
            self.tool,
            self.job.what(),
            self.evidence,
            self.hand_over
        )
    }
}

/// Every active competitor for `job` under `root`.
pub fn detect(root: &Root, job: Job) -> Vec<Competitor> {
    let mut out = Vec::new();
    let ci = CloudInit::read(root);
    let imds = SystemdImds::read(root);
    match job {
        Job::Hostname => {
            if let Some(ci) = &ci {
                out.extend(ci.hostname());
            }
            out.extend(imds.as_ref().and_then(|i| i.hostname(root)));
        }
        Job::SshKeys => {
            if let Some(ci) = &ci {
                out.extend(ci.ssh_keys());
            }
            out.extend(imds.as_ref().and_then(|i| i.ssh_keys(root)));
        }
        Job::Network => {
            if let Some(ci) = &ci {
                out.extend(ci.network(root));
            }
            out.extend(imds.as_ref().and_then(|i| i.network(root)));
            out.extend(hc_utils(
                root,
                Job::Network,
                "81-hc-network-interfaces.rules",
                "brings private NICs up with dhclient",
            ));
            out.extend(network_manager(root));
            out.extend(netplan(root));
            out.extend(ifupdown(root));
        }
        Job::Volumes => {
            out.extend(hc_utils(
                root,
                Job::Volumes,
                "99-hc-volume-automount.rules",
                "adds automounted volumes to /etc/fstab from udev",
            ));
        }
    }
    out
}

/// [`detect`], logging each competitor as one warning with [`MESSAGE_ID`]. Returns them.
pub fn log_warnings(root: &Root, job: Job) -> Vec<Competitor> {
    let found = detect(root, job);
    for c in &found {
        log::warn!(MESSAGE_ID = MESSAGE_ID; "{c}");
    }
    found
}

fn exists(root: &Root, path: &str) -> bool {
    fs::symlink_metadata(root.join(path)).is_ok()
}

/// Files of `dir` (under the root) ending in `ext`, sorted by name, as (server path, path).
fn dir_files(root: &Root, dir: &str, ext: &str) -> Vec<(String, PathBuf)> {
    let Ok(rd) = fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    let mut v: Vec<(String, PathBuf)> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext) && !n.starts_with('.'))
        .map(|n| (format!("{dir}/{n}"), root.join(format!("{dir}/{n}"))))
        .collect();
    v.sort();
    v
}

/// A udev rule is active when it exists and is not masked by a /dev/null (or empty) file of
/// the same name in /etc/udev/rules.d.
fn udev_rule(root: &Root, name: &str) -> Option<String> {
    let etc = format!("/etc/udev/rules.d/{name}");
    let etc_path = root.join(&etc);
    if let Ok(m) = fs::symlink_metadata(&etc_path) {
        let masked = fs::read_link(&etc_path).is_ok_and(|t| t == Path::new("/dev/null"))
            || (m.is_file() && m.len() == 0);
        return (!masked).then_some(etc);
    }
    ["/usr/lib/udev/rules.d", "/lib/udev/rules.d"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| root.join(p).is_file())
}

fn hc_utils(root: &Root, job: Job, rule: &str, does: &str) -> Option<Competitor> {
    let path = udev_rule(root, rule)?;
    Some(Competitor {
        job,
        tool: "hc-utils",
        evidence: format!("{path} {does}"),
        hand_over: format!(
            "remove the hc-utils package (apt remove hc-utils), or mask the rule: ln -s /dev/null /etc/udev/rules.d/{rule}"
        ),
    })
}

/// The system configuration of cloud-init, when it is installed and not disabled.
struct CloudInit {
    config: Value,
    /// Files read, for the evidence.
    files: Vec<String>,
    /// Files that did not parse: cloud-init may still act, so they count as "active".
    broken: Vec<String>,
}

impl CloudInit {
    fn read(root: &Root) -> Option<CloudInit> {
        if !root.join("/etc/cloud/cloud.cfg").is_file()
            || exists(root, "/etc/cloud/cloud-init.disabled")
        {
            return None;
        }
        if cmdline(root)
            .split_whitespace()
            .any(|w| w == "cloud-init=disabled")
        {
            return None;
        }
        let mut ci = CloudInit {
            config: Value::Object(Default::default()),
            files: Vec::new(),
            broken: Vec::new(),
        };
        let mut sources = vec![(
            "/etc/cloud/cloud.cfg".to_string(),
            root.join("/etc/cloud/cloud.cfg"),
        )];
        sources.extend(dir_files(root, "/etc/cloud/cloud.cfg.d", ".cfg"));
        for (name, path) in sources {
            let text = fs::read_to_string(&path).unwrap_or_default();
            if text.trim().is_empty() {
                continue;
            }
            match serde_saphyr::from_str::<Value>(&text) {
                Ok(v @ Value::Object(_)) => {
                    merge(&mut ci.config, v);
                    ci.files.push(name);
                }
                Ok(Value::Null) => {}
                _ => ci.broken.push(name),
            }
        }
        Some(ci)
    }

    fn key(&self, k: &str) -> Option<&Value> {
        self.config.get(k)
    }

    fn is_true(&self, k: &str) -> bool {
        matches!(self.key(k), Some(Value::Bool(true)))
            || self
                .key(k)
                .and_then(Value::as_str)
                .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "true" | "yes"))
    }

    fn is_false(&self, k: &str) -> bool {
        matches!(self.key(k), Some(Value::Bool(false)))
            || self
                .key(k)
                .and_then(Value::as_str)
                .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "false" | "no"))
    }

    /// The enabled modules among `names`, with the list they are in.
    fn modules(&self, names: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        for list in [
            "cloud_init_modules",
            "cloud_config_modules",
            "cloud_final_modules",
        ] {
            let Some(Value::Array(items)) = self.key(list) else {
                continue;
            };
            for item in items {
                let name = match item {
                    Value::String(s) => s.as_str(),
                    Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or(""),
                    Value::Object(m) => m.get("name").and_then(Value::as_str).unwrap_or(""),
                    _ => "",
                };
                let norm = name.trim().to_ascii_lowercase().replace('-', "_");
                let norm = norm.strip_prefix("cc_").unwrap_or(&norm).to_string();
                if names.contains(&norm.as_str()) {
                    found.push(format!("{norm} in {list}"));
                }
            }
        }
        found
    }

    fn source(&self) -> String {
        let mut s = if self.files.is_empty() {
            "/etc/cloud/cloud.cfg".to_string()
        } else {
            self.files.join(", ")
        };
        if !self.broken.is_empty() {
            s.push_str(&format!(
                "; could not read {} (cloud-init may still act on it)",
                self.broken.join(", ")
            ));
        }
        s
    }

    fn hostname(&self) -> Option<Competitor> {
        if self.is_true("preserve_hostname") {
            return None;
        }
        let m = self.modules(&["set_hostname", "update_hostname"]);
        if m.is_empty() {
            return None;
        }
        Some(Competitor {
            job: Job::Hostname,
            tool: "cloud-init",
            evidence: format!("modules {} of {}", m.join(", "), self.source()),
            hand_over:
                "set `preserve_hostname: true` in /etc/cloud/cloud.cfg.d/99-hcloud-agents.cfg"
                    .into(),
        })
    }

    fn ssh_keys(&self) -> Option<Competitor> {
        if self.is_false("allow_public_ssh_keys") {
            return None;
        }
        let m = self.modules(&["ssh"]);
        if m.is_empty() {
            return None;
        }
        Some(Competitor {
            job: Job::SshKeys,
            tool: "cloud-init",
            evidence: format!(
                "module {} of {} writes the metadata's public keys on the first boot of every instance",
                m.join(", "),
                self.source()
            ),
            hand_over:
                "set `allow_public_ssh_keys: false` in /etc/cloud/cloud.cfg.d/99-hcloud-agents.cfg"
                    .into(),
        })
    }

    fn network(&self, root: &Root) -> Option<Competitor> {
        let disabled = self
            .key("network")
            .and_then(|n| n.get("config"))
            .and_then(Value::as_str)
            .is_some_and(|s| s == "disabled");
        if disabled
            || cmdline(root)
                .split_whitespace()
                .any(|w| w == "network-config=disabled")
        {
            return None;
        }
        let mut evidence = format!("network configuration is not disabled in {}", self.source());
        let rendered: Vec<&str> = [
            "/etc/netplan/50-cloud-init.yaml",
            "/etc/network/interfaces.d/50-cloud-init",
            "/etc/network/interfaces.d/50-cloud-init.cfg",
            "/etc/udev/rules.d/90-cloud-init-hook-hotplug.rules",
        ]
        .into_iter()
        .filter(|p| exists(root, p))
        .collect();
        if !rendered.is_empty() {
            evidence.push_str(&format!("; it wrote {}", rendered.join(", ")));
        }
        Some(Competitor {
            job: Job::Network,
            tool: "cloud-init",
            evidence,
            hand_over: "write `network: {config: disabled}` to /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg, then move its rendered files away (see the table)".into(),
        })
    }
}

/// cloud-init's merge of system config files: mappings merge recursively, later files win,
/// anything else is replaced.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(old) => merge(old, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The kernel command line under the root (`<root>/proc/cmdline`), as `key[=value]` words.
fn cmdline(root: &Root) -> String {
    fs::read_to_string(root.join("/proc/cmdline")).unwrap_or_default()
}

/// The last value of `key` on the kernel command line (the last one wins, as in systemd);
/// `Some("")` for a bare `key`.
fn cmdline_value(cmdline: &str, key: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .filter_map(|w| match w.split_once('=') {
            Some((k, v)) if k == key => Some(v.trim_matches('"').to_string()),
            None if w == key => Some(String::new()),
            _ => None,
        })
        .next_back()
}

/// systemd's boolean words; a bare switch is true. `None` for anything else.
fn systemd_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// `path` under the root is a symlink to /dev/null (how systemd masks units and generators).
fn masked(root: &Root, path: &str) -> bool {
    fs::read_link(root.join(path)).is_ok_and(|t| t == Path::new("/dev/null"))
}

/// A unit masked in /etc or /run: `/etc/systemd/system/UNIT -> /dev/null`.
fn unit_masked(root: &Root, unit: &str) -> Option<String> {
    ["/etc/systemd/system", "/run/systemd/system"]
        .iter()
        .map(|d| format!("{d}/{unit}"))
        .find(|p| masked(root, p))
}

/// systemd-imds' network mode (`systemd.imds.network=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsNetwork {
    /// No early networking.
    Off,
    /// Early networking and a `prohibit` route to the metadata address: only marked sockets
    /// (CAP_NET_ADMIN) and clients of its Varlink API reach the service.
    Locked,
    /// Early networking, no `prohibit` route (systemd 262's default).
    Unlocked,
}

impl ImdsNetwork {
    fn name(self) -> &'static str {
        match self {
            ImdsNetwork::Off => "off",
            ImdsNetwork::Locked => "locked",
            ImdsNetwork::Unlocked => "unlocked",
        }
    }
}

/// systemd-imds' generator and units (the packages put them under /usr/lib; NixOS links them
/// into /etc).
const IMDS_GENERATOR: &str = "systemd-imds-generator";
const IMDS_IMPORT: &str = "systemd-imds-import.service";
const IMDS_NETWORK: &str = "systemd-imds-early-network.service";
const IMDS_NETWORK_FILE: &str = "/run/systemd/network/85-imds-early.network";
/// The credentials systemd-imds' import writes, and that our agents compare with the document.
pub const CREDSTORE: &str = "/run/credstore";
pub const SSH_KEY_CREDENTIAL: &str = "ssh.authorized_keys.root";
pub const HOSTNAME_CREDENTIAL: &str = "firstboot.hostname";

/// systemd-imds as its files and the kernel command line configure it for the running (main)
/// system, with systemd 262.1's documented defaults: `systemd.imds=auto` (on where the hwdb
/// matches the BIOS vendor `Hetzner`), `systemd.imds.network=unlocked`, and
/// `systemd.imds.import=` true in the initrd but false on the main system. A switch without the
/// `rd.` prefix applies to the initrd as well; `rd.`-prefixed ones only there, so they are not
/// read here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdImds {
    /// What shows it is installed (a path as on the server).
    pub installed: String,
    /// The network mode the generator applies (`Off` also when the early-network unit is
    /// masked).
    pub network: ImdsNetwork,
    /// `systemd-imds-import.service` is pulled in on the main system.
    pub import: bool,
    /// Why it is active: the hwdb match or `systemd.imds=1`.
    pub why_active: String,
}

impl SystemdImds {
    /// `None` when it is not installed, or switched off as a whole (`systemd.imds=0`, the
    /// generator masked, or a BIOS vendor other than Hetzner without `systemd.imds=1`).
    pub fn read(root: &Root) -> Option<SystemdImds> {
        let installed = [
            format!("/usr/lib/systemd/system-generators/{IMDS_GENERATOR}"),
            format!("/lib/systemd/system-generators/{IMDS_GENERATOR}"),
            format!("/usr/lib/systemd/system/{IMDS_IMPORT}"),
            format!("/usr/lib/systemd/system/{IMDS_NETWORK}"),
            format!("/lib/systemd/system/{IMDS_IMPORT}"),
            // NixOS links its units and extra generators into /etc.
            format!("/etc/systemd/system/{IMDS_IMPORT}"),
            format!("/etc/systemd/system/{IMDS_NETWORK}"),
            format!("/etc/systemd/system-generators/{IMDS_GENERATOR}"),
            format!("/run/current-system/sw/lib/systemd/system-generators/{IMDS_GENERATOR}"),
        ]
        .into_iter()
        .find(|p| root.join(p).exists())?;
        if [
            "/etc/systemd/system-generators",
            "/run/systemd/system-generators",
        ]
        .iter()
        .any(|d| masked(root, &format!("{d}/{IMDS_GENERATOR}")))
        {
            return None;
        }
        let cmdline = cmdline(root);
        let why_active = match cmdline_value(&cmdline, "systemd.imds")
            .as_deref()
            .map(|v| (v, systemd_bool(v)))
        {
            Some((_, Some(false))) => return None,
            Some((_, Some(true))) => "systemd.imds=1 is on the kernel command line".to_string(),
            _ => {
                let vendor = fs::read_to_string(root.join("/sys/class/dmi/id/bios_vendor"));
                match vendor {
                    Ok(v) if v.trim() != "Hetzner" => return None,
                    Ok(_) => "systemd's hwdb matches the BIOS vendor Hetzner".to_string(),
                    Err(_) => {
                        "systemd's hwdb matches a Hetzner server by its BIOS vendor".to_string()
                    }
                }
            }
        };
        let network = match cmdline_value(&cmdline, "systemd.imds.network").as_deref() {
            _ if unit_masked(root, IMDS_NETWORK).is_some() => ImdsNetwork::Off,
            Some("off") => ImdsNetwork::Off,
            Some("locked") => ImdsNetwork::Locked,
            _ => ImdsNetwork::Unlocked,
        };
        let import = cmdline_value(&cmdline, "systemd.imds.import")
            .as_deref()
            .and_then(systemd_bool)
            .unwrap_or(false)
            && unit_masked(root, IMDS_IMPORT).is_none();
        Some(SystemdImds {
            installed,
            network,
            import,
            why_active,
        })
    }

    /// A credential under /run/credstore (written by the import, also the initrd's, where it
    /// is on by default).
    fn credential(root: &Root, name: &str) -> Option<String> {
        let path = format!("{CREDSTORE}/{name}");
        root.join(&path).is_file().then_some(path)
    }

    /// The import is pulled in on the main system, or its credential is there already (the
    /// initrd's import, whose default is on).
    fn imports(&self, root: &Root, credential: &str) -> Option<String> {
        if self.import {
            return Some(format!(
                "systemd.imds.import=1: {IMDS_IMPORT} imports credential {credential} into {CREDSTORE}"
            ));
        }
        Self::credential(root, credential)
            .map(|p| format!("{p} exists: an import ran this boot (the initrd imports by default)"))
    }

    fn import_hand_over() -> String {
        format!(
            "add `systemd.imds.import=0` to the kernel command line (it covers the initrd too), or `systemctl mask {IMDS_IMPORT}`"
        )
    }

    fn competitor(&self, job: Job, evidence: String, hand_over: String) -> Competitor {
        Competitor {
            job,
            tool: "systemd-imds",
            evidence: format!(
                "{evidence}; {} is installed and {}",
                self.installed, self.why_active
            ),
            hand_over,
        }
    }

    fn ssh_keys(&self, root: &Root) -> Option<Competitor> {
        let import = self.imports(root, SSH_KEY_CREDENTIAL)?;
        // tmpfiles' provision.conf turns the credential into /root/.ssh/authorized_keys; the
        // first of /etc, /run, /usr/lib wins, and a /dev/null link (or another file) masks it.
        let provision = [
            "/etc/tmpfiles.d/provision.conf",
            "/run/tmpfiles.d/provision.conf",
            "/usr/lib/tmpfiles.d/provision.conf",
            "/lib/tmpfiles.d/provision.conf",
        ]
        .into_iter()
        .find(|p| fs::symlink_metadata(root.join(p)).is_ok())?;
        let writes = fs::read_to_string(root.join(provision))
            .unwrap_or_default()
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains(SSH_KEY_CREDENTIAL));
        if !writes {
            return None;
        }
        Some(self.competitor(
            Job::SshKeys,
            format!(
                "{import}, and {provision} writes it to /root/.ssh/authorized_keys when that file is absent, outside the managed block, where it stays when the key is removed in Hetzner Cloud"
            ),
            Self::import_hand_over(),
        ))
    }

    fn hostname(&self, root: &Root) -> Option<Competitor> {
        let import = self.imports(root, HOSTNAME_CREDENTIAL)?;
        Some(self.competitor(
            Job::Hostname,
            format!("{import}, which systemd-firstboot applies as the hostname"),
            Self::import_hand_over(),
        ))
    }

    fn network(&self, root: &Root) -> Option<Competitor> {
        let written = exists(root, IMDS_NETWORK_FILE);
        if self.network == ImdsNetwork::Off && !written {
            return None;
        }
        let mut evidence = format!(
            "network mode {}: {IMDS_NETWORK} writes {IMDS_NETWORK_FILE}, DHCP on every ethernet NIC, before the agents' files exist",
            self.network.name()
        );
        if written {
            evidence.push_str(" (it is there now)");
        }
        if self.network == ImdsNetwork::Locked {
            evidence.push_str(
                "; locked mode adds a prohibit route to 169.254.169.254, so the downloaders cannot reach the metadata service",
            );
        }
        Some(self.competitor(
            Job::Network,
            evidence,
            format!(
                "add `systemd.imds.network=off` to the kernel command line, or `systemctl mask {IMDS_NETWORK}`"
            ),
        ))
    }
}

/// Where credentials given to the whole system are found: systemd-imds' import writes into
/// `/run/credstore`; the system's own credentials (from the VMM, the kernel command line) are
/// in `/run/credentials/@system`.
pub const CREDENTIAL_DIRS: [&str; 2] = [CREDSTORE, "/run/credentials/@system"];

/// A credential file found under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The path as on the server.
    pub path: String,
    /// Its content (lossy UTF-8, at most 64 KiB read).
    pub text: String,
}

/// Every readable credential `name` in [`CREDENTIAL_DIRS`]. Unreadable ones are skipped: the
/// agents only compare them with the document, they never use them.
pub fn credentials(root: &Root, name: &str) -> Vec<Credential> {
    use std::io::Read;
    CREDENTIAL_DIRS
        .iter()
        .filter_map(|dir| {
            let path = format!("{dir}/{name}");
            let file = fs::File::open(root.join(&path)).ok()?;
            if !file.metadata().ok()?.is_file() {
                return None;
            }
            let mut bytes = Vec::new();
            file.take(64 * 1024).read_to_end(&mut bytes).ok()?;
            Some(Credential {
                path,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })
        })
        .collect()
}

/// Is `unit` enabled (a link in a `.wants` directory of /etc/systemd/system)?
fn enabled(root: &Root, unit: &str) -> Option<String> {
    [
        "multi-user.target.wants",
        "network-online.target.wants",
        "network.target.wants",
    ]
    .iter()
    .map(|t| format!("/etc/systemd/system/{t}/{unit}"))
    .find(|p| exists(root, p))
}

/// NetworkManager keeps off ethernet NICs when `unmanaged-devices` covers them.
fn nm_unmanages_ethernet(value: &str) -> bool {
    let items: Vec<&str> = value
        .split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let covers = items.iter().any(|i| {
        matches!(
            *i,
            "*" | "type:ethernet"
                | "interface-name:*"
                | "interface-name:en*"
                | "interface-name:eth*"
        )
    });
    let except = items
        .iter()
        .any(|i| *i == "except:type:ethernet" || i.starts_with("except:interface-name:e"));
    covers && !except
}

fn network_manager(root: &Root) -> Option<Competitor> {
    let link = enabled(root, "NetworkManager.service")?;
    let mut confs: Vec<(String, PathBuf)> = Vec::new();
    confs.extend(dir_files(root, "/usr/lib/NetworkManager/conf.d", ".conf"));
    confs.push((
        "/etc/NetworkManager/NetworkManager.conf".into(),
        root.join("/etc/NetworkManager/NetworkManager.conf"),
    ));
    confs.extend(dir_files(root, "/etc/NetworkManager/conf.d", ".conf"));
    // The last setting read wins, as in NetworkManager.
    let mut unmanaged = None;
    for (_, path) in &confs {
        let text = fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            match line.split_once('=') {
                Some((k, v)) if k.trim() == "unmanaged-devices" => {
                    unmanaged = Some(v.trim().to_string());
                }
                _ => {}
            }
        }
    }
    if unmanaged.as_deref().is_some_and(nm_unmanages_ethernet) {
        return None;
    }
    Some(Competitor {
        job: Job::Network,
        tool: "NetworkManager",
        evidence: format!(
            "{link} is enabled and no unmanaged-devices setting keeps it off ethernet NICs"
        ),
        hand_over: "add /etc/NetworkManager/conf.d/99-hcloud-agents.conf with `[keyfile]` and `unmanaged-devices=type:ethernet`, or disable NetworkManager".into(),
    })
}

fn netplan(root: &Root) -> Option<Competitor> {
    let mut found: Vec<String> = dir_files(root, "/run/systemd/network", ".network")
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains("/10-netplan-"))
        .collect();
    if found.is_empty() && exists(root, "/usr/sbin/netplan") {
        found = dir_files(root, "/etc/netplan", ".yaml")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
    }
    if found.is_empty() {
        return None;
    }
    Some(Competitor {
        job: Job::Network,
        tool: "netplan",
        evidence: format!("{} configure interfaces through systemd-networkd", found.join(", ")),
        hand_over: "move the interface definitions out of /etc/netplan (after disabling cloud-init's network configuration) and run `netplan generate`".into(),
    })
}

fn ifupdown(root: &Root) -> Option<Competitor> {
    let link = enabled(root, "networking.service")?;
    let mut files = vec![(
        "/etc/network/interfaces".to_string(),
        root.join("/etc/network/interfaces"),
    )];
    files.extend(dir_files(root, "/etc/network/interfaces.d", ""));
    let mut found = Vec::new();
    for (name, path) in files {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let ifaces: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("iface"))
                    .then(|| w.next())
                    .flatten()
                    .filter(|n| *n != "lo")
                    .map(str::to_string)
            })
            .collect();
        if !ifaces.is_empty() {
            found.push(format!("{name} ({})", ifaces.join(", ")));
        }
    }
    if found.is_empty() {
        return None;
    }
    Some(Competitor {
        job: Job::Network,
        tool: "ifupdown",
        evidence: format!("{link} is enabled and configures {}", found.join(", ")),
        hand_over: "remove those `iface` stanzas (or the file cloud-init wrote) so systemd-networkd alone configures the NICs".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, path: &str, text: &str) {
        let p = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn link(root: &Path, path: &str, target: &str) {
        let p = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    /// The parts of Debian 12's cloud.cfg that matter here, as on Hetzner's image.
    const DEBIAN_CLOUD_CFG: &str = "\
users:
  - default
disable_root: false
preserve_hostname: false
cloud_init_modules:
  - migrator
  - seed_random
  - bootcmd
  - write-files
  - growpart
  - resizefs
  - disk_setup
  - mounts
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - ca-certs
  - rsyslog
  - users-groups
  - ssh
cloud_config_modules:
  - locale
  - [runcmd, always]
";

    /// A stock Hetzner Debian server: cloud-init with its network file, hc-utils,
    /// ifupdown.
    fn stock_debian() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "/etc/cloud/cloud.cfg", DEBIAN_CLOUD_CFG);
        write(
            r,
            "/etc/cloud/cloud.cfg.d/90_dpkg.cfg",
            "datasource_list: [ Hetzner, None ]\n",
        );
        write(
            r,
            "/etc/network/interfaces",
            "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n",
        );
        write(
            r,
            "/etc/network/interfaces.d/50-cloud-init",
            "auto eth0\niface eth0 inet dhcp\niface eth0 inet6 static\n    address 2001:db8::1/64\n",
        );
        link(
            r,
            "/etc/systemd/system/multi-user.target.wants/networking.service",
            "/lib/systemd/system/networking.service",
        );
        write(
            r,
            "/lib/udev/rules.d/81-hc-network-interfaces.rules",
            "# hc\n",
        );
        write(
            r,
            "/lib/udev/rules.d/99-hc-volume-automount.rules",
            "# hc\n",
        );
        t
    }

    fn tools(root: &Path, job: Job) -> Vec<&'static str> {
        detect(&Root::new(root), job)
            .into_iter()
            .map(|c| c.tool)
            .collect()
    }

    #[test]
    fn a_stock_debian_server_has_a_competitor_for_every_job() {
        let t = stock_debian();
        let r = Root::new(t.path());
        let host = detect(&r, Job::Hostname);
        assert_eq!(host.len(), 1);
        assert!(
            host[0]
                .evidence
                .contains("set_hostname in cloud_init_modules")
        );
        assert!(
            host[0]
                .evidence
                .contains("update_hostname in cloud_init_modules")
        );
        assert!(host[0].hand_over.contains("preserve_hostname: true"));
        let msg = host[0].to_string();
        assert!(
            msg.starts_with("cloud-init also sets the hostname on this server"),
            "{msg}"
        );

        let keys = detect(&r, Job::SshKeys);
        assert_eq!(keys.len(), 1);
        assert!(keys[0].hand_over.contains("allow_public_ssh_keys: false"));

        let net = detect(&r, Job::Network);
        let names: Vec<_> = net.iter().map(|c| c.tool).collect();
        assert_eq!(names, ["cloud-init", "hc-utils", "ifupdown"]);
        assert!(
            net[0]
                .evidence
                .contains("/etc/network/interfaces.d/50-cloud-init")
        );
        assert!(net[2].evidence.contains("50-cloud-init (eth0, eth0)"));

        let vols = detect(&r, Job::Volumes);
        assert_eq!(vols.len(), 1);
        assert!(
            vols[0]
                .evidence
                .contains("/lib/udev/rules.d/99-hc-volume-automount.rules")
        );
    }

    #[test]
    fn the_documented_hand_over_silences_each_warning() {
        let t = stock_debian();
        let r = t.path();
        write(
            r,
            "/etc/cloud/cloud.cfg.d/99-hcloud-agents.cfg",
            "preserve_hostname: true\nallow_public_ssh_keys: false\n",
        );
        write(
            r,
            "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg",
            "network: {config: disabled}\n",
        );
        assert!(tools(r, Job::Hostname).is_empty());
        assert!(tools(r, Job::SshKeys).is_empty());
        // cloud-init is quiet, but its file still makes ifupdown configure eth0.
        assert_eq!(tools(r, Job::Network), ["hc-utils", "ifupdown"]);
        fs::remove_file(r.join("etc/network/interfaces.d/50-cloud-init")).unwrap();
        link(
            r,
            "/etc/udev/rules.d/81-hc-network-interfaces.rules",
            "/dev/null",
        );
        link(
            r,
            "/etc/udev/rules.d/99-hc-volume-automount.rules",
            "/dev/null",
        );
        assert!(tools(r, Job::Network).is_empty());
        assert!(tools(r, Job::Volumes).is_empty());
    }

    #[test]
    fn disabled_cloud_init_is_no_competitor() {
        let t = stock_debian();
        write(t.path(), "/etc/cloud/cloud-init.disabled", "");
        assert!(tools(t.path(), Job::Hostname).is_empty());
        assert!(tools(t.path(), Job::SshKeys).is_empty());
        assert!(!tools(t.path(), Job::Network).contains(&"cloud-init"));
    }

    #[test]
    fn modules_removed_from_the_lists_are_no_competitor() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "/etc/cloud/cloud.cfg",
            "cloud_init_modules: [cc_set-hostname]\n",
        );
        assert_eq!(tools(t.path(), Job::Hostname), ["cloud-init"]);
        // A later file replaces the list.
        write(
            t.path(),
            "/etc/cloud/cloud.cfg.d/50-mine.cfg",
            "cloud_init_modules: [growpart]\n",
        );
        assert!(tools(t.path(), Job::Hostname).is_empty());
        assert!(tools(t.path(), Job::SshKeys).is_empty());
    }

    #[test]
    fn a_broken_config_file_still_counts_and_is_named() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "/etc/cloud/cloud.cfg", DEBIAN_CLOUD_CFG);
        write(
            t.path(),
            "/etc/cloud/cloud.cfg.d/10-bad.cfg",
            "a: [unclosed\n",
        );
        let c = detect(&Root::new(t.path()), Job::Hostname);
        assert_eq!(c.len(), 1);
        assert!(
            c[0].evidence
                .contains("could not read /etc/cloud/cloud.cfg.d/10-bad.cfg")
        );
    }

    #[test]
    fn ubuntu_netplan_and_network_manager() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "/run/systemd/network/10-netplan-eth0.network",
            "[Match]\n",
        );
        link(
            r,
            "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
            "/usr/lib/systemd/system/NetworkManager.service",
        );
        assert_eq!(tools(r, Job::Network), ["NetworkManager", "netplan"]);
        // Ubuntu server's global setting keeps NetworkManager off everything but Wi-Fi/WWAN.
        write(
            r,
            "/usr/lib/NetworkManager/conf.d/10-globally-managed-devices.conf",
            "[keyfile]\nunmanaged-devices=*,except:type:wifi,except:type:gsm,except:type:cdma\n",
        );
        assert_eq!(tools(r, Job::Network), ["netplan"]);
        write(
            r,
            "/etc/NetworkManager/conf.d/50-all.conf",
            "[keyfile]\nunmanaged-devices=except:type:ethernet\n",
        );
        assert_eq!(tools(r, Job::Network), ["NetworkManager", "netplan"]);
    }

    /// Debian sid's systemd-imds package and systemd's provision.conf, as installed.
    fn sid_with_imds() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "/usr/lib/systemd/system-generators/systemd-imds-generator",
            "\x7fELF",
        );
        write(
            r,
            "/usr/lib/systemd/system/systemd-imds-import.service",
            "[Service]\n",
        );
        write(
            r,
            "/usr/lib/systemd/system/systemd-imds-early-network.service",
            "[Service]\n",
        );
        write(
            r,
            "/usr/lib/tmpfiles.d/provision.conf",
            "d- /root/.ssh :0700\nf^ /root/.ssh/authorized_keys :0600 root :root - ssh.authorized_keys.root\n",
        );
        write(r, "/sys/class/dmi/id/bios_vendor", "Hetzner\n");
        t
    }

    fn cmdline_is(root: &Path, line: &str) {
        write(
            root,
            "/proc/cmdline",
            &format!("BOOT_IMAGE=/vmlinuz root=/dev/sda1 {line}\n"),
        );
    }

    #[test]
    fn systemd_imds_defaults_compete_on_the_network_only() {
        let t = sid_with_imds();
        let r = t.path();
        cmdline_is(r, "");
        let net = detect(&Root::new(r), Job::Network);
        assert_eq!(net.len(), 1);
        assert_eq!(net[0].tool, "systemd-imds");
        let msg = net[0].to_string();
        assert!(msg.contains("network mode unlocked"), "{msg}");
        assert!(msg.contains("85-imds-early.network"), "{msg}");
        assert!(msg.contains("BIOS vendor Hetzner"), "{msg}");
        assert!(msg.contains("systemd.imds.network=off"), "{msg}");
        assert!(
            msg.contains("systemctl mask systemd-imds-early-network.service"),
            "{msg}"
        );
        assert!(!msg.contains("prohibit"), "{msg}");
        // The import is off on the main system unless switched on.
        assert!(tools(r, Job::SshKeys).is_empty());
        assert!(tools(r, Job::Hostname).is_empty());
        assert!(tools(r, Job::Volumes).is_empty());
    }

    #[test]
    fn systemd_imds_import_competes_on_keys_and_hostname() {
        let t = sid_with_imds();
        let r = t.path();
        cmdline_is(r, "systemd.imds.import=1");
        let keys = detect(&Root::new(r), Job::SshKeys);
        assert_eq!(keys.len(), 1);
        let msg = keys[0].to_string();
        assert!(
            msg.starts_with("systemd-imds also writes root's SSH keys"),
            "{msg}"
        );
        assert!(msg.contains("credential ssh.authorized_keys.root"), "{msg}");
        assert!(
            msg.contains("/usr/lib/tmpfiles.d/provision.conf writes it"),
            "{msg}"
        );
        assert!(msg.contains("outside the managed block"), "{msg}");
        assert!(msg.contains("systemd.imds.import=0"), "{msg}");
        let host = detect(&Root::new(r), Job::Hostname);
        assert_eq!(host.len(), 1);
        assert!(host[0].evidence.contains("firstboot.hostname"));
        assert!(host[0].hand_over.contains("systemd.imds.import=0"));
        // The last switch wins, as in systemd.
        cmdline_is(r, "systemd.imds.import=1 systemd.imds.import=no");
        assert!(tools(r, Job::SshKeys).is_empty());
        assert!(tools(r, Job::Hostname).is_empty());
        // A bare boolean switch is true.
        cmdline_is(r, "systemd.imds.import");
        assert_eq!(tools(r, Job::SshKeys), ["systemd-imds"]);
        // Masking the import unit hands both jobs over.
        cmdline_is(r, "systemd.imds.import=1");
        link(
            r,
            "/etc/systemd/system/systemd-imds-import.service",
            "/dev/null",
        );
        assert!(tools(r, Job::SshKeys).is_empty());
        assert!(tools(r, Job::Hostname).is_empty());
    }

    #[test]
    fn an_imported_credential_counts_even_with_the_import_off_here() {
        // The initrd imports by default; its credentials outlive the switch to the main system.
        let t = sid_with_imds();
        let r = t.path();
        cmdline_is(r, "");
        write(
            r,
            "/run/credstore/ssh.authorized_keys.root",
            "ssh-ed25519 AAAA x\n",
        );
        let keys = detect(&Root::new(r), Job::SshKeys);
        assert_eq!(keys.len(), 1);
        assert!(
            keys[0]
                .evidence
                .contains("/run/credstore/ssh.authorized_keys.root exists"),
            "{}",
            keys[0].evidence
        );
        assert!(tools(r, Job::Hostname).is_empty());
        // Without provision.conf nobody writes the key into authorized_keys.
        link(r, "/etc/tmpfiles.d/provision.conf", "/dev/null");
        assert!(tools(r, Job::SshKeys).is_empty());
    }

    #[test]
    fn systemd_imds_network_modes_and_masks() {
        let t = sid_with_imds();
        let r = t.path();
        cmdline_is(r, "systemd.imds.network=locked");
        let net = detect(&Root::new(r), Job::Network);
        assert_eq!(net.len(), 1);
        assert!(net[0].evidence.contains("network mode locked"));
        assert!(
            net[0]
                .evidence
                .contains("prohibit route to 169.254.169.254")
        );
        cmdline_is(r, "systemd.imds.network=off");
        assert!(tools(r, Job::Network).is_empty());
        // A file written this boot is evidence whatever the command line says now.
        write(r, "/run/systemd/network/85-imds-early.network", "[Match]\n");
        let net = detect(&Root::new(r), Job::Network);
        assert!(net[0].evidence.contains("(it is there now)"));
        fs::remove_file(r.join("run/systemd/network/85-imds-early.network")).unwrap();
        cmdline_is(r, "");
        link(
            r,
            "/etc/systemd/system/systemd-imds-early-network.service",
            "/dev/null",
        );
        assert!(tools(r, Job::Network).is_empty());
    }

    #[test]
    fn systemd_imds_linked_in_as_on_nixos() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "/nix/store/x-systemd/lib/systemd/system/systemd-imds-early-network.service",
            "[Service]\n",
        );
        link(
            r,
            "/etc/systemd/system/systemd-imds-early-network.service",
            &r.join("nix/store/x-systemd/lib/systemd/system/systemd-imds-early-network.service")
                .display()
                .to_string(),
        );
        assert_eq!(tools(r, Job::Network), ["systemd-imds"]);
    }

    #[test]
    fn systemd_imds_switched_off_as_a_whole() {
        let t = sid_with_imds();
        let r = t.path();
        cmdline_is(r, "systemd.imds=0 systemd.imds.import=1");
        for job in [Job::Hostname, Job::SshKeys, Job::Network] {
            assert!(tools(r, job).is_empty(), "{job:?}");
        }
        cmdline_is(r, "systemd.imds=0 systemd.imds=yes systemd.imds.import=1");
        assert_eq!(tools(r, Job::SshKeys), ["systemd-imds"]);
        // Another BIOS vendor: the hwdb does not match, unless forced.
        write(r, "/sys/class/dmi/id/bios_vendor", "SeaBIOS\n");
        cmdline_is(r, "systemd.imds.import=1");
        assert!(tools(r, Job::Network).is_empty());
        cmdline_is(r, "systemd.imds=1 systemd.imds.import=1");
        let net = detect(&Root::new(r), Job::Network);
        assert!(
            net[0]
                .evidence
                .contains("systemd.imds=1 is on the kernel command line")
        );
        // A masked generator pulls in nothing.
        link(
            r,
            "/etc/systemd/system-generators/systemd-imds-generator",
            "/dev/null",
        );
        for job in [Job::Hostname, Job::SshKeys, Job::Network] {
            assert!(tools(r, job).is_empty(), "{job:?}");
        }
    }

    #[test]
    fn a_plain_server_has_none() {
        let t = tempfile::tempdir().unwrap();
        for job in [Job::Hostname, Job::SshKeys, Job::Network, Job::Volumes] {
            assert!(tools(t.path(), job).is_empty());
        }
    }
}
