//! Hetzner Cloud Volumes in the simulator: a raw image file per volume, attached through the
//! QEMU monitor as a SCSI disk with vendor `HC`, product `Volume` and serial = volume id on a
//! virtio-scsi controller, as Hetzner presents them (`hetzner-guest-spec.md` §4). The
//! controller is hot-plugged with the first volume; a guest reboot keeps both (QEMU resets the
//! machine with its devices), so a volume attached once is also present "at boot" afterwards.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::sim::Sim;
use crate::vm::Qmp;

/// The QEMU id of the virtio-scsi controller the volumes hang on.
pub const CONTROLLER_ID: &str = "hc-scsi0";

/// The block node of a volume's image.
pub fn node_name(id: u64) -> String {
    format!("hcvol-node-{id}")
}

/// The QEMU device id of a volume.
pub fn device_id(id: u64) -> String {
    format!("hcvol-{id}")
}

/// Where a volume's image lives (in the server's state directory).
pub fn image_path(sim: &Sim, id: u64) -> PathBuf {
    sim.dir.join(format!("volume-{id}.raw"))
}

/// Creates a sparse image of `size_mb`; with `ext4`, formatted as the Hetzner console's
/// "format: ext4" would (mkfs.ext4, package e2fsprogs).
pub fn create_image(path: &Path, size_mb: u64, ext4: bool) -> Result<()> {
    let f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size_mb * 1024 * 1024)
        .with_context(|| format!("sizing {}", path.display()))?;
    drop(f);
    if ext4 {
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(path)
            .output()
            .context("running mkfs.ext4 (package e2fsprogs)")?;
        if !out.status.success() {
            bail!(
                "mkfs.ext4 {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Adds the virtio-scsi controller unless the machine has it already.
pub fn ensure_controller(qmp: &mut Qmp) -> Result<()> {
    let children = qmp.execute("qom-list", json!({"path": "/machine/peripheral"}))?;
    let present = children
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c["name"] == CONTROLLER_ID));
    if !present {
        qmp.execute(
            "device_add",
            json!({"driver": "virtio-scsi-pci", "id": CONTROLLER_ID}),
        )
        .context("adding the virtio-scsi controller")?;
    }
    Ok(())
}

/// Attaches volume `id` backed by `image` (hot-plug).
pub fn attach(qmp: &mut Qmp, id: u64, image: &Path) -> Result<()> {
    ensure_controller(qmp)?;
    qmp.execute(
        "blockdev-add",
        json!({
            "driver": "raw",
            "node-name": node_name(id),
            "file": {"driver": "file", "filename": image.display().to_string()},
        }),
    )
    .with_context(|| format!("opening the image of volume {id}"))?;
    qmp.execute(
        "device_add",
        json!({
            "driver": "scsi-hd",
            "id": device_id(id),
            "bus": format!("{CONTROLLER_ID}.0"),
            "drive": node_name(id),
            "vendor": "HC",
            "product": "Volume",
            "serial": id.to_string(),
        }),
    )
    .with_context(|| format!("plugging volume {id}"))?;
    Ok(())
}

/// Detaches volume `id` (hot-unplug, as the Hetzner API's detach does) and closes its image.
pub fn detach(qmp: &mut Qmp, id: u64) -> Result<()> {
    qmp.execute("device_del", json!({"id": device_id(id)}))
        .with_context(|| format!("unplugging volume {id}"))?;
    qmp.wait_event("DEVICE_DELETED", &device_id(id), Duration::from_secs(60))
        .with_context(|| format!("volume {id} was not released"))?;
    qmp.execute("blockdev-del", json!({"node-name": node_name(id)}))
        .with_context(|| format!("closing the image of volume {id}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ext4_image_carries_a_filesystem_and_a_blank_one_does_not() {
        let d = tempfile::tempdir().unwrap();
        let blank = d.path().join("blank.raw");
        create_image(&blank, 8, false).unwrap();
        assert_eq!(fs::metadata(&blank).unwrap().len(), 8 * 1024 * 1024);
        assert!(fs::read(&blank).unwrap().iter().all(|b| *b == 0));
        let ext4 = d.path().join("ext4.raw");
        create_image(&ext4, 8, true).unwrap();
        let bytes = fs::read(&ext4).unwrap();
        // The ext4 superblock magic 0xEF53 at offset 1024 + 0x38.
        assert_eq!(&bytes[1024 + 0x38..1024 + 0x3a], &[0x53, 0xef]);
    }
}
