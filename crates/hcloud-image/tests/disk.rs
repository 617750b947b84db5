//! packer/scripts/disk.sh and bootloader.sh, run for real against a loop device (needs root, as
//! CI has): the partition table and file systems a user would inspect, then the disk booted in
//! QEMU with legacy BIOS (SeaBIOS) and with UEFI (OVMF) up to GRUB reading its configuration
//! from the root file system.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const ROOT_ARM64: &str = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE";

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packer/scripts")
}

fn require_root() {
    assert!(
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() } == 0,
        "the disk tests need root (loop devices, mounts): run them as root, as CI does"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A sparse disk image on a loop device with partition scanning; detached (and unmounted) on drop.
struct LoopDisk {
    _dir: tempfile::TempDir,
    image: PathBuf,
    dev: String,
    mnt: PathBuf,
}

impl LoopDisk {
    fn new(size: &str) -> LoopDisk {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        run(Command::new("truncate").args(["-s", size]).arg(&image));
        let dev = run(Command::new("losetup")
            .args(["--find", "--show", "--partscan"])
            .arg(&image))
        .trim()
        .to_string();
        let mnt = dir.path().join("mnt");
        LoopDisk {
            _dir: dir,
            image,
            dev,
            mnt,
        }
    }
    fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }
    fn unmount(&self) {
        let _ = Command::new("sync").status();
        for m in [self.mnt.join("efi"), self.mnt.clone()] {
            if Command::new("mountpoint")
                .arg("-q")
                .arg(&m)
                .status()
                .is_ok_and(|s| s.success())
            {
                run(Command::new("umount").arg(&m));
            }
        }
    }
    fn detach(&mut self) {
        self.unmount();
        if !self.dev.is_empty() {
            run(Command::new("losetup").arg("-d").arg(&self.dev));
            self.dev.clear();
        }
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("sync").status();
        for m in [self.mnt.join("efi"), self.mnt.clone()] {
            let _ = Command::new("umount")
                .arg(&m)
                .stderr(Stdio::null())
                .status();
        }
        if !self.dev.is_empty() {
            let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
        }
    }
}

fn disk_sh(disk: &LoopDisk, env: &[(&str, &str)]) -> std::process::Output {
    Command::new("bash")
        .arg(scripts().join("disk.sh"))
        .arg(&disk.dev)
        .arg(&disk.mnt)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[derive(Debug)]
struct Part {
    start: u64,
    size: u64,
    kind: String,
    name: String,
}

fn partitions(dev: &str) -> (Vec<Part>, u64, String) {
    let json: serde_json::Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(dev))).unwrap();
    let t = &json["partitiontable"];
    let parts = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Part {
            start: p["start"].as_u64().unwrap(),
            size: p["size"].as_u64().unwrap(),
            kind: p["type"].as_str().unwrap().to_uppercase(),
            name: p["name"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    (
        parts,
        t["lastlba"].as_u64().unwrap(),
        t["label"].as_str().unwrap().to_string(),
    )
}

fn blkid(dev: &str, tag: &str) -> String {
    run(Command::new("blkid").args(["-o", "value", "-s", tag, dev]))
        .trim()
        .to_string()
}

fn read_start(dev: &str, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    fs::File::open(dev).unwrap().read_exact(&mut buf).unwrap();
    buf
}

/// Boot the image in QEMU and wait for `marker` on the serial console.
fn boot(image: &Path, firmware: Option<&str>, marker: &str) -> String {
    let log = image.with_extension(format!("{}.log", firmware.map_or("bios", |_| "uefi")));
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-display",
        "none",
        "-m",
        "256",
        "-no-reboot",
        "-nodefaults",
        "-vga",
        "none",
    ])
    .arg("-serial")
    .arg(format!("file:{}", log.display()))
    .arg("-drive")
    .arg(format!("file={},format=raw,if=ide", image.display()))
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(fw) = firmware {
        cmd.args(["-bios", fw]);
    }
    let mut child = cmd
        .spawn()
        .expect("qemu-system-x86_64 (Debian package qemu-system-x86)");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = String::new();
    while Instant::now() < deadline {
        seen = fs::read_to_string(&log).unwrap_or_default();
        if seen.contains(marker) {
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            seen = fs::read_to_string(&log).unwrap_or_default();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn disk_layout_and_grub_boot_with_bios_and_uefi() {
    let mut disk = LoopDisk::new("1G");
    let out = disk_sh(&disk, &[("ROOT_LABEL", "archlinux"), ("ARCH", "x86_64")]);
    assert!(
        out.status.success(),
        "disk.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The partition table: GPT, BIOS boot (1 MiB), ESP (256 MiB), root to the end of the disk,
    // every partition aligned to 1 MiB.
    let (parts, lastlba, label) = partitions(&disk.dev);
    assert_eq!(label, "gpt");
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(
        (parts[0].kind.as_str(), parts[0].name.as_str()),
        (BIOS_BOOT, "bios-boot")
    );
    assert_eq!(parts[0].size, 2048, "BIOS boot partition is 1 MiB");
    assert_eq!(
        (parts[1].kind.as_str(), parts[1].name.as_str()),
        (ESP, "esp")
    );
    assert_eq!(parts[1].size, 256 * 2048);
    assert_eq!(
        (parts[2].kind.as_str(), parts[2].name.as_str()),
        (ROOT_X86_64, "root")
    );
    for p in &parts {
        assert_eq!(p.start % 2048, 0, "{p:?} is not aligned to 1 MiB");
    }
    let root_end = parts[2].start + parts[2].size - 1;
    assert!(
        lastlba - root_end < 2048,
        "root ends at {root_end}, the disk at {lastlba}: it must fill the disk"
    );

    // File systems by label, mounted where the installers expect them.
    assert_eq!(blkid(&disk.part(2), "TYPE"), "vfat");
    assert_eq!(blkid(&disk.part(2), "LABEL"), "ESP");
    assert_eq!(blkid(&disk.part(3), "TYPE"), "ext4");
    assert_eq!(blkid(&disk.part(3), "LABEL"), "archlinux");
    let src = run(Command::new("findmnt")
        .args(["-no", "SOURCE"])
        .arg(&disk.mnt));
    assert_eq!(src.trim(), disk.part(3));
    let efi = disk.mnt.join("efi");
    assert!(
        Command::new("mountpoint")
            .arg("-q")
            .arg(&efi)
            .status()
            .unwrap()
            .success()
    );

    // GRUB for both firmware modes.
    let out = Command::new("bash")
        .arg(scripts().join("bootloader.sh"))
        .args(["--root"])
        .arg(&disk.mnt)
        .arg("--no-config")
        .arg(&disk.dev)
        .env("ARCH", "x86_64")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bootloader.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        efi.join("EFI/BOOT/BOOTX64.EFI").is_file(),
        "no removable-path EFI loader"
    );
    assert!(disk.mnt.join("boot/grub/i386-pc/normal.mod").is_file());
    assert!(disk.mnt.join("boot/grub/x86_64-efi/normal.mod").is_file());
    let mbr = read_start(&disk.dev, 512);
    assert_eq!(&mbr[510..], &[0x55, 0xaa], "no MBR signature");
    assert!(
        mbr[..440].iter().any(|&b| b != 0),
        "no boot code in the MBR"
    );
    assert!(
        read_start(&disk.part(1), 512).iter().any(|&b| b != 0),
        "no GRUB core image in the BIOS boot partition"
    );

    // A GRUB configuration that reports the firmware and halts.
    fs::write(
        disk.mnt.join("boot/grub/grub.cfg"),
        "serial --unit=0 --speed=115200\nterminal_output serial\necho \"HCLOUD-BOOT-OK ${grub_platform}\"\nhalt\n",
    )
    .unwrap();
    disk.detach();

    let bios = boot(&disk.image, None, "HCLOUD-BOOT-OK pc");
    assert!(
        bios.contains("HCLOUD-BOOT-OK pc"),
        "BIOS boot did not reach grub.cfg:\n{bios}"
    );
    let uefi = boot(
        &disk.image,
        Some("/usr/share/ovmf/OVMF.fd"),
        "HCLOUD-BOOT-OK efi",
    );
    assert!(
        uefi.contains("HCLOUD-BOOT-OK efi"),
        "UEFI boot did not reach grub.cfg:\n{uefi}"
    );
}

#[test]
fn arm64_disks_get_the_arm64_root_type_and_bad_input_is_refused() {
    let mut disk = LoopDisk::new("512M");
    let out = disk_sh(
        &disk,
        &[
            ("ROOT_LABEL", "nixos"),
            ("ARCH", "aarch64"),
            ("ESP_SIZE_MIB", "128"),
        ],
    );
    assert!(
        out.status.success(),
        "disk.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (parts, _, _) = partitions(&disk.dev);
    assert_eq!(parts[1].size, 128 * 2048);
    assert_eq!(parts[2].kind, ROOT_ARM64);
    assert_eq!(blkid(&disk.part(3), "LABEL"), "nixos");
    disk.unmount();

    let out = disk_sh(
        &disk,
        &[("ROOT_LABEL", "a-label-longer-than-16"), ("ARCH", "x86_64")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("longer than ext4's 16 characters"));
    // Refused before anything was written: the earlier layout is still there.
    assert_eq!(partitions(&disk.dev).0[2].kind, ROOT_ARM64);
    let out = disk_sh(&disk, &[("ARCH", "riscv64")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported architecture riscv64"));
    disk.detach();

    let out = Command::new("bash")
        .arg(scripts().join("disk.sh"))
        .args(["/etc/hostname", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a block device"));
}
