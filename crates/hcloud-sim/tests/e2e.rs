//! End-to-end scenarios: a simulated Hetzner server boots Debian in QEMU with the agents (or
//! cloud-init) and is checked from the host the way a user would check it. Every agent scenario
//! runs on both guests (`bookworm::*`: systemd 252; `sid::*`: systemd 262 with systemd-imds, as
//! on Arch); the cloud-init peer on bookworm. Needs root, QEMU,
//! dnsmasq and debootstrap (scripts/install-deps) and the static build (scripts/test builds it
//! before nextest runs). Missing pieces fail the test with what to do; nothing is skipped.
//!
//! Set HCLOUD_SIM_ACCEL=kvm to use KVM, HCLOUD_SIM_KEEP=1 to keep disks and logs.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hcloud_sim::image::{Guest, Release};
use hcloud_sim::report;
use hcloud_sim::scenario::{self, ScenarioValue};
use hcloud_sim::sim::{self, Options, Sim};
use serde_json::{Value, json};

const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// The five agents and their units: every one must be installed and active after boot.
const UNITS: &[&str] = &[
    "hcloud-dl-metadata.service",
    "hcloud-dl-userdata.service",
    "hcloud-hostname.service",
    "hcloud-ssh-keys.service",
    "hcloud-network.service",
];

const USERDATA: &str = "#cloud-config\n# user data of the simulated server\nruncmd: [echo hello]\n";

fn private(num: u64, ip: &str, alias: &[&str], net: &str, gw: &str) -> Value {
    json!({
        "ip": ip,
        "alias_ips": alias,
        "interface_num": num,
        "mac_address": format!("86:00:00:00:00:{num:02x}"),
        "network_id": 1000 + num,
        "network_name": format!("net{num}"),
        "network": net,
        "subnet": net,
        "gateway": gw,
    })
}

fn dual_stack(id: u64, name: &str, key: &str) -> ScenarioValue {
    json!({
        "server": {
            "id": id,
            "name": name,
            "region": "eu-central",
            "availability_zone": "nbg1-dc3",
            "public_mac": "96:00:00:ab:cd:ef",
            "public_ipv4": "203.0.113.10",
            "public_ipv6": "2001:db8:1234:5678::/64",
            "public_keys": [key],
            "private_networks": [private(1, "10.0.0.2", &["10.0.0.3"], "10.0.0.0/16", "10.0.0.1")],
            "userdata": USERDATA,
        }
    })
}

/// A running simulated server; prints diagnostics when the test fails and tears down.
struct Vm {
    sim: Sim,
    key: PathBuf,
    started: Instant,
    /// One end-to-end VM at a time on this machine, also across test runs (names, CPU).
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Vm {
    /// A fresh key pair in the server's state directory.
    fn key(opts: &Options, file: &str) -> (PathBuf, String) {
        let dir = Sim::state_dir(opts);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("pub"));
        let public = sim::ensure_key(&path, &format!("{}-{file}", opts.name)).unwrap();
        (path, public)
    }

    /// Prepares the disk and boots; `scenario` gets the key from `make`.
    fn boot(opts: Options, make: impl FnOnce(&str) -> ScenarioValue) -> Vm {
        let lock = common::machine_lock();
        sim::purge(&opts).unwrap();
        let (key, public) = Vm::key(&opts, "id_ed25519");
        let value = make(&public);
        let sim = Sim::new(opts, value).unwrap();
        let mut vm = Vm {
            sim,
            key,
            started: Instant::now(),
            _lock: lock,
        };
        let t = Instant::now();
        vm.sim
            .prepare_disk()
            .unwrap_or_else(|e| panic!("preparing the disk: {e:#}"));
        if vm.sim.opts.guest == Guest::Agents {
            let units = vm.sim.dir.join("install-tree/usr/lib/systemd/system");
            for u in UNITS {
                assert!(
                    units.join(u).is_file(),
                    "{u} is not in the install tree {}: is systemd/{u} missing?",
                    units.display()
                );
            }
        }
        eprintln!("disk ready in {:.1} s", t.elapsed().as_secs_f64());
        vm.start();
        vm
    }

    fn start(&mut self) {
        self.sim.boot().unwrap_or_else(|e| panic!("booting: {e:#}"));
        self.started = Instant::now();
    }

    fn wait_ssh(&self) -> Duration {
        match self.sim.wait_ssh(&self.key, BOOT_TIMEOUT) {
            Ok(t) => {
                eprintln!(
                    "first SSH login {:.1} s after QEMU started",
                    t.as_secs_f64()
                );
                // Checks start once the boot is over (`degraded` counts: failed units show it).
                let state = self
                    .sim
                    .ssh(&self.key, "timeout 300 systemctl is-system-running --wait");
                if let Ok(out) = state {
                    eprintln!(
                        "system {} {:.1} s after QEMU started",
                        String::from_utf8_lossy(&out.stdout).trim(),
                        self.started.elapsed().as_secs_f64()
                    );
                }
                t
            }
            Err(e) => panic!("{e:#}"),
        }
    }

    fn sh(&self, cmd: &str) -> String {
        self.sim
            .ssh_ok(&self.key, cmd)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn eventually(&self, what: &str, cmd: &str, timeout: Duration) -> String {
        common::eventually(&self.sim, &self.key, what, cmd, timeout)
    }

    /// The interface name of the NIC with this MAC.
    fn ifname(&self, mac: &str) -> String {
        let out = self.sh(&format!(
            "for i in /sys/class/net/*; do [ \"$(cat $i/address)\" = {mac} ] && basename $i; done; true"
        ));
        let name = out.trim().to_string();
        assert!(!name.is_empty(), "no interface with MAC {mac} in the guest");
        name
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
        let keep = std::env::var_os("HCLOUD_SIM_KEEP").is_some();
        let r = if keep {
            sim::teardown(&self.sim.opts)
        } else {
            sim::purge(&self.sim.opts)
        };
        if let Err(e) = r {
            eprintln!("teardown of {:?}: {e:#}", self.sim.opts.name);
        }
    }
}

fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: expected {needle:?} in:\n{haystack}"
    );
}

fn assert_lacks(haystack: &str, needle: &str, what: &str) {
    assert!(
        !haystack.contains(needle),
        "{what}: did not expect {needle:?} in:\n{haystack}"
    );
}

/// Every hcloud unit active, nothing failed, the DMI identity as on Hetzner.
fn check_units(vm: &Vm) {
    for u in UNITS {
        let state = vm
            .sim
            .ssh(&vm.key, &format!("systemctl is-active {u}"))
            .unwrap();
        let s = String::from_utf8_lossy(&state.stdout).trim().to_string();
        assert_eq!(
            s,
            "active",
            "{u} is {s}:\n{}",
            vm.sh(&format!("systemctl status --no-pager {u} || true"))
        );
    }
    let failed = vm.sh("systemctl --failed --plain --no-legend --no-pager");
    assert!(failed.trim().is_empty(), "failed units:\n{failed}");
    if vm.sim.opts.release == Release::Sid {
        check_beside_systemd_imds(vm);
    }
}

/// On current systemd: systemd-imds recognised the server as Hetzner (so the guest really stands
/// for an Arch server), networkd has no complaint about any file of ours, and root's keys are
/// exactly the managed block (no line from a credential import).
fn check_beside_systemd_imds(vm: &Vm) {
    let args = &vm.sim.opts.kernel_args;
    let early = vm.sh("systemctl show -P ActiveState,Result systemd-imds-early-network.service");
    let network_off = args.iter().any(|a| a == "systemd.imds.network=off");
    assert!(network_off || early.split_whitespace().eq(["active", "success"]),
        "systemd-imds-early-network.service did not run: is the BIOS vendor Hetzner?\n{}",
        vm.sh("systemctl status --no-pager 'systemd-imds*' 2>&1; cat /sys/class/dmi/id/bios_vendor; true")
    );
    let complaints = vm.sh(
        "journalctl -b --no-pager -o cat -u systemd-networkd -p warning | grep -i hcloud; true",
    );
    assert!(
        complaints.trim().is_empty(),
        "systemd-networkd warns about our files:\n{complaints}"
    );
    let auth = vm.sh("cat /root/.ssh/authorized_keys");
    let first = auth.lines().next().unwrap_or_default();
    let last = auth.lines().last().unwrap_or_default();
    assert!(
        first.starts_with("# BEGIN hcloud-ssh-keys") && last == "# END hcloud-ssh-keys",
        "root's authorized_keys is more than the managed block:\n{auth}"
    );
}

/// What a compromised agent would try first, run from inside each unit's own sandbox: a drop-in
/// in /run replaces the unit's commands by this probe, one line per attempt. systemd's private
/// bus has no bus daemon (busctl cannot call it), so that attempt is D-Bus's own handshake.
const SANDBOX_PROBE: &str = r#"try() {
  what=$1; shift
  if err=$("$@" 2>&1 >/dev/null); then echo "PROBE $what allowed"
  else echo "PROBE $what denied: $(echo "$err" | head -n 1)"; fi
}
try shadow sh -c ': >>/etc/shadow'
try sudoers sh -c ': >/etc/sudoers.d/hcloud-probe && rm -f /etc/sudoers.d/hcloud-probe'
try system-bus busctl --system --timeout=20 call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId
try systemd-bus perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => "/run/systemd/private") or die "$!\n"; print $s "\0AUTH EXTERNAL 30\r\n"; $l = <$s>; $l =~ /^OK / or die "no D-Bus answer\n"'
echo "PROBE done"
"#;

/// Each unit and what its sandbox must allow of [`SANDBOX_PROBE`]'s attempts (writing
/// /etc/shadow, creating /etc/sudoers.d/x, the system bus, systemd's private bus): only the
/// bus the agent uses. (Outside any sandbox, as root over SSH, all four must succeed, or the
/// probe could not tell.)
const SANDBOXES: &[(&str, [bool; 4])] = &[
    ("hcloud-dl-metadata.service", [false, false, false, false]),
    ("hcloud-dl-userdata.service", [false, false, false, false]),
    ("hcloud-ssh-keys.service", [false, false, false, false]),
    ("hcloud-network.service", [false, false, true, false]),
    (
        "hcloud-network-refresh.service",
        [false, false, true, false],
    ),
    ("hcloud-hostname.service", [false, false, true, false]),
    ("hcloud-volumes@4242.service", [false, false, false, false]),
];

/// Runs [`SANDBOX_PROBE`] in every unit's sandbox and compares with [`SANDBOXES`]. Last step of
/// a scenario: the units are left as the probe left them.
fn check_sandboxes(vm: &Vm) {
    vm.sh(&format!(
        "mkdir -p /etc/sudoers.d && cat >/run/hcloud-probe.sh <<'PROBE_EOF'\n{SANDBOX_PROBE}PROBE_EOF"
    ));
    let drop_in = "[Service]\nExecStartPre=\nExecStart=\nExecStart=/bin/sh /run/hcloud-probe.sh\nExecStartPost=\n";
    for (unit, _) in SANDBOXES {
        let template = match unit.split_once('@') {
            Some((base, _)) => format!("{base}@.service"),
            None => unit.to_string(),
        };
        vm.sh(&format!(
            "mkdir -p /run/systemd/system/{template}.d && printf '%s' '{drop_in}' >/run/systemd/system/{template}.d/zz-probe.conf"
        ));
    }
    vm.sh("systemctl daemon-reload");
    let outside = vm.sh("sh /run/hcloud-probe.sh");
    assert_eq!(
        outside.lines().filter(|l| l.ends_with(" allowed")).count(),
        4,
        "outside any sandbox root can do all the probe tries, or the probe cannot tell:\n{outside}"
    );
    let mut wrong = Vec::new();
    for (unit, expected) in SANDBOXES {
        vm.sh(&format!("systemctl restart {unit} || true"));
        // The probe runs once a boot in each unit, so the unit's PROBE lines are its lines.
        let lines = vm.eventually(
            &format!("the probe in {unit}"),
            &format!(
                "journalctl -b --no-pager -o cat -u {unit} | grep '^PROBE' >/run/probe.out; grep -q '^PROBE done' /run/probe.out && cat /run/probe.out"
            ),
            Duration::from_secs(120),
        );
        eprintln!("{unit}:\n{lines}");
        for (what, allowed) in ["shadow", "sudoers", "system-bus", "systemd-bus"]
            .iter()
            .zip(expected)
        {
            let seen = lines
                .lines()
                .find(|l| l.starts_with(&format!("PROBE {what} ")))
                .unwrap_or("missing");
            if seen.starts_with(&format!("PROBE {what} allowed")) != *allowed {
                wrong.push(format!(
                    "{unit}: {seen} (expected {})",
                    if *allowed { "allowed" } else { "denied" }
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "sandboxes that allow or deny the wrong things:\n{}",
        wrong.join("\n")
    );
}

fn check_identity(vm: &Vm, id: u64) {
    assert_eq!(vm.sh("cat /sys/class/dmi/id/sys_vendor").trim(), "Hetzner");
    assert_eq!(
        vm.sh("cat /sys/class/dmi/id/product_serial").trim(),
        id.to_string()
    );
}

/// The document and the user data on disk, with their modes.
fn check_files(vm: &Vm, id: u64, name: &str, key: &str, userdata: Option<&str>) -> Value {
    // The public paths are the links the agents ship, into their state directories.
    assert_eq!(
        vm.sh("readlink /etc/hcloud-metadata.json").trim(),
        "/var/lib/hcloud-dl-metadata/hcloud-metadata.json"
    );
    let mode = vm.sh("stat -L -c %a /etc/hcloud-metadata.json");
    assert_eq!(mode.trim(), "644", "mode of /etc/hcloud-metadata.json");
    let doc: Value = serde_json::from_str(&vm.sh("cat /etc/hcloud-metadata.json"))
        .expect("the document is JSON");
    assert_eq!(doc["instance_id"], json!(id), "{doc:#}");
    assert_eq!(doc["hostname"], json!(name), "{doc:#}");
    let keys = doc["ssh_keys"].as_array().cloned().unwrap_or_default();
    assert!(keys.iter().any(|k| k.as_str() == Some(key)), "{doc:#}");
    if let Some(ud) = userdata {
        assert_eq!(
            vm.sh("readlink /etc/hcloud-userdata; stat -L -c %a /etc/hcloud-userdata"),
            "/var/lib/hcloud-dl-userdata/hcloud-userdata\n600\n",
            "link and mode of /etc/hcloud-userdata"
        );
        assert_eq!(
            vm.sh("cat /etc/hcloud-userdata"),
            ud,
            "content of /etc/hcloud-userdata"
        );
    }
    doc
}

fn check_hostname(vm: &Vm, name: &str) {
    assert_eq!(vm.sh("hostname").trim(), name, "hostname");
    assert_eq!(
        vm.sh("hostnamectl hostname").trim(),
        name,
        "hostnamectl hostname"
    );
    // As on a stock image (cloud-init's manage_etc_hosts): the name resolves without DNS.
    assert_contains(
        &vm.sh(&format!("getent ahostsv4 {name}")),
        "127.0.1.1",
        "the server name in /etc/hosts",
    );
    assert_eq!(vm.sh("hostname -f").trim(), name, "hostname -f");
}

fn ping(vm: &Vm, addr: &str) {
    vm.sh(&format!("ping -c 2 -W 5 {addr}"));
}

/// The public link of a dual-stack server: /32 with 172.31.1.1 on-link, the /64's ::1 with fe80::1.
fn check_public(vm: &Vm, v4: Option<&str>, v6: Option<&str>) {
    let nic = vm.ifname("96:00:00:ab:cd:ef");
    let a4 = vm.sh(&format!("ip -4 -o addr show dev {nic}"));
    let a6 = vm.sh(&format!("ip -6 -o addr show dev {nic} scope global"));
    let r4 = vm.sh("ip -4 route");
    let r6 = vm.sh("ip -6 route");
    match v4 {
        Some(ip) => {
            assert_contains(&a4, &format!("{ip}/32"), "public IPv4 (a /32)");
            assert_contains(
                &r4,
                &format!("default via 172.31.1.1 dev {nic}"),
                "IPv4 default route",
            );
            ping(vm, "172.31.1.1");
            ping(vm, "185.12.64.1");
        }
        None => assert_lacks(
            &r4,
            "default via 172.31.1.1",
            "no IPv4 default route without a public IPv4",
        ),
    }
    match v6 {
        Some(ip) => {
            assert_contains(&a6, &format!("{ip}/64"), "public IPv6");
            assert_contains(
                &r6,
                &format!("default via fe80::1 dev {nic}"),
                "IPv6 default route",
            );
            ping(vm, "2a01:4ff:ff00::add:1");
        }
        None => assert!(a6.trim().is_empty(), "no global IPv6 expected: {a6}"),
    }
}

/// A private network: its IP (and aliases) as /32, MTU 1450, the route via the gateway, the
/// other host of the range reachable.
fn check_private(vm: &Vm, mac: &str, ip: &str, alias: &[&str], net: &str, gw: &str, peer: &str) {
    let nic = vm.ifname(mac);
    let addrs = vm.sh(&format!("ip -4 -o addr show dev {nic}"));
    assert_contains(&addrs, &format!("{ip}/32"), "private IP");
    for a in alias {
        assert_contains(&addrs, a, "alias IP");
    }
    assert_contains(
        &vm.sh(&format!("cat /sys/class/net/{nic}/mtu")),
        "1450",
        "private MTU",
    );
    let routes = vm.sh(&format!("ip -4 route show dev {nic}"));
    assert_contains(
        &routes,
        &format!("{net} via {gw}"),
        "route to the private network",
    );
    ping(vm, peer);
}

/// Prints the report and records its figures in `target/hcloud-sim/<name>.json` (the numbers of
/// the comparison table in docs/simulator.md).
fn print_timings(vm: &Vm, t: Duration, features: Value) -> report::Report {
    let r = report::gather(&vm.sim, &vm.key, Some(t)).unwrap();
    eprintln!("{}", r.render());
    let mut figures = r.figures();
    if let (Some(f), Some(extra)) = (figures.as_object_mut(), features.as_object()) {
        f.extend(extra.clone());
    }
    eprintln!("figures of {}: {figures:#}", vm.sim.opts.name);
    let dir = common::workspace().join("target/hcloud-sim");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join(format!("{}.json", vm.sim.opts.name)),
        format!("{figures:#}\n"),
    );
    r
}

/// The exposure score of each unit, as `systemd-analyze security` computes it on the running system.
fn exposure(vm: &Vm, units: &[&str]) -> Value {
    let mut scores = serde_json::Map::new();
    for u in units {
        let out = vm.sh(&format!(
            "systemd-analyze security --no-pager {u} | tail -n 1"
        ));
        let score = out
            .split_once(&format!("{u}: "))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no exposure level for {u} in {out:?}"));
        eprintln!("systemd-analyze security {u}: {score}");
        scores.insert(u.to_string(), json!(score));
    }
    Value::Object(scores)
}

fn s1_dual_stack_private_network_and_userdata(release: Release) {
    let opts = common::options("e2e-dual", Guest::Agents, release);
    let vm = Vm::boot(opts, |key| dual_stack(48151623, "app-7", key));
    let t = vm.wait_ssh();
    let public = scenario::server_of(&vm.sim.scenario).unwrap().public_keys[0].clone();
    check_identity(&vm, 48151623);
    check_units(&vm);
    check_hostname(&vm, "app-7");
    let doc = check_files(&vm, 48151623, "app-7", &public, Some(USERDATA));
    assert_eq!(doc["network"]["ipv4_address"], json!("203.0.113.10"));
    check_public(&vm, Some("203.0.113.10"), Some("2001:db8:1234:5678::1"));
    check_private(
        &vm,
        "86:00:00:00:00:01",
        "10.0.0.2",
        &["10.0.0.3"],
        "10.0.0.0/16",
        "10.0.0.1",
        "10.0.255.254",
    );
    let scores = exposure(&vm, UNITS);
    let features = json!({"hostname": true, "ssh_keys": true, "ipv4": true, "ipv6": true, "private_network": true, "alias_ip": true, "exposure": scores});
    print_timings(&vm, t, features);
    check_sandboxes(&vm);
}

fn s2a_ipv6_only_server(release: Release) {
    let opts = image_options("e2e-v6only", release);
    let vm = Vm::boot(opts, |key| {
        let mut v = dual_stack(48151624, "v6-only", key);
        v["server"]["public_ipv4"] = Value::Null;
        v["server"]["private_networks"] = json!([]);
        v
    });
    let t = vm.wait_ssh();
    let public = scenario::server_of(&vm.sim.scenario).unwrap().public_keys[0].clone();
    check_units(&vm);
    check_hostname(&vm, "v6-only");
    let doc = check_files(&vm, 48151624, "v6-only", &public, Some(USERDATA));
    assert_eq!(doc["network"]["ipv4_address"], Value::Null, "{doc:#}");
    check_public(&vm, None, Some("2001:db8:1234:5678::1"));
    print_timings(&vm, t, json!({}));
}

fn s2b_private_network_only_server(release: Release) {
    let opts = image_options("e2e-private", release);
    let vm = Vm::boot(opts, |key| {
        let mut v = dual_stack(48151625, "private-only", key);
        v["server"]["public_ipv4"] = Value::Null;
        v["server"]["public_ipv6"] = Value::Null;
        v["server"]["public_mac"] = Value::Null;
        v
    });
    let t = vm.wait_ssh();
    let public = scenario::server_of(&vm.sim.scenario).unwrap().public_keys[0].clone();
    check_units(&vm);
    check_hostname(&vm, "private-only");
    let doc = check_files(&vm, 48151625, "private-only", &public, Some(USERDATA));
    assert_eq!(doc["network"]["mac_address"], Value::Null, "{doc:#}");
    check_private(
        &vm,
        "86:00:00:00:00:01",
        "10.0.0.2",
        &["10.0.0.3"],
        "10.0.0.0/16",
        "10.0.0.1",
        "10.0.255.254",
    );
    print_timings(&vm, t, json!({}));
}

fn s3_hotplug_attach_and_detach_a_private_network(release: Release) {
    let opts = image_options("e2e-hotplug", release);
    // Booted with a third private NIC that the metadata does not list yet (it lags behind, as
    // after an attach while the server was off): the refresh waits for it, and must not hold
    // the boot while it does.
    let late = private(3, "10.2.0.5", &[], "10.2.0.0/16", "10.2.0.1");
    let mut vm = Vm::boot(opts, |key| {
        let mut v = dual_stack(48151626, "hotplug", key);
        v["server"]["private_networks"]
            .as_array_mut()
            .unwrap()
            .push(late.clone());
        v
    });
    let with_late = vm.sim.scenario.clone();
    // QEMU has just started: the guest asks for its metadata seconds from now, so it sees the
    // document without the third network (asserted below).
    let mut without_late = with_late.clone();
    without_late["server"]["private_networks"]
        .as_array_mut()
        .unwrap()
        .pop();
    vm.sim.set_scenario(without_late).unwrap();
    vm.wait_ssh();
    check_units(&vm);
    let late_file = "/run/systemd/network/10-hcloud-private-860000000003.network";
    let first_doc = vm.sh("cat /etc/hcloud-metadata.json");
    assert_contains(
        &first_doc,
        "10.0.0.2",
        "the first document (the first network)",
    );
    assert_lacks(
        &first_doc,
        "10.2.0.5",
        "the first document (the metadata lags behind the third NIC)",
    );
    assert_eq!(
        vm.sh("systemctl is-system-running || true").trim(),
        "running",
        "the boot is over although the refresh still waits for the metadata:\n{}",
        vm.sh("systemctl list-jobs --no-pager || true")
    );
    let refresh = vm.sh(
        "systemctl show -P ActiveState,SubState,ActiveEnterTimestampMonotonic hcloud-network-refresh.service; \
         systemctl show -P FinishTimestampMonotonic",
    );
    let refresh: Vec<&str> = refresh.lines().collect();
    assert_eq!(
        refresh[..2],
        ["active", "running"],
        "the refresh waits for the metadata to list the third NIC:\n{}",
        vm.sh("systemctl status --no-pager hcloud-network-refresh.service || true")
    );
    let started: u64 = refresh[2].parse().unwrap();
    let finished: u64 = refresh[3].parse().unwrap();
    assert!(
        started > 0 && started < finished,
        "the refresh started during the boot ({started} us) and the boot finished ({finished} us) without it"
    );
    assert_eq!(
        vm.sh(&format!("test -e {late_file} && echo yes || echo no"))
            .trim(),
        "no"
    );
    vm.sim.set_scenario(with_late).unwrap();
    vm.eventually(
        "the late NIC configured once the metadata lists it",
        &format!(
            "test -e {late_file} && ip -4 route | grep -q '10.2.0.0/16 via 10.2.0.1' \
             && systemctl is-active hcloud-network-refresh.service | grep -qx inactive"
        ),
        Duration::from_secs(180),
    );
    check_private(
        &vm,
        "86:00:00:00:00:03",
        "10.2.0.5",
        &[],
        "10.2.0.0/16",
        "10.2.0.1",
        "10.2.255.254",
    );
    let first = (
        "86:00:00:00:00:01",
        "10.0.0.2",
        "10.0.0.0/16",
        "10.0.0.1",
        "10.0.255.254",
    );
    check_private(
        &vm,
        first.0,
        first.1,
        &["10.0.0.3"],
        first.2,
        first.3,
        first.4,
    );

    let second = private(2, "10.1.0.5", &[], "10.1.0.0/16", "10.1.0.1");
    let mut with = vm.sim.scenario.clone();
    with["server"]["private_networks"]
        .as_array_mut()
        .unwrap()
        .push(second.clone());
    let p2 = scenario::server_of(&with)
        .unwrap()
        .private_networks
        .last()
        .unwrap()
        .clone();
    let without = vm.sim.scenario.clone();
    vm.sim
        .attach_private(&p2, with)
        .unwrap_or_else(|e| panic!("attach: {e:#}"));
    vm.eventually(
        "attached network configured",
        "ip -4 -o addr | grep -q ' 10.1.0.5/32' && ip -4 route | grep -q '10.1.0.0/16 via 10.1.0.1'",
        Duration::from_secs(180),
    );
    check_private(
        &vm,
        "86:00:00:00:00:02",
        "10.1.0.5",
        &[],
        "10.1.0.0/16",
        "10.1.0.1",
        "10.1.255.254",
    );
    check_private(
        &vm,
        first.0,
        first.1,
        &["10.0.0.3"],
        first.2,
        first.3,
        first.4,
    );
    let doc: Value = serde_json::from_str(&vm.sh("cat /etc/hcloud-metadata.json")).unwrap();
    assert_eq!(
        doc["network"]["private"].as_array().map(Vec::len),
        Some(3),
        "{doc:#}"
    );

    vm.sim
        .detach_private(&p2, without)
        .unwrap_or_else(|e| panic!("detach: {e:#}"));
    vm.eventually(
        "detached network's configuration removed",
        "! ip -4 -o addr | grep -q ' 10.1.0.5/' && ! ip -4 route | grep -q '10.1.0.0/16' && ! grep -rqi '86:00:00:00:00:02' /run/systemd/network/",
        Duration::from_secs(180),
    );
    vm.eventually(
        "document without the detached network",
        "grep -q 10.0.0.2 /etc/hcloud-metadata.json && ! grep -q 10.1.0.5 /etc/hcloud-metadata.json",
        Duration::from_secs(120),
    );
    check_private(
        &vm,
        first.0,
        first.1,
        &["10.0.0.3"],
        first.2,
        first.3,
        first.4,
    );
    check_units(&vm);
}

fn s4_snapshot_clone_follows_the_new_server(release: Release) {
    let opts = image_options("e2e-clone", release);
    let mut vm = Vm::boot(opts, |key| dual_stack(48151627, "original", key));
    vm.wait_ssh();
    check_hostname(&vm, "original");
    let old_key = vm.key.clone();
    vm.sim.halt().unwrap();

    // The same disk boots as another server: new id, name, key, addresses, private IP.
    let (new_key, new_public) = Vm::key(&vm.sim.opts, "id_clone");
    let mut clone = dual_stack(48151699, "clone", &new_public);
    clone["server"]["public_ipv4"] = json!("203.0.113.20");
    clone["server"]["public_ipv6"] = json!("2001:db8:aaaa:bbbb::/64");
    clone["server"]["public_mac"] = json!("96:00:00:ab:cd:ef");
    clone["server"]["private_networks"] =
        json!([private(1, "10.0.0.7", &[], "10.0.0.0/16", "10.0.0.1")]);
    vm.sim.set_scenario(clone).unwrap();
    vm.key = new_key;
    vm.start();
    vm.wait_ssh();
    check_identity(&vm, 48151699);
    check_units(&vm);
    check_hostname(&vm, "clone");
    assert_lacks(
        &vm.sh("cat /etc/hosts"),
        "original",
        "the original server's name in /etc/hosts",
    );
    check_files(&vm, 48151699, "clone", &new_public, Some(USERDATA));
    check_public(&vm, Some("203.0.113.20"), Some("2001:db8:aaaa:bbbb::1"));
    let all = vm.sh("ip -o addr");
    assert_lacks(&all, "2001:db8:1234:5678::1", "the old server's IPv6");
    assert_lacks(&all, "203.0.113.10", "the old server's IPv4");
    assert_lacks(&all, "10.0.0.2/", "the old server's private IP");
    check_private(
        &vm,
        "86:00:00:00:00:01",
        "10.0.0.7",
        &[],
        "10.0.0.0/16",
        "10.0.0.1",
        "10.0.255.254",
    );
    let old = vm.sim.ssh(&old_key, "true").unwrap();
    assert!(
        !old.status.success(),
        "the original server's key still logs in to the clone"
    );
    let auth = vm.sh("cat /root/.ssh/authorized_keys");
    assert_lacks(
        &auth,
        "e2e-clone-id_ed25519",
        "the original server's key in authorized_keys",
    );
}

fn s5_metadata_outage_at_boot(release: Release) {
    let opts = image_options("e2e-outage", release);
    let fault = |secs: u64| json!([{"path": "*", "for_secs": secs, "status": 503}]);
    let mut vm = Vm::boot(opts, |key| {
        let mut v = dual_stack(48151628, "outage", key);
        v["faults"] = fault(3600);
        v
    });
    // The outage lasts 20 s from the moment the server's network is up.
    vm.sim
        .wait_dhcp_ack("pub", BOOT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", vm.sim.diagnostics(None)));
    let mut v = vm.sim.scenario.clone();
    v["faults"] = fault(20);
    vm.sim.set_scenario(v).unwrap();
    vm.wait_ssh();
    check_units(&vm);
    check_hostname(&vm, "outage");
    let public = scenario::server_of(&vm.sim.scenario).unwrap().public_keys[0].clone();
    let before = check_files(&vm, 48151628, "outage", &public, Some(USERDATA));
    let journal = vm.sh("journalctl -b --no-pager -u hcloud-dl-metadata");
    assert_contains(&journal, "503", "the downloader met the outage and retried");

    // Second boot of the same server: the service never answers within the budget.
    vm.sim.halt().unwrap();
    let mut v = vm.sim.scenario.clone();
    v["faults"] = json!([{"path": "*", "status": 503}]);
    vm.sim.set_scenario(v).unwrap();
    vm.start();
    vm.wait_ssh();
    check_hostname(&vm, "outage");
    let after: Value = serde_json::from_str(&vm.sh("cat /etc/hcloud-metadata.json")).unwrap();
    assert_eq!(after, before, "the last good document is kept");
    check_public(&vm, Some("203.0.113.10"), Some("2001:db8:1234:5678::1"));
    eprintln!(
        "{}",
        vm.sh("systemctl status --no-pager 'hcloud-*' 2>&1 || true")
    );
}

#[test]
fn s6_cloud_init_peer_on_the_same_server() {
    let opts = common::options("e2e-cloudinit", Guest::CloudInit, Release::Bookworm);
    let vm = Vm::boot(opts, |key| dual_stack(48151623, "app-7", key));
    let t = vm.wait_ssh();
    // cloud-init logged root in with the metadata key: the fake service served a real client.
    check_identity(&vm, 48151623);
    assert_eq!(
        vm.sh("hostname").trim(),
        "app-7",
        "cloud-init set the hostname"
    );
    let v4 = vm.sh("ip -4 -o addr");
    let features = json!({
        "hostname": true,
        "ssh_keys": true,
        "ipv4": v4.contains("203.0.113.10/32"),
        "ipv6": vm.sh("ip -6 -o addr").contains("2001:db8:1234:5678::1/64"),
        "private_network": v4.contains("10.0.0.2/"),
        "alias_ip": v4.contains("10.0.0.3/"),
        "exposure": exposure(&vm, &["cloud-init-local.service", "cloud-init.service", "cloud-config.service", "cloud-final.service"]),
    });
    print_timings(&vm, t, features);
    let status = vm.sh("cloud-init status --long 2>&1 || true");
    eprintln!("{status}");
    assert_contains(
        &status,
        "status: done",
        "cloud-init finished without errors",
    );
}

/// The baseline of the boot figures: the same server from an image with its key baked in and
/// nothing provisioned at boot. Root logs in with the baked key; the figures go beside the agents'.
fn s8_bare_image_baseline(release: Release) {
    let opts = common::options("e2e-bare", Guest::Bare, release);
    let vm = Vm::boot(opts, |key| dual_stack(48151623, "app-7", key));
    let t = vm.wait_ssh();
    check_identity(&vm, 48151623);
    assert_lacks(
        &vm.sh("ls /usr/bin /usr/lib/systemd/system"),
        "hcloud-",
        "the bare image has no agent",
    );
    print_timings(&vm, t, json!({}));
}

/// The kernel command line our images boot with (packer/, nix/): systemd-imds keeps its Varlink
/// API but imports no credential and brings up no network of its own.
const IMAGE_IMDS_ARGS: &[&str] = &["systemd.imds.import=0", "systemd.imds.network=off"];

/// systemd-imds beside the agents, on current systemd: the images' hand-over (import and early
/// network off), then `locked` mode, where our unprivileged downloaders cannot reach the service:
/// they must say so at once and keep root's keys, never hang for the budget.
#[test]
fn s7_systemd_imds_hand_over_and_locked_mode() {
    let opts = image_options("e2e-imds", Release::Sid);
    let mut vm = Vm::boot(opts, |key| dual_stack(48151630, "imds", key));
    vm.wait_ssh();
    check_units(&vm);
    check_hostname(&vm, "imds");
    check_public(&vm, Some("203.0.113.10"), Some("2001:db8:1234:5678::1"));
    assert_eq!(
        vm.sh("ls /run/systemd/network/; ls /run/credstore 2>/dev/null; true")
            .lines()
            .filter(|l| l.contains("imds")
                || l.contains("authorized_keys")
                || l.contains("hostname"))
            .collect::<Vec<_>>(),
        Vec::<&str>::new(),
        "systemd-imds wrote a network file or a credential although the image hands both over"
    );
    // Its Varlink API still answers, through the network the agents configured.
    assert_eq!(
        vm.sh("/usr/lib/systemd/systemd-imds --well-known=hostname")
            .trim(),
        "imds",
        "systemd-imds --well-known=hostname"
    );

    // Locked: a prohibit route keeps unmarked sockets away from 169.254.169.254.
    vm.sim.halt().unwrap();
    vm.sim.opts.kernel_args = vec!["systemd.imds.network=locked".into()];
    vm.start();
    vm.wait_ssh();
    check_hostname(&vm, "imds");
    // The prohibit route was there when the downloader ran; it goes when hcloud-network's files
    // (from the last good document) take the NIC over from 85-imds-early.network
    // (docs/install.md: locked mode does not last beside hcloud-network).
    let journal = vm.sh("journalctl -b --no-pager -o cat -u hcloud-dl-metadata");
    assert_contains(
        &journal,
        "prohibited",
        "the downloader met the prohibit route",
    );
    assert_contains(
        &journal,
        "systemd.imds.network",
        "the downloader names the switch to change",
    );
    let secs: f64 = vm
        .sh("systemctl show -P ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic hcloud-dl-metadata.service")
        .split_whitespace()
        .map(|t| t.parse::<f64>().unwrap_or(0.0))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1e6)
        .next()
        .unwrap_or(f64::MAX);
    eprintln!("hcloud-dl-metadata gave up after {secs:.1} s in locked mode");
    assert!(
        secs < 15.0,
        "the downloader spent {secs:.1} s before giving up:\n{journal}"
    );
    let auth = vm.sh("cat /root/.ssh/authorized_keys");
    assert_contains(
        &auth,
        "e2e-imds-sid-id_ed25519",
        "root keeps the key of the last good document",
    );
}

/// The options of a server from one of our images: on sid booted with the images' kernel
/// command line ([`IMAGE_IMDS_ARGS`]), as the Arch and NixOS images boot. (`s1` boots sid without
/// it: agents installed on a server where systemd-imds runs in its defaults.)
fn image_options(name: &str, release: Release) -> Options {
    let mut o = common::options(name, Guest::Agents, release);
    if release == Release::Sid {
        o.kernel_args = IMAGE_IMDS_ARGS.iter().map(|a| a.to_string()).collect();
    }
    o
}

/// The agent scenarios as tests on each guest: `bookworm::s1_...` and `sid::s1_...`. Every
/// scenario runs on bookworm; on sid those where systemd 262 and systemd-imds change what happens
/// (the sandbox and imds' defaults, IPv6-only, private-only, hotplug through udev and path units,
/// an outage at boot with the downloaders off the network-online gate, the baseline of the
/// figures). s4 (the clone) runs on bookworm only: nothing in it depends on systemd's version,
/// and on sid it would add two boots (docs/simulator.md).
macro_rules! on_guest {
    ($guest:ident, $release:ident: $($scenario:ident),* $(,)?) => {
        mod $guest {
            $(#[test] fn $scenario() { super::$scenario(hcloud_sim::image::Release::$release) })*
        }
    };
}

on_guest!(bookworm, Bookworm:
    s1_dual_stack_private_network_and_userdata,
    s2a_ipv6_only_server,
    s2b_private_network_only_server,
    s3_hotplug_attach_and_detach_a_private_network,
    s4_snapshot_clone_follows_the_new_server,
    s5_metadata_outage_at_boot,
);

on_guest!(sid, Sid:
    s1_dual_stack_private_network_and_userdata,
    s2a_ipv6_only_server,
    s2b_private_network_only_server,
    s3_hotplug_attach_and_detach_a_private_network,
    s5_metadata_outage_at_boot,
    s8_bare_image_baseline,
);
