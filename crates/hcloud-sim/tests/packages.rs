//! End-to-end: an existing Hetzner server (the simulator's cloud-init guest: cloud-init with
//! the Hetzner datasource set the hostname, root's keys and the public network) gets only
//! `hcloud-dl-metadata` and `hcloud-network` from their .debs, installed with apt as
//! docs/install.md says. A private network attached afterwards is configured; cloud-init's
//! results (hostname, keys, its networkd file) stay untouched; `apt remove` leaves no unit,
//! no generated file and no failed unit behind, and purge removes the document. The .debs are
//! built by pkg/debian/build-debs from the tree `hcloud-image dist --no-build` stages out of the
//! static build. Needs root, QEMU, dpkg-deb, jq and fakeroot (scripts/install-deps).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hcloud_sim::image::{self, Guest, Release};
use hcloud_sim::scenario::{self, ScenarioValue};
use hcloud_sim::sim::{self, Sim};
use serde_json::{Value, json};

const BOOT_TIMEOUT: Duration = Duration::from_secs(420);

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The .debs of the current static build: staged tree, then pkg/debian/build-debs.
fn build_debs(out: &Path) -> Vec<PathBuf> {
    let ws = common::workspace();
    let bin_dir = image::musl_bin_dir(&ws);
    let tree = out.join("tree");
    let tool = bin_dir.join("hcloud-image");
    assert!(
        tool.is_file(),
        "{} is missing: {}",
        tool.display(),
        image::BUILD_HINT
    );
    run(
        Command::new(&tool)
            .arg("--workspace")
            .arg(&ws)
            .args(["dist", "--no-build", "--out"])
            .arg(&tree),
        "hcloud-image dist --no-build",
    );
    let debs = out.join("debs");
    run(
        Command::new(ws.join("pkg/debian/build-debs"))
            .arg("--tree")
            .arg(&tree)
            .arg("--out")
            .arg(&debs),
        "pkg/debian/build-debs",
    );
    ["hcloud-dl-metadata", "hcloud-network"]
        .iter()
        .map(|p| {
            fs::read_dir(&debs)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|d| {
                    d.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{p}_")))
                })
                .unwrap_or_else(|| panic!("build-debs made no {p} package"))
        })
        .collect()
}

struct Vm {
    sim: Sim,
    key: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Vm {
    fn sh(&self, cmd: &str) -> String {
        self.sim
            .ssh_ok(&self.key, cmd)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn eventually(&self, what: &str, cmd: &str, timeout: Duration) -> String {
        common::eventually(&self.sim, &self.key, what, cmd, timeout)
    }

    /// Copies a file into the guest's /root over SSH.
    fn copy_in(&self, file: &Path) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let out = self
            .sim
            .ssh_command(&self.key, &format!("cat > /root/{name}"))
            .unwrap()
            .stdin(Stdio::from(fs::File::open(file).unwrap()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "copying {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What cloud-init left that must survive: hostname, root's keys, its network files.
    fn cloud_init_state(&self) -> String {
        self.sh(
            "hostname; sha256sum /root/.ssh/authorized_keys; cat /etc/hostname; \
             ls -l --time-style=+%s /etc/systemd/network/; sha256sum /etc/systemd/network/* 2>/dev/null || true",
        )
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n######## diagnostics of {:?}\n{}",
                self.sim.opts.name,
                self.sim.diagnostics(Some(&self.key))
            );
        }
        let r = if std::env::var_os("HCLOUD_SIM_KEEP").is_some() {
            sim::teardown(&self.sim.opts)
        } else {
            sim::purge(&self.sim.opts)
        };
        if let Err(e) = r {
            eprintln!("teardown of {:?}: {e:#}", self.sim.opts.name);
        }
    }
}

fn private_net() -> Value {
    json!({
        "ip": "10.0.0.2",
        "alias_ips": [],
        "interface_num": 1,
        "mac_address": "86:00:00:00:00:01",
        "network_id": 1001,
        "network_name": "backend",
        "network": "10.0.0.0/16",
        "subnet": "10.0.0.0/24",
        "gateway": "10.0.0.1",
    })
}

fn existing_server(key: &str) -> ScenarioValue {
    json!({
        "server": {
            "id": 48151640,
            "name": "existing-1",
            "public_mac": "96:00:00:ab:cd:ef",
            "public_ipv4": "203.0.113.10",
            "public_ipv6": "2001:db8:1234:5678::/64",
            "public_keys": [key],
        }
    })
}

#[test]
fn two_debs_on_a_cloud_init_server_then_apt_remove() {
    let opts = common::options("e2e-debs", Guest::CloudInit, Release::Bookworm);
    let lock = common::machine_lock();
    sim::purge(&opts).unwrap();
    let dir = Sim::state_dir(&opts);
    fs::create_dir_all(&dir).unwrap();
    let debs = build_debs(&dir.join("packages"));
    let key = dir.join("id_ed25519");
    let public = sim::ensure_key(&key, "e2e-debs-key").unwrap();
    let mut sim = Sim::new(opts, existing_server(&public)).unwrap();
    sim.prepare_disk()
        .unwrap_or_else(|e| panic!("preparing the disk: {e:#}"));
    sim.boot().unwrap_or_else(|e| panic!("booting: {e:#}"));
    let mut vm = Vm {
        sim,
        key,
        _lock: lock,
    };
    if let Err(e) = vm.sim.wait_ssh(&vm.key, BOOT_TIMEOUT) {
        panic!("{e:#}");
    }
    vm.eventually(
        "cloud-init finished",
        "cloud-init status --wait >/dev/null 2>&1; cloud-init status | grep -q done",
        Duration::from_secs(300),
    );
    assert_eq!(
        vm.sh("hostname").trim(),
        "existing-1",
        "cloud-init's hostname"
    );
    let before = vm.cloud_init_state();
    let units_before = vm.sh("systemctl list-unit-files --no-legend --plain 'hcloud*' | wc -l");
    assert_eq!(units_before.trim(), "0");

    // docs/install.md: download the two packages, then one apt command.
    for d in &debs {
        vm.copy_in(d);
    }
    let names: Vec<String> = debs
        .iter()
        .map(|d| format!("/root/{}", d.file_name().unwrap().to_string_lossy()))
        .collect();
    let install = vm.sh(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y {} 2>&1",
        names.join(" ")
    ));
    eprintln!("{install}");
    for u in [
        "hcloud-dl-metadata.service",
        "hcloud-network.service",
        "hcloud-network-refresh.path",
    ] {
        assert_eq!(
            vm.sh(&format!("systemctl is-enabled {u}")).trim(),
            "enabled",
            "{u}"
        );
        assert_eq!(
            vm.sh(&format!("systemctl is-active {u}")).trim(),
            "active",
            "{u}"
        );
    }
    let doc: Value = serde_json::from_str(&vm.sh("cat /etc/hcloud-metadata.json")).unwrap();
    assert_eq!(doc["instance_id"], json!(48151640));

    // Attach a private network: the NIC is hot-plugged and configured by hcloud-network.
    let mut with = vm.sim.scenario.clone();
    with["server"]["private_networks"] = json!([private_net()]);
    let p = scenario::server_of(&with).unwrap().private_networks[0].clone();
    vm.sim
        .attach_private(&p, with)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let nic = vm
        .eventually(
            "the private NIC appears",
            "for i in /sys/class/net/*; do [ \"$(cat $i/address)\" = 86:00:00:00:00:01 ] && basename $i; done | grep .",
            Duration::from_secs(60),
        )
        .trim()
        .to_string();
    vm.eventually(
        "the private network is configured",
        &format!("ip -4 -o addr show dev {nic} | grep -q ' 10.0.0.2/32 '"),
        Duration::from_secs(120),
    );
    vm.sh("ping -c 2 -W 5 10.0.255.254");
    assert_eq!(
        vm.cloud_init_state(),
        before,
        "cloud-init's hostname, keys and network files are untouched"
    );
    let failed = vm.sh("systemctl --failed --plain --no-legend --no-pager");
    assert!(failed.trim().is_empty(), "failed units:\n{failed}");

    // apt remove: the units, the generated networkd files and the hotplug queue go.
    let remove = vm.sh(
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y hcloud-network hcloud-dl-metadata 2>&1",
    );
    eprintln!("{remove}");
    vm.sh("systemctl daemon-reload");
    assert_eq!(
        vm.sh("systemctl list-unit-files --no-legend --plain 'hcloud*' | grep -v masked | wc -l")
            .trim(),
        "0",
        "no hcloud unit left (removed packages leave masks, as debhelper does)"
    );
    assert_eq!(
        vm.sh("ls /run/systemd/network/ | grep -c '^10-hcloud-' || true")
            .trim(),
        "0",
        "generated networkd files removed"
    );
    vm.sh("test ! -e /run/hcloud-network");
    vm.sh("test ! -e /usr/bin/hcloud-network && test ! -e /usr/bin/hcloud-dl-metadata");
    let failed = vm.sh("systemctl --failed --plain --no-legend --no-pager");
    assert!(
        failed.trim().is_empty(),
        "failed units after remove:\n{failed}"
    );
    assert_eq!(
        vm.cloud_init_state(),
        before,
        "cloud-init's results after remove"
    );
    assert_eq!(
        vm.sh("systemctl is-active systemd-networkd").trim(),
        "active",
        "networkd ran before (cloud-init's renderer) and still does"
    );
    vm.sh("test -e /etc/hcloud-metadata.json");
    vm.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y hcloud-network hcloud-dl-metadata");
    vm.sh("test ! -L /etc/hcloud-metadata.json && test ! -e /var/lib/hcloud-dl-metadata");
    assert_eq!(
        vm.sh("systemctl list-unit-files --no-legend --plain 'hcloud*' | wc -l")
            .trim(),
        "0",
        "purge removes the masks"
    );
}
