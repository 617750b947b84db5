//! QEMU: the server's hardware (SMBIOS, NICs with Hetzner's MAC prefixes and PCI slots, a
//! disk), how it boots ([`VmBoot`]: the simulator's guest by direct kernel boot, a cloud
//! server's disk through BIOS or UEFI firmware, or the rescue system), a serial console, and the
//! QMP monitor for NIC hotplug.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::net;
use crate::scenario::{PrivateNetwork, Server, ServerExt};

/// TCG works everywhere; KVM is much faster where it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Tcg,
    Kvm,
}

/// The firmware a cloud server's disk boots through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Firmware {
    /// Legacy BIOS (SeaBIOS), as x86 servers on Hetzner Cloud boot.
    Bios,
    /// UEFI (OVMF, Debian package ovmf), as arm64 servers and UEFI-only images boot.
    Uefi,
}

/// OVMF as a single image for `-bios` (Debian package ovmf).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// How a VM starts.
#[derive(Debug, Clone, PartialEq)]
pub enum VmBoot {
    /// The simulator's guest: its own kernel and initrd, the root file system on the virtio
    /// disk (`/dev/vda`).
    Kernel { kernel: PathBuf, initrd: PathBuf },
    /// A cloud server: the disk on virtio-scsi (`/dev/sda`, as on Hetzner Cloud), booted by
    /// the firmware through whatever bootloader is on it.
    Firmware(Firmware),
    /// The rescue system: its kernel and initrd, its root file system on a virtio disk whose
    /// writes are dropped when QEMU stops, the server's disk on virtio-scsi (`/dev/sda`) and
    /// root's SSH keys in fw_cfg (`opt/hcloud/rescue-keys`).
    Rescue {
        kernel: PathBuf,
        initrd: PathBuf,
        root: PathBuf,
        keys: PathBuf,
    },
}

/// The fw_cfg name the rescue system reads root's keys from.
pub const RESCUE_KEYS_FW_CFG: &str = "opt/hcloud/rescue-keys";

#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    pub accel: Accel,
    pub memory_mb: u32,
    pub cpus: u32,
    pub boot: VmBoot,
    /// Added to the kernel command line (direct kernel boots).
    pub kernel_args: Vec<String>,
    pub disk: PathBuf,
    pub serial_log: PathBuf,
    pub qmp_socket: PathBuf,
    pub pid_file: PathBuf,
}

/// The public NIC sits in PCI slot 3 (`ens3`), private NIC N in slot 9+N (`ens10`, `ens11`, ...),
/// as on Hetzner Cloud.
pub fn private_slot(interface_num: u64) -> u64 {
    9 + interface_num
}

pub fn private_device_id(interface_num: u64) -> String {
    format!("nic-p{interface_num}")
}

fn private_netdev_id(interface_num: u64) -> String {
    format!("net-p{interface_num}")
}

/// The `-device` properties of a private NIC (also used for hotplug).
fn private_device(p: &PrivateNetwork) -> Value {
    json!({
        "driver": "virtio-net-pci",
        "id": private_device_id(p.interface_num),
        "netdev": private_netdev_id(p.interface_num),
        "mac": p.mac_address.to_ascii_lowercase(),
        "host_mtu": net::PRIVATE_MTU,
        "addr": format!("0x{:x}", private_slot(p.interface_num)),
    })
}

fn device_arg(v: &Value) -> String {
    let obj = v.as_object().expect("device properties are an object");
    let driver = obj["driver"].as_str().unwrap_or_default();
    let mut s = driver.to_string();
    for (k, val) in obj {
        if k == "driver" {
            continue;
        }
        let val = match val {
            Value::String(x) => x.clone(),
            other => other.to_string(),
        };
        s.push_str(&format!(",{k}={val}"));
    }
    s
}

/// The CPU model under TCG. `max` emulates every feature QEMU knows (AVX2, AVX-512, ...), and
/// the guests' libraries then pick code paths that are slow to emulate: measured side by side,
/// gzip of 20 MB took 3.5-4.5 s in a `max` guest and 0.7-1.5 s in a `qemu64` one, and the bare
/// image reached its first SSH login 13 % sooner. `qemu64` still runs every x86-64 (v1) system
/// the simulator boots.
pub const TCG_CPU: &str = "qemu64";

/// The QEMU command line (without the program).
pub fn qemu_args(spec: &VmSpec, server: &Server) -> Vec<String> {
    let accel = match spec.accel {
        Accel::Tcg => "tcg",
        Accel::Kvm => "kvm",
    };
    let mut a: Vec<String> = vec![
        "-name".into(),
        spec.name.clone(),
        "-machine".into(),
        format!("pc,accel={accel}"),
        "-cpu".into(),
        if spec.accel == Accel::Kvm {
            "host".into()
        } else {
            TCG_CPU.into()
        },
        "-m".into(),
        spec.memory_mb.to_string(),
        "-smp".into(),
        spec.cpus.to_string(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        // Type 0 (BIOS vendor) is what systemd's hwdb matches Hetzner on (`dmi:bvnHetzner:*`),
        // type 1 what the agents read (vendor, product, serial = the instance id).
        "-smbios".into(),
        "type=0,vendor=Hetzner".into(),
        "-smbios".into(),
        format!(
            "type=1,manufacturer=Hetzner,product=vServer,serial={}",
            server.id
        ),
        "-device".into(),
        "virtio-rng-pci".into(),
        // Appended, so a server's console keeps every boot (rescue, then its own disk).
        "-chardev".into(),
        format!(
            "file,id=serial0,append=on,path={}",
            spec.serial_log.display()
        ),
        "-serial".into(),
        "chardev:serial0".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", spec.qmp_socket.display()),
        "-pidfile".into(),
        spec.pid_file.display().to_string(),
        "-daemonize".into(),
    ];
    a.extend(boot_args(spec));
    if server.has_public_nic() {
        let mac = server
            .public_mac
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase();
        a.push("-netdev".into());
        a.push(format!(
            "tap,id=net-pub,ifname={},script=no,downscript=no",
            net::tap_public()
        ));
        a.push("-device".into());
        a.push(format!(
            "virtio-net-pci,netdev=net-pub,mac={mac},addr=0x3,id=nic-pub"
        ));
    }
    let mut privs: Vec<&PrivateNetwork> = server.private_networks.iter().collect();
    privs.sort_by_key(|p| p.interface_num);
    for p in privs {
        a.push("-netdev".into());
        a.push(format!(
            "tap,id={},ifname={},script=no,downscript=no",
            private_netdev_id(p.interface_num),
            net::tap_private(p.interface_num)
        ));
        a.push("-device".into());
        a.push(device_arg(&private_device(p)));
    }
    a
}

/// A direct kernel boot with root on `/dev/vda`, the serial console and `spec.kernel_args`.
fn direct_kernel(spec: &VmSpec, kernel: &Path, initrd: &Path) -> Vec<String> {
    let append = std::iter::once(
        "root=/dev/vda rw console=ttyS0,115200 net.ifnames=1 systemd.journald.forward_to_console=1",
    )
    .chain(spec.kernel_args.iter().map(String::as_str))
    .collect::<Vec<_>>()
    .join(" ");
    vec![
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        append,
    ]
}

/// The drive of the server's disk on virtio-scsi, first to boot.
fn scsi_disk(disk: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "file={},format=raw,if=none,id=disk0,cache=unsafe,discard=unmap",
            disk.display()
        ),
        "-device".into(),
        // Slot 3 is the public NIC's (ens3), 10+ the private ones'.
        "virtio-scsi-pci,id=scsi0,addr=0x5".into(),
        "-device".into(),
        "scsi-hd,drive=disk0,bus=scsi0.0,bootindex=1".into(),
    ]
}

/// Firmware, kernel and disks of the boot.
fn boot_args(spec: &VmSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    match &spec.boot {
        VmBoot::Kernel { kernel, initrd } => {
            a.extend(direct_kernel(spec, kernel, initrd));
            a.extend([
                "-drive".into(),
                format!(
                    "file={},format=raw,if=virtio,cache=unsafe",
                    spec.disk.display()
                ),
            ]);
        }
        VmBoot::Firmware(fw) => {
            if *fw == Firmware::Uefi {
                a.extend(["-bios".into(), OVMF.into()]);
            }
            a.extend(scsi_disk(&spec.disk));
        }
        VmBoot::Rescue {
            kernel,
            initrd,
            root,
            keys,
        } => {
            a.extend(direct_kernel(spec, kernel, initrd));
            a.extend([
                "-drive".into(),
                format!(
                    "file={},format=raw,if=virtio,snapshot=on,cache=unsafe",
                    root.display()
                ),
                "-fw_cfg".into(),
                format!("name={RESCUE_KEYS_FW_CFG},file={}", keys.display()),
            ]);
            a.extend(scsi_disk(&spec.disk));
        }
    }
    a
}

/// Starts QEMU inside the namespace (it daemonizes once the VM is created).
pub fn start(ns: &str, spec: &VmSpec, server: &Server) -> Result<()> {
    let mut c: Vec<String> = ["ip", "netns", "exec", ns, "qemu-system-x86_64"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.extend(qemu_args(spec, server));
    net::run(&c).context("starting QEMU (package qemu-system-x86)")?;
    Ok(())
}

/// A QMP connection.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events seen while waiting for replies.
    pub events: Vec<Value>,
}

impl Qmp {
    pub fn connect(socket: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to the QEMU monitor {}", socket.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let writer = stream.try_clone()?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            bail!(
                "QEMU monitor {}: unexpected greeting {greeting}",
                socket.display()
            );
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .context("reading from the QEMU monitor")?;
        if n == 0 {
            bail!("the QEMU monitor closed the connection");
        }
        serde_json::from_str(&line).with_context(|| format!("QEMU monitor sent {line:?}"))
    }

    /// Runs a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({"execute": command, "arguments": arguments});
        self.writer
            .write_all(format!("{msg}\n").as_bytes())
            .context("writing to the QEMU monitor")?;
        loop {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                bail!("QEMU monitor: {command} failed: {e}");
            }
            self.events.push(v);
        }
    }

    /// Waits for an event (e.g. DEVICE_DELETED of a device id).
    pub fn wait_event(&mut self, name: &str, device: &str, timeout: Duration) -> Result<()> {
        let matches = |v: &Value| {
            v["event"] == name
                && (v["data"]["device"] == device
                    || v["data"]["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with(device)))
        };
        if self.events.iter().any(matches) {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.read() {
                Ok(v) if matches(&v) => return Ok(()),
                Ok(v) => self.events.push(v),
                Err(e) => return Err(e).context(format!("waiting for {name} of {device}")),
            }
        }
        bail!("no {name} event for {device} within {timeout:?}")
    }
}

/// Hot-plugs a private NIC (its tap must exist in the namespace).
pub fn attach_private(qmp: &mut Qmp, p: &PrivateNetwork) -> Result<()> {
    qmp.execute(
        "netdev_add",
        json!({
            "type": "tap",
            "id": private_netdev_id(p.interface_num),
            "ifname": net::tap_private(p.interface_num),
            "script": "no",
            "downscript": "no",
        }),
    )?;
    qmp.execute("device_add", private_device(p))?;
    Ok(())
}

/// Unplugs a private NIC: asks the guest to release it (ACPI) and waits until it did.
pub fn detach_private(qmp: &mut Qmp, p: &PrivateNetwork) -> Result<()> {
    let id = private_device_id(p.interface_num);
    qmp.execute("device_del", json!({"id": id}))?;
    qmp.wait_event("DEVICE_DELETED", &id, Duration::from_secs(120))
        .context("the guest did not release the NIC")?;
    qmp.execute(
        "netdev_del",
        json!({"id": private_netdev_id(p.interface_num)}),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    #[test]
    fn hardware_looks_like_a_hetzner_server() {
        let (_, s) = scenario::parse(
            "server:\n  id: 4242\n  name: a\n  public_mac: \"96:00:00:00:00:AA\"\n  public_ipv4: 203.0.113.10\n  private_networks:\n    - ip: 10.0.0.2\n      interface_num: 1\n      mac_address: \"86:00:00:00:00:01\"\n      network_id: 1001\n      network_name: backend\n      network: 10.0.0.0/16\n      subnet: 10.0.0.0/24\n      gateway: 10.0.0.1\n",
        )
        .unwrap();
        let spec = VmSpec {
            name: "a".into(),
            accel: Accel::Tcg,
            memory_mb: 1024,
            cpus: 1,
            boot: VmBoot::Kernel {
                kernel: "/k".into(),
                initrd: "/i".into(),
            },
            kernel_args: vec!["systemd.imds.network=locked".into()],
            disk: "/d".into(),
            serial_log: "/s".into(),
            qmp_socket: "/q".into(),
            pid_file: "/p".into(),
        };
        let a = qemu_args(&spec, &s).join(" ");
        assert!(
            a.contains("-smbios type=1,manufacturer=Hetzner,product=vServer,serial=4242"),
            "{a}"
        );
        // systemd's hwdb recognises Hetzner by the BIOS vendor.
        assert!(a.contains("-smbios type=0,vendor=Hetzner"), "{a}");
        assert!(
            a.contains("systemd.journald.forward_to_console=1 systemd.imds.network=locked"),
            "{a}"
        );
        assert!(a.contains("-machine pc,accel=tcg"), "{a}");
        assert!(
            a.contains("virtio-net-pci,netdev=net-pub,mac=96:00:00:00:00:aa,addr=0x3"),
            "{a}"
        );
        assert!(a.contains("mac=86:00:00:00:00:01"), "{a}");
        assert!(a.contains("host_mtu=1450"), "{a}");
        assert!(a.contains("addr=0xa"), "{a}");
    }

    #[test]
    fn cloud_servers_boot_their_disk_as_sda_and_the_rescue_system_sees_it_there() {
        let (_, s) = scenario::parse(
            "server:\n  id: 7\n  name: a\n  public_mac: \"96:00:00:00:00:AA\"\n  public_ipv4: 203.0.113.10\n",
        )
        .unwrap();
        let mut spec = VmSpec {
            name: "a".into(),
            accel: Accel::Tcg,
            memory_mb: 1024,
            cpus: 1,
            boot: VmBoot::Firmware(Firmware::Bios),
            kernel_args: vec![],
            disk: "/d".into(),
            serial_log: "/s".into(),
            qmp_socket: "/q".into(),
            pid_file: "/p".into(),
        };
        let bios = qemu_args(&spec, &s).join(" ");
        assert!(
            !bios.contains("-kernel") && !bios.contains("-bios"),
            "{bios}"
        );
        assert!(
            bios.contains("scsi-hd,drive=disk0,bus=scsi0.0,bootindex=1"),
            "{bios}"
        );
        assert!(
            bios.contains("file=/d,format=raw,if=none,id=disk0"),
            "{bios}"
        );
        spec.boot = VmBoot::Firmware(Firmware::Uefi);
        let uefi = qemu_args(&spec, &s).join(" ");
        assert!(uefi.contains(&format!("-bios {OVMF}")), "{uefi}");
        spec.boot = VmBoot::Rescue {
            kernel: "/rk".into(),
            initrd: "/ri".into(),
            root: "/rr".into(),
            keys: "/keys".into(),
        };
        let rescue = qemu_args(&spec, &s).join(" ");
        assert!(rescue.contains("-kernel /rk -initrd /ri"), "{rescue}");
        assert!(
            rescue.contains("file=/rr,format=raw,if=virtio,snapshot=on"),
            "{rescue}"
        );
        assert!(
            rescue.contains("-fw_cfg name=opt/hcloud/rescue-keys,file=/keys"),
            "{rescue}"
        );
        assert!(rescue.contains("scsi-hd,drive=disk0"), "{rescue}");
        assert!(
            rescue.contains("chardev:serial0") && rescue.contains("append=on"),
            "{rescue}"
        );
    }
}
