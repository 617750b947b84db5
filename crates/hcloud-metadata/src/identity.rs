//! The instance identity from DMI: on Hetzner `sys_vendor` is `Hetzner` and `product_serial` is
//! the server id. A snapshot carries files into every clone, so nothing is decided by "a file
//! exists": a document is acted on only when its `instance_id` is this server's serial.

use std::io;

use crate::root::Root;

pub const SYS_VENDOR: &str = "/sys/class/dmi/id/sys_vendor";
pub const PRODUCT_SERIAL: &str = "/sys/class/dmi/id/product_serial";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub vendor: Option<String>,
    pub serial: Option<String>,
}

fn read_trimmed(root: &Root, path: &str) -> io::Result<Option<String>> {
    match std::fs::read_to_string(root.join(path)) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// How a document's instance id relates to this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// DMI says Hetzner and the serial equals the document's instance id.
    Matches,
    /// Not a Hetzner machine (DMI vendor is something else or absent): nothing to compare with.
    NotHetzner { vendor: Option<String> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error(
        "the metadata belongs to instance {document} but this server's DMI serial is {serial}: \
         it comes from another server (a snapshot clone?) and is not acted on"
    )]
    Mismatch { document: u64, serial: String },
    #[error("DMI says this is a Hetzner server but its serial ({path}) cannot be read: {reason}")]
    NoSerial { path: String, reason: String },
}

impl Identity {
    /// Read `sys_vendor` and `product_serial` under the root. Unreadable files count as absent
    /// for the vendor; for the serial of a Hetzner machine the error is kept for [`Identity::check`].
    pub fn read(root: &Root) -> Result<Identity, IdentityError> {
        let vendor = read_trimmed(root, SYS_VENDOR).ok().flatten();
        let serial = match read_trimmed(root, PRODUCT_SERIAL) {
            Ok(s) => s,
            Err(e) if vendor.as_deref() == Some("Hetzner") => {
                return Err(IdentityError::NoSerial {
                    path: root.join(PRODUCT_SERIAL).display().to_string(),
                    reason: e.to_string(),
                });
            }
            Err(_) => None,
        };
        Ok(Identity { vendor, serial })
    }

    pub fn is_hetzner(&self) -> bool {
        self.vendor.as_deref() == Some("Hetzner")
    }

    /// Does a document with this instance id belong to this machine?
    pub fn check(&self, instance_id: u64) -> Result<Verdict, IdentityError> {
        if !self.is_hetzner() {
            return Ok(Verdict::NotHetzner {
                vendor: self.vendor.clone(),
            });
        }
        match &self.serial {
            Some(s) if s.eq_ignore_ascii_case(&instance_id.to_string()) => Ok(Verdict::Matches),
            Some(s) => Err(IdentityError::Mismatch {
                document: instance_id,
                serial: s.clone(),
            }),
            None => Err(IdentityError::NoSerial {
                path: PRODUCT_SERIAL.into(),
                reason: "it is empty or missing".into(),
            }),
        }
    }
}

/// Read the identity under `root` and check `instance_id` against it, logging the outcome.
pub fn check_instance(root: &Root, instance_id: u64) -> Result<Verdict, IdentityError> {
    let verdict = Identity::read(root)?.check(instance_id)?;
    match &verdict {
        Verdict::Matches => log::debug!("instance {instance_id} matches this server's DMI serial"),
        Verdict::NotHetzner { vendor } => log::info!(
            "DMI vendor is {}, not Hetzner: cannot verify that instance {instance_id} is this server",
            vendor.as_deref().unwrap_or("unknown")
        ),
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(vendor: Option<&str>, serial: Option<&str>) -> Identity {
        Identity {
            vendor: vendor.map(Into::into),
            serial: serial.map(Into::into),
        }
    }

    #[test]
    fn hetzner_serial_must_match() {
        assert_eq!(
            id(Some("Hetzner"), Some("42")).check(42),
            Ok(Verdict::Matches)
        );
        assert!(matches!(
            id(Some("Hetzner"), Some("43")).check(42),
            Err(IdentityError::Mismatch { .. })
        ));
        assert!(matches!(
            id(Some("Hetzner"), None).check(42),
            Err(IdentityError::NoSerial { .. })
        ));
        assert!(matches!(
            id(Some("QEMU"), Some("x")).check(42),
            Ok(Verdict::NotHetzner { .. })
        ));
    }

    #[test]
    fn reads_dmi_under_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.join("/sys/class/dmi/id")).unwrap();
        std::fs::write(root.join(SYS_VENDOR), "Hetzner\n").unwrap();
        std::fs::write(root.join(PRODUCT_SERIAL), "48151623\n").unwrap();
        let ident = Identity::read(&root).unwrap();
        assert!(ident.is_hetzner());
        assert_eq!(ident.serial.as_deref(), Some("48151623"));
        assert_eq!(check_instance(&root, 48151623), Ok(Verdict::Matches));
    }
}
