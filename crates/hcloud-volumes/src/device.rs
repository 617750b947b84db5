//! What the kernel and udev say about an attached volume, read from plain files so it works
//! under `--root`: the stable link `/dev/disk/by-id/scsi-0HC_Volume_<id>`, the block device's
//! `dev` number in sysfs and udev's database entry `/run/udev/data/b<major>:<minor>`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use hcloud_metadata::Root;

/// What udev recorded about one attached volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeDevice {
    pub id: u64,
    /// `/dev/disk/by-id/scsi-0HC_Volume_<id>` (not resolved under the root).
    pub link: String,
    /// The kernel name the link points to, e.g. `sdb`.
    pub kernel_name: String,
    /// `ID_FS_TYPE`, when blkid found a filesystem or other signature.
    pub fs_type: Option<String>,
    /// `ID_FS_USAGE`: `filesystem`, `crypto`, `raid`, `other`.
    pub fs_usage: Option<String>,
    /// `ID_FS_UUID`.
    pub fs_uuid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("volume {id}: {path} is not there (the volume is not attached, or was detached)")]
    NotAttached { id: u64, path: PathBuf },
    #[error("volume {id}: reading {path}: {error}")]
    Read {
        id: u64,
        path: PathBuf,
        error: io::Error,
    },
    #[error("volume {id}: {path}: {reason}")]
    Invalid {
        id: u64,
        path: PathBuf,
        reason: String,
    },
}

/// The stable link of a volume.
pub fn by_id_link(id: u64) -> String {
    format!("/dev/disk/by-id/scsi-0HC_Volume_{id}")
}

/// Parse udev's database file: `E:KEY=VALUE` lines are the properties.
pub fn parse_udev_data(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A filesystem type we are willing to put in fstab: what blkid reports, nothing else.
pub fn valid_fs_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Look the volume up: follow its by-id link, find its device number, read udev's record and
/// check that it is a Hetzner volume with this serial.
pub fn probe(root: &Root, id: u64) -> Result<VolumeDevice, DeviceError> {
    let link = by_id_link(id);
    let link_path = root.join(&link);
    let target = match fs::read_link(&link_path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(DeviceError::NotAttached {
                id,
                path: link_path,
            });
        }
        Err(error) => {
            return Err(DeviceError::Read {
                id,
                path: link_path,
                error,
            });
        }
    };
    let kernel_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| DeviceError::Invalid {
            id,
            path: link_path.clone(),
            reason: format!(
                "points to {}, which is not a block device name",
                target.display()
            ),
        })?;
    let dev_path = root.join(format!("/sys/class/block/{kernel_name}/dev"));
    let dev = fs::read_to_string(&dev_path).map_err(|error| {
        if error.kind() == io::ErrorKind::NotFound {
            DeviceError::NotAttached {
                id,
                path: dev_path.clone(),
            }
        } else {
            DeviceError::Read {
                id,
                path: dev_path.clone(),
                error,
            }
        }
    })?;
    let dev = dev.trim();
    let valid = dev
        .split_once(':')
        .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
    if !valid {
        return Err(DeviceError::Invalid {
            id,
            path: dev_path,
            reason: format!("{dev:?} is not a major:minor device number"),
        });
    }
    let data_path = root.join(format!("/run/udev/data/b{dev}"));
    let text = fs::read_to_string(&data_path).map_err(|error| DeviceError::Read {
        id,
        path: data_path.clone(),
        error,
    })?;
    let props = parse_udev_data(&text);
    let get = |k: &str| props.get(k).map(String::as_str).unwrap_or("");
    if get("ID_VENDOR") != "HC" || get("ID_MODEL") != "Volume" {
        return Err(DeviceError::Invalid {
            id,
            path: data_path,
            reason: format!(
                "vendor {:?} model {:?} is not a Hetzner Cloud Volume (HC Volume)",
                get("ID_VENDOR"),
                get("ID_MODEL")
            ),
        });
    }
    if get("ID_SERIAL_SHORT") != id.to_string() {
        return Err(DeviceError::Invalid {
            id,
            path: data_path,
            reason: format!("serial {:?} is not the volume id", get("ID_SERIAL_SHORT")),
        });
    }
    let non_empty = |k: &str| props.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(VolumeDevice {
        id,
        link,
        kernel_name,
        fs_type: non_empty("ID_FS_TYPE"),
        fs_usage: non_empty("ID_FS_USAGE"),
        fs_uuid: non_empty("ID_FS_UUID"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_properties_are_the_e_lines() {
        let p = parse_udev_data(
            "S:disk/by-id/scsi-0HC_Volume_1\nE:ID_FS_TYPE=ext4\nE:ID_VENDOR=HC\nE:EMPTY=\nG:systemd\n",
        );
        assert_eq!(p.get("ID_FS_TYPE").map(String::as_str), Some("ext4"));
        assert_eq!(p.get("EMPTY").map(String::as_str), Some(""));
        assert!(!p.contains_key("disk/by-id/scsi-0HC_Volume_1"));
    }

    #[test]
    fn only_plain_filesystem_names_are_valid() {
        assert!(valid_fs_type("ext4"));
        assert!(valid_fs_type("xfs"));
        assert!(valid_fs_type("crypto_LUKS".to_lowercase().as_str()));
        assert!(!valid_fs_type("ext4 defaults 0 0\n/dev/sda"));
        assert!(!valid_fs_type(""));
        assert!(!valid_fs_type("a,b"));
    }
}
