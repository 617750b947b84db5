//! A simulated Hetzner Cloud: the fake Cloud API (`hcloud-fake-cloud`) with QEMU VMs behind its
//! servers ([`QemuMachines`]), so `packer build` runs a whole image build on this machine.
//!
//! - The cloud has a network namespace of its own (`hsim-<name>`). The API listens there on
//!   `10.255.255.1:80`, and packer runs there (`Cloud::command`).
//! - Each server is a simulated server ([`Sim`], namespace `hsim-<name>-<id>`) with Hetzner's
//!   network and the fake metadata service, made from what the API was asked for: its name,
//!   addresses, SSH keys and user data. A veth pair links it to the cloud's namespace, and the
//!   cloud routes the server's public addresses through it, as the internet would.
//! - Its disk is `/dev/sda` on virtio-scsi and boots through SeaBIOS, or OVMF (UEFI) when the
//!   cloud's firmware is [`Firmware::Uefi`] or the server has the label
//!   `hcloud-sim/firmware=uefi`. A server from a system image gets a blank disk (only the rescue
//!   system and snapshots boot here); `enable_rescue` and a reset boot the simulated rescue
//!   system ([`crate::rescue`]).
//! - `create_image` stores the disk as a compressed qcow2 (zstd) and reports its size as
//!   `image_size`; a server from the snapshot gets a raw copy, grown to its type's disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hcloud_fake_cloud::{
    Addresses, Boot, Config, DiskSource, FakeCloud, Hardware, Ipv4Range, MachineSpec, Machines,
    SnapshotInfo,
};
use serde_json::json;

use crate::net;
use crate::rescue::RescueImage;
use crate::sim::{self, Options, Sim};
use crate::vm::{Firmware, VmBoot};

/// The cloud's own address (on `lo` of its namespace): the API, packer's source address, the
/// local mirror.
pub const CLOUD_V4: Ipv4Addr = Ipv4Addr::new(10, 255, 255, 1);
pub const CLOUD_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x255, 0, 0, 0, 0, 0, 1);
/// The port of the directory [`Cloud::serve_directory`] serves.
pub const FILES_PORT: u16 = 8000;
/// The label that boots a server through UEFI.
pub const FIRMWARE_LABEL: &str = "hcloud-sim/firmware";
/// Memory of a VM at most, whatever its server type has (the guests need far less).
const MAX_MEMORY_MB: u32 = 2048;

/// What the simulated cloud is made of.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// Short name (`[a-z0-9-]`, at most 12 characters): namespace `hsim-<name>`, servers
    /// `hsim-<name>-<id>`.
    pub name: String,
    /// The options every server is made with (state root, cache, static build, accel).
    pub base: Options,
    /// The firmware of servers without the firmware label.
    pub firmware: Firmware,
    pub ipv4_range: Ipv4Range,
    pub config: Config,
}

/// A running simulated cloud. [`Cloud::stop`] (or dropping it) deletes every server.
pub struct Cloud {
    pub ns: String,
    pub dir: PathBuf,
    pub fake: FakeCloud,
    pub machines: Arc<QemuMachines>,
    files: Mutex<Option<Child>>,
}

impl Cloud {
    /// Creates the namespace, starts the API in it, with QEMU machines behind it; `rescue` is
    /// the rescue system servers boot into.
    pub fn start(opts: CloudOptions, rescue: RescueImage) -> Result<Cloud> {
        if opts.name.len() > 12 {
            bail!("cloud name {:?}: at most 12 characters", opts.name);
        }
        sim::check_name(&opts.name)?;
        let ns = net::namespace(&opts.name);
        let dir = opts.base.state_root.join(&opts.name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        stop_stale(&opts, &ns)?;
        let ip = |args: &str| net::ip(&ns, args);
        net::run_all(&[
            vec!["ip".into(), "netns".into(), "add".into(), ns.clone()],
            ip("link set lo up"),
            ip(&format!("addr add {CLOUD_V4}/32 dev lo")),
            ip(&format!("-6 addr add {CLOUD_V6}/128 dev lo nodad")),
        ])
        .context("creating the cloud's namespace")?;
        let machines = Arc::new(QemuMachines {
            name: opts.name.clone(),
            cloud_ns: ns.clone(),
            base: opts.base.clone(),
            default_firmware: opts.firmware,
            range: opts.ipv4_range,
            rescue,
            snapshots: dir.join("snapshots"),
            inner: Mutex::new(Inner::default()),
        });
        fs::create_dir_all(&machines.snapshots)?;
        let m: Arc<dyn Machines> = machines.clone();
        let config = opts.config.clone();
        let fake = net::in_namespace(&ns, move || FakeCloud::start((CLOUD_V4, 80), config, m))?
            .context("starting the fake Cloud API")?;
        Ok(Cloud {
            ns,
            dir,
            fake,
            machines,
            files: Mutex::new(None),
        })
    }

    /// `HCLOUD_ENDPOINT` for clients inside the namespace.
    pub fn endpoint(&self) -> String {
        format!("http://{CLOUD_V4}/v1")
    }

    /// `program` to run inside the cloud's namespace, with `HCLOUD_ENDPOINT` and `HCLOUD_TOKEN`
    /// set.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program])
            .env("HCLOUD_ENDPOINT", self.endpoint())
            .env("HCLOUD_TOKEN", self.fake.token());
        c
    }

    /// Serves `dir` over plain HTTP at `http://10.255.255.1:8000/` (one directory at a time).
    pub fn serve_directory(&self, dir: &Path) -> Result<String> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = files.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let log = fs::File::create(self.dir.join("files.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "python3", "-m", "http.server"])
            .args(["--bind", &CLOUD_V4.to_string(), &FILES_PORT.to_string()])
            .arg("--directory")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting python3 -m http.server (package python3)")?;
        *files = Some(child);
        let url = format!("http://{CLOUD_V4}:{FILES_PORT}");
        for _ in 0..50 {
            let up = net::in_namespace(&self.ns, || {
                std::net::TcpStream::connect((CLOUD_V4, FILES_PORT)).is_ok()
            })?;
            if up {
                return Ok(url);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the file server on {url} did not come up (see files.log)")
    }

    /// Calls the API like a client would (for tests and the CLI), from inside the namespace:
    /// `path` below `/v1`; an answer other than 2xx is an error naming Hetzner's.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let token = self.fake.token().to_string();
        let body = body.map(|b| b.to_string());
        let (status, text) = net::in_namespace(&self.ns, move || -> Result<(u16, String)> {
            let mut stream = std::net::TcpStream::connect((CLOUD_V4, 80))?;
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            let body = body.unwrap_or_default();
            let req = format!(
                "{method} /v1{path} HTTP/1.1\r\nHost: {CLOUD_V4}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            use std::io::{Read, Write};
            stream.write_all(req.as_bytes())?;
            let mut resp = String::new();
            stream.read_to_string(&mut resp)?;
            let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Ok((status, rest.to_string()))
        })??;
        let value: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("{method} {path}: answer is not JSON: {text}"))?
        };
        if !(200..300).contains(&status) {
            bail!("{method} {path}: {status} {value}");
        }
        Ok(value)
    }

    /// The simulated server behind server `id` (to SSH in, read its console).
    pub fn server(&self, id: u64) -> Result<Sim> {
        self.machines.sim_of(id)
    }

    /// Deletes every server, stops the file server and removes the namespace.
    pub fn stop(&self) -> Result<()> {
        if let Some(mut c) = self.files.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let ids: Vec<u64> = self.machines.inner().servers.keys().copied().collect();
        for id in ids {
            let _ = self.machines.delete(id);
        }
        if net::namespace_exists(&self.ns) {
            net::run(&["ip".into(), "netns".into(), "del".into(), self.ns.clone()])?;
        }
        Ok(())
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Removes what an earlier run of this cloud left: its servers' namespaces and its own.
fn stop_stale(opts: &CloudOptions, ns: &str) -> Result<()> {
    let prefix = format!("{}-", opts.name);
    for e in fs::read_dir(&opts.base.state_root)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            let mut o = opts.base.clone();
            o.name = name;
            let _ = sim::purge(&o);
        }
    }
    if net::namespace_exists(ns) {
        net::run(&["ip".into(), "netns".into(), "del".into(), ns.to_string()])?;
    }
    Ok(())
}

struct Server {
    sim: Sim,
    slot: u8,
    hardware: Hardware,
    firmware: Firmware,
}

#[derive(Default)]
struct Inner {
    used_v4: BTreeSet<u32>,
    used_slots: BTreeSet<u8>,
    addresses: BTreeMap<u64, (Addresses, u8)>,
    servers: BTreeMap<u64, Arc<Mutex<Server>>>,
}

/// Servers as QEMU VMs on simulated Hetzner networks.
pub struct QemuMachines {
    name: String,
    cloud_ns: String,
    base: Options,
    default_firmware: Firmware,
    range: Ipv4Range,
    rescue: RescueImage,
    snapshots: PathBuf,
    inner: Mutex<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The region of a location, as the metadata service names it.
fn region_of(location: &str) -> &'static str {
    match location {
        "ash" => "us-east",
        "hil" => "us-west",
        "sin" => "ap-southeast",
        _ => "eu-central",
    }
}

impl QemuMachines {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn server(&self, id: u64) -> Result<Arc<Mutex<Server>>> {
        self.inner()
            .servers
            .get(&id)
            .cloned()
            .with_context(|| format!("server {id} has no machine"))
    }

    /// A handle on server `id`'s simulated server.
    pub fn sim_of(&self, id: u64) -> Result<Sim> {
        let s = self.server(id)?;
        let s = lock(&s);
        Sim::open(s.sim.opts.clone())
    }

    fn snapshot_path(&self, image_id: u64) -> PathBuf {
        self.snapshots.join(format!("{image_id}.qcow2"))
    }

    /// The veth pair between the cloud and server `slot`, and the routes through it.
    fn link_to_cloud(&self, sim: &Sim, slot: u8) -> Result<()> {
        let (cloud, server) = (&self.cloud_ns, &sim.ns);
        let veth = format!("vc{slot}");
        let ip = net::ip;
        let mut c = vec![
            ip(
                cloud,
                &format!("link add {veth} type veth peer name vcloud netns {server}"),
            ),
            ip(cloud, &format!("addr add 10.254.{slot}.1/24 dev {veth}")),
            ip(
                cloud,
                &format!("-6 addr add fd00:254:{slot}::1/64 dev {veth} nodad"),
            ),
            ip(cloud, &format!("link set {veth} up")),
            ip(server, &format!("addr add 10.254.{slot}.2/24 dev vcloud")),
            ip(
                server,
                &format!("-6 addr add fd00:254:{slot}::2/64 dev vcloud nodad"),
            ),
            ip(server, "link set vcloud up"),
            ip(
                server,
                &format!("route add {CLOUD_V4}/32 via 10.254.{slot}.1"),
            ),
            ip(
                server,
                &format!("-6 route add {CLOUD_V6}/128 via fd00:254:{slot}::1"),
            ),
            vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                server.to_string(),
                "sysctl".into(),
                "-qw".into(),
                "net.ipv4.ip_forward=1".into(),
                "net.ipv6.conf.all.forwarding=1".into(),
            ],
        ];
        if let Some(v4) = sim.server.public_ipv4 {
            c.push(ip(
                cloud,
                &format!("route add {v4}/32 via 10.254.{slot}.2 src {CLOUD_V4}"),
            ));
        }
        if let Some(v6) = crate::scenario::ServerExt::ipv6_net(&sim.server)? {
            c.push(ip(
                cloud,
                &format!("-6 route add {v6} via fd00:254:{slot}::2 src {CLOUD_V6}"),
            ));
        }
        net::run_all(&c).context("linking the server to the cloud")
    }

    fn vm_boot(&self, server: &Server, boot: &Boot) -> Result<VmBoot> {
        Ok(match boot {
            Boot::Disk => VmBoot::Firmware(server.firmware),
            Boot::Rescue { ssh_keys } => {
                let keys = server.sim.dir.join("rescue-keys");
                let mut text = ssh_keys.join("\n");
                text.push('\n');
                fs::write(&keys, text).with_context(|| format!("writing {}", keys.display()))?;
                VmBoot::Rescue {
                    kernel: self.rescue.kernel.clone(),
                    initrd: self.rescue.initrd.clone(),
                    root: self.rescue.root.clone(),
                    keys,
                }
            }
        })
    }

    fn start(&self, id: u64, boot: &Boot) -> Result<()> {
        let s = self.server(id)?;
        let mut s = lock(&s);
        if s.sim.qemu_running() {
            s.sim.kill_vm();
        }
        let vm_boot = self.vm_boot(&s, boot)?;
        s.sim.opts.memory_mb = ((s.hardware.memory_gb * 1024.0) as u32).min(MAX_MEMORY_MB);
        s.sim.start_vm(vm_boot)
    }
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Stores the raw `disk` as a zstd-compressed qcow2 at `out`; returns its size in bytes. The
/// disk may belong to a paused VM: QEMU keeps its lock on it then, so it is read shared (`-U`).
fn store_snapshot(disk: &Path, out: &Path) -> Result<u64> {
    run_tool(
        Command::new("qemu-img")
            .args(["convert", "-U", "-c", "-O", "qcow2"])
            .args(["-o", "compression_type=zstd"])
            .arg(disk)
            .arg(out),
        "storing the snapshot (qemu-img convert -c)",
    )?;
    Ok(fs::metadata(out)
        .with_context(|| format!("reading {}", out.display()))?
        .len())
}

/// Grows (never shrinks) the raw disk to `gb` GB, sparse.
fn grow(disk: &Path, gb: u64) -> Result<()> {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {}", disk.display()))?;
    let want = gb * 1_000_000_000;
    if f.metadata()?.len() < want {
        f.set_len(want)
            .with_context(|| format!("growing {} to {gb} GB", disk.display()))?;
    }
    Ok(())
}

impl Machines for QemuMachines {
    fn allocate(&self, spec: &MachineSpec) -> Result<Addresses> {
        let mut inner = self.inner();
        let slot = (1..=250u8)
            .find(|s| !inner.used_slots.contains(s))
            .context("the simulated cloud runs 250 servers at most")?;
        let ipv4 = if spec.enable_ipv4 {
            let free = self.range.first_free(&inner.used_v4)?;
            inner.used_v4.insert(u32::from(free));
            Some(free)
        } else {
            None
        };
        let ipv6_net = spec
            .enable_ipv6
            .then(|| Ipv6Addr::new(0x2001, 0xdb8, 0x5e, u16::from(slot), 0, 0, 0, 0));
        inner.used_slots.insert(slot);
        let a = Addresses { ipv4, ipv6_net };
        inner.addresses.insert(spec.id, (a.clone(), slot));
        Ok(a)
    }

    fn create(&self, spec: &MachineSpec) -> Result<()> {
        let (addresses, slot) = self
            .inner()
            .addresses
            .get(&spec.id)
            .cloned()
            .with_context(|| format!("server {} has no addresses", spec.id))?;
        let mut server = json!({
            "id": spec.id,
            "name": spec.name,
            "region": region_of(&spec.location),
            "availability_zone": format!("{}-dc14", spec.location),
            "public_mac": format!("96:00:00:5e:00:{slot:02x}"),
            "public_keys": spec.ssh_keys,
        });
        if let Some(v4) = addresses.ipv4 {
            server["public_ipv4"] = json!(v4.to_string());
        }
        if let Some(v6) = addresses.ipv6_net {
            server["public_ipv6"] = json!(format!("{v6}/64"));
        }
        if let Some(u) = &spec.user_data {
            server["userdata"] = json!(u);
        }
        let mut opts = self.base.clone();
        opts.name = format!("{}-{}", self.name, spec.id);
        let sim = Sim::new(opts, json!({ "server": server }))?;
        let disk = sim.disk_path();
        let _ = fs::remove_file(&disk);
        match &spec.image {
            DiskSource::System { .. } => {
                fs::File::create(&disk).with_context(|| format!("creating {}", disk.display()))?;
            }
            DiskSource::Snapshot { image_id } => {
                let snap = self.snapshot_path(*image_id);
                run_tool(
                    Command::new("qemu-img")
                        .args(["convert", "-O", "raw", "-S", "4k"])
                        .arg(&snap)
                        .arg(&disk),
                    "copying the snapshot to the new disk (qemu-img convert)",
                )?;
            }
        }
        grow(&disk, spec.hardware.disk_gb)?;
        let firmware = match spec.labels.get(FIRMWARE_LABEL).map(String::as_str) {
            Some("uefi") => Firmware::Uefi,
            Some("bios") => Firmware::Bios,
            _ => self.default_firmware,
        };
        let mut sim = sim;
        sim.start_network()?;
        self.link_to_cloud(&sim, slot)?;
        self.inner().servers.insert(
            spec.id,
            Arc::new(Mutex::new(Server {
                sim,
                slot,
                hardware: spec.hardware.clone(),
                firmware,
            })),
        );
        Ok(())
    }

    fn power_on(&self, id: u64, boot: &Boot) -> Result<()> {
        self.start(id, boot)
    }

    fn reset(&self, id: u64, boot: &Boot) -> Result<()> {
        self.start(id, boot)
    }

    fn shutdown(&self, id: u64) -> Result<()> {
        let s = self.server(id)?;
        let s = lock(&s);
        if s.sim.qemu_running() {
            s.sim
                .qmp()?
                .execute("system_powerdown", json!({}))
                .context("ACPI power button (QMP system_powerdown)")?;
        }
        Ok(())
    }

    fn power_off(&self, id: u64) -> Result<()> {
        let s = self.server(id)?;
        lock(&s).sim.kill_vm();
        Ok(())
    }

    fn is_running(&self, id: u64) -> bool {
        let Ok(s) = self.server(id) else { return false };
        let s = lock(&s);
        s.sim.qemu_running()
    }

    fn change_type(&self, id: u64, hardware: &Hardware, upgrade_disk: bool) -> Result<()> {
        let s = self.server(id)?;
        let mut s = lock(&s);
        let disk_gb = if upgrade_disk {
            grow(&s.sim.disk_path(), hardware.disk_gb)?;
            hardware.disk_gb
        } else {
            s.hardware.disk_gb
        };
        s.hardware = Hardware {
            disk_gb,
            ..hardware.clone()
        };
        Ok(())
    }

    fn snapshot(&self, id: u64, image_id: u64) -> Result<SnapshotInfo> {
        let s = self.server(id)?;
        let s = lock(&s);
        // A running server is snapshotted live, as on Hetzner: paused while its disk is read
        // (a shutdown may also be just finishing, then there is nothing to pause).
        let paused = s.sim.qemu_running()
            && match s.sim.qmp().and_then(|mut q| q.execute("stop", json!({}))) {
                Ok(_) => true,
                Err(_) if !s.sim.qemu_running() => false,
                Err(e) => return Err(e.context("pausing the server for its snapshot")),
            };
        let result = store_snapshot(&s.sim.disk_path(), &self.snapshot_path(image_id));
        if paused && s.sim.qemu_running() {
            s.sim.qmp()?.execute("cont", json!({}))?;
        }
        let bytes = result?;
        Ok(SnapshotInfo {
            image_size_gb: (bytes as f64 / 1e9 * 1000.0).round() / 1000.0,
        })
    }

    fn delete(&self, id: u64) -> Result<()> {
        let server = self.inner().servers.remove(&id);
        if let Some(s) = server {
            let s = lock(&s);
            s.sim.kill_vm();
            sim::purge(&s.sim.opts)?;
            self.inner().used_slots.remove(&s.slot);
        }
        let mut inner = self.inner();
        if let Some((a, slot)) = inner.addresses.remove(&id) {
            inner.used_slots.remove(&slot);
            if let Some(v4) = a.ipv4 {
                inner.used_v4.remove(&u32::from(v4));
            }
        }
        Ok(())
    }

    fn delete_image(&self, image_id: u64) -> Result<()> {
        let p = self.snapshot_path(image_id);
        if p.exists() {
            fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_follow_locations() {
        assert_eq!(region_of("fsn1"), "eu-central");
        assert_eq!(region_of("ash"), "us-east");
        assert_eq!(region_of("sin"), "ap-southeast");
    }

    /// A server that is still running (or paused for the copy) holds QEMU's lock on its disk.
    #[test]
    fn a_snapshot_is_taken_of_a_disk_a_paused_vm_holds() {
        let t = tempfile::tempdir().unwrap();
        let disk = t.path().join("disk.raw");
        fs::write(&disk, vec![7u8; 1 << 20]).unwrap();
        grow(&disk, 1).unwrap();
        let pid = t.path().join("qemu.pid");
        let started = Command::new("qemu-system-x86_64")
            .args([
                "-S",
                "-display",
                "none",
                "-nodefaults",
                "-daemonize",
                "-pidfile",
            ])
            .arg(&pid)
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", disk.display()))
            .status()
            .expect("qemu-system-x86_64 (package qemu-system-x86)");
        assert!(started.success());
        let result = store_snapshot(&disk, &t.path().join("snap.qcow2"));
        let qemu: i32 = fs::read_to_string(&pid).unwrap().trim().parse().unwrap();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(qemu),
            nix::sys::signal::Signal::SIGKILL,
        );
        let bytes = result.unwrap();
        // 1 MB of data in a 1 GB disk compresses to a few kilobytes plus qcow2's tables.
        assert!(bytes > 0 && bytes < 2_000_000, "{bytes} bytes");
    }

    #[test]
    fn disks_grow_sparse_and_never_shrink() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("disk.raw");
        fs::write(&d, b"x").unwrap();
        grow(&d, 2).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().len(), 2_000_000_000);
        grow(&d, 1).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().len(), 2_000_000_000);
    }
}
