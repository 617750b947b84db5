//! End-to-end: Hetzner Cloud Volumes on a simulated server with the agents. Volumes are SCSI
//! disks (vendor HC, product Volume, serial = id) hot-plugged through the QEMU monitor; the fake
//! metadata service answers `/_internal/v1/volumes/<id>` for volumes attached with automount.
//! Checked from the host as a user would: an ext4 volume with automount is mounted at
//! /mnt/HC_Volume_<id> with one fstab line, one without automount and an unformatted one are
//! left alone, the mount comes back after a reboot (the volume present at boot), a detach
//! leaves no failed unit, a reattach mounts again. Needs root, QEMU and the static build
//! (scripts/test); HCLOUD_SIM_ACCEL=kvm uses KVM, HCLOUD_SIM_KEEP=1 keeps the state.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use hcloud_sim::image::Guest;
use hcloud_sim::scenario::ScenarioValue;
use hcloud_sim::sim::{self, Sim};
use hcloud_sim::volumes;
use serde_json::{Value, json};

const BOOT_TIMEOUT: Duration = Duration::from_secs(420);

struct Vm {
    sim: Sim,
    key: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Vm {
    fn boot(name: &str, make: impl FnOnce(&str) -> ScenarioValue) -> Vm {
        let opts = common::options(name, Guest::Agents, common::release_from_env());
        let lock = common::machine_lock();
        sim::purge(&opts).unwrap();
        let dir = Sim::state_dir(&opts);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id_ed25519");
        let public = sim::ensure_key(&key, &format!("{name}-key")).unwrap();
        let mut sim = Sim::new(opts, make(&public)).unwrap();
        sim.prepare_disk()
            .unwrap_or_else(|e| panic!("preparing the disk: {e:#}"));
        let rule = sim
            .dir
            .join("install-tree/usr/lib/udev/rules.d/81-hcloud-volumes.rules");
        assert!(rule.is_file(), "{} is not staged", rule.display());
        sim.boot().unwrap_or_else(|e| panic!("booting: {e:#}"));
        let vm = Vm {
            sim,
            key,
            _lock: lock,
        };
        vm.wait_ssh();
        vm
    }

    fn wait_ssh(&self) {
        if let Err(e) = self.sim.wait_ssh(&self.key, BOOT_TIMEOUT) {
            panic!("{e:#}");
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

    /// Adds the volume to the scenario (the API's attach), then plugs its disk.
    fn attach(&mut self, id: u64, automount: bool) {
        let mut v = self.sim.scenario.clone();
        let list = v["server"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut list: Vec<Value> = list.into_iter().filter(|x| x["id"] != json!(id)).collect();
        list.push(json!({"id": id, "automount": automount}));
        v["server"]["volumes"] = Value::Array(list);
        self.sim.set_scenario(v).unwrap();
        let mut qmp = self.sim.qmp().unwrap();
        volumes::attach(&mut qmp, id, &volumes::image_path(&self.sim, id))
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    fn detach(&mut self, id: u64) {
        let mut qmp = self.sim.qmp().unwrap();
        volumes::detach(&mut qmp, id).unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Waits until the guest's volume service for `id` has run and finished.
    fn service_done(&self, id: u64) {
        self.eventually(
            &format!("hcloud-volumes@{id} ran"),
            &format!(
                "journalctl -b -o cat -u hcloud-volumes@{id}.service | grep -q 'Volume {id}' && ! systemctl is-active -q hcloud-volumes@{id}.service"
            ),
            Duration::from_secs(120),
        );
    }

    fn no_failed_units(&self) {
        let failed = self.sh("systemctl --failed --plain --no-legend --no-pager");
        assert!(failed.trim().is_empty(), "failed units:\n{failed}");
    }

    fn fstab_lines(&self, id: u64) -> usize {
        self.sh(&format!(
            "grep -c ' /mnt/HC_Volume_{id} ' /etc/fstab || true"
        ))
        .trim()
        .parse()
        .unwrap()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let extra = self
                .sim
                .ssh(
                    &self.key,
                    "journalctl -b --no-pager -o short-monotonic -u 'hcloud-volumes@*' -u '*.mount'; cat /etc/fstab; lsblk -o NAME,VENDOR,MODEL,SERIAL,FSTYPE,MOUNTPOINT",
                )
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            eprintln!(
                "\n######## diagnostics of {:?}\n{}\n==== volumes\n{extra}",
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

fn scenario(id: u64, key: &str) -> ScenarioValue {
    json!({
        "server": {
            "id": id,
            "name": "volumes",
            "public_mac": "96:00:00:ab:cd:ef",
            "public_ipv4": "203.0.113.10",
            "public_ipv6": "2001:db8:1234:5678::/64",
            "public_keys": [key],
        }
    })
}

#[test]
fn volumes_mount_like_on_stock_images() {
    let mut vm = Vm::boot("e2e-volumes", |key| scenario(48151630, key));
    let (auto, manual, blank) = (100001u64, 100002u64, 100003u64);
    volumes::create_image(&volumes::image_path(&vm.sim, auto), 64, true).unwrap();
    volumes::create_image(&volumes::image_path(&vm.sim, manual), 64, true).unwrap();
    volumes::create_image(&volumes::image_path(&vm.sim, blank), 64, false).unwrap();
    let fstab_before = vm.sh("cat /etc/fstab");

    // Hot-attach: an ext4 volume with automount is mounted at the stock path.
    vm.attach(auto, true);
    let mnt = format!("/mnt/HC_Volume_{auto}");
    vm.eventually(
        "the automount volume is mounted",
        &format!("findmnt -n {mnt}"),
        Duration::from_secs(120),
    );
    let m = vm.sh(&format!("findmnt -n -o SOURCE,FSTYPE,OPTIONS {mnt}"));
    assert!(m.contains("ext4"), "{m}");
    assert!(m.contains("discard"), "mount options: {m}");
    let link = vm.sh(&format!(
        "readlink -f /dev/disk/by-id/scsi-0HC_Volume_{auto}"
    ));
    assert!(m.starts_with(link.trim()), "{m} is not {link}");
    assert_eq!(vm.fstab_lines(auto), 1);
    let line = vm.sh(&format!("grep ' {mnt} ' /etc/fstab"));
    assert_eq!(
        line.trim(),
        format!("/dev/disk/by-id/scsi-0HC_Volume_{auto} {mnt} ext4 discard,nofail,defaults 0 0")
    );
    assert!(
        vm.sh("cat /etc/fstab").starts_with(&fstab_before),
        "the rest of fstab is kept"
    );
    vm.sh(&format!("echo data > {mnt}/file && sync"));
    vm.service_done(auto);

    // Without automount, and unformatted: left alone.
    vm.attach(manual, false);
    vm.service_done(manual);
    vm.attach(blank, true);
    vm.eventually(
        "the unformatted volume is visible",
        &format!("test -e /dev/disk/by-id/scsi-0HC_Volume_{blank}"),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(vm.fstab_lines(manual), 0);
    assert_eq!(vm.fstab_lines(blank), 0);
    vm.sh(&format!("! findmnt -n /mnt/HC_Volume_{manual}"));
    vm.sh(&format!("! findmnt -n /mnt/HC_Volume_{blank}"));
    assert!(
        vm.sh(&format!(
            "blkid -p /dev/disk/by-id/scsi-0HC_Volume_{blank} || true"
        ))
        .trim()
        .is_empty(),
        "the unformatted volume was written to"
    );
    assert_eq!(
        vm.sh(&format!(
            "systemctl list-units --all --plain --no-legend 'hcloud-volumes@{blank}.service' | wc -l"
        ))
        .trim(),
        "0",
        "no service for an unformatted volume"
    );
    vm.no_failed_units();

    // Reboot with the volumes attached: mounted again at boot, without asking (the scenario
    // now says no automount, the fake answers 404), still one fstab line.
    let mut v = vm.sim.scenario.clone();
    v["server"]["volumes"] = json!([
        {"id": auto, "automount": false},
        {"id": manual, "automount": false},
        {"id": blank, "automount": false},
    ]);
    vm.sim.set_scenario(v).unwrap();
    let _ = vm.sim.ssh(&vm.key, "systemctl reboot");
    std::thread::sleep(Duration::from_secs(5));
    vm.wait_ssh();
    vm.eventually(
        "the volume is mounted after the reboot",
        &format!("findmnt -n {mnt}"),
        Duration::from_secs(120),
    );
    assert_eq!(vm.sh(&format!("cat {mnt}/file")).trim(), "data");
    assert_eq!(vm.fstab_lines(auto), 1);
    assert_eq!(vm.fstab_lines(manual), 0);
    vm.no_failed_units();

    // Detach while mounted: nothing forced, nothing failed; the fstab line stays (nofail).
    vm.detach(auto);
    vm.eventually(
        "the detached volume is gone",
        &format!("! test -e /dev/disk/by-id/scsi-0HC_Volume_{auto} && ! findmnt -n {mnt}"),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(3));
    vm.no_failed_units();
    assert_eq!(vm.fstab_lines(auto), 1);

    // Reattach: mounted again from the recorded line, no second line.
    vm.attach(auto, false);
    vm.eventually(
        "the reattached volume is mounted",
        &format!("findmnt -n {mnt}"),
        Duration::from_secs(120),
    );
    assert_eq!(vm.sh(&format!("cat {mnt}/file")).trim(), "data");
    assert_eq!(vm.fstab_lines(auto), 1);
    vm.no_failed_units();
}
