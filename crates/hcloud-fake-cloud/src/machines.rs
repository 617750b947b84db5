//! The machines behind the servers. The API layer decides what Hetzner would answer; every
//! change to a server's machine (provision, boot, rescue boot, power, resize, snapshot, delete)
//! goes through [`Machines`], so a simulator can put real VMs behind the same API. Each call
//! except [`Machines::allocate`] and [`Machines::is_running`] runs in an action's own thread,
//! without any lock of the API held, and the action completes when the call has returned (and
//! not before the action's configured duration). An `Err` ends the action in `error`.
//!
//! [`InMemoryMachines`] only tracks power state and hands out addresses from a range.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use crate::rules::Labels;

/// The size and architecture of a server type, as a machine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hardware {
    pub server_type: String,
    pub cores: u32,
    pub memory_gb: f64,
    pub disk_gb: u64,
    /// `x86` or `arm`.
    pub architecture: String,
}

/// What the server's disk starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskSource {
    /// A system image by name (`debian-13`).
    System { name: String, image_id: u64 },
    /// A snapshot this fake took earlier ([`Machines::snapshot`] with this id).
    Snapshot { image_id: u64 },
}

/// A server as its machine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSpec {
    pub id: u64,
    pub name: String,
    pub hardware: Hardware,
    pub image: DiskSource,
    pub location: String,
    pub user_data: Option<String>,
    /// The OpenSSH public keys given at creation (root's keys via the metadata service).
    pub ssh_keys: Vec<String>,
    pub labels: Labels,
    pub enable_ipv4: bool,
    pub enable_ipv6: bool,
}

/// The public addresses of a server, fixed when it is created.
#[derive(Debug, Clone, PartialEq)]
pub struct Addresses {
    pub ipv4: Option<Ipv4Addr>,
    /// The /64, as its network address (`2001:db8:0:1::`).
    pub ipv6_net: Option<Ipv6Addr>,
}

/// What a boot starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Boot {
    /// The server's own disk.
    Disk,
    /// The rescue system (enable_rescue before this boot); root's keys are these.
    Rescue { ssh_keys: Vec<String> },
}

/// What a finished snapshot reports.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    /// Compressed size in GB (`image_size`).
    pub image_size_gb: f64,
}

/// The machines behind the servers. Implementations must be cheap in `allocate` and
/// `is_running`, which run while an API request is answered.
pub trait Machines: Send + Sync {
    /// Reserve the addresses of a new server (while `POST /servers` is answered).
    fn allocate(&self, spec: &MachineSpec) -> Result<Addresses>;
    /// Provision the disk from `spec.image` (the `create_server` action).
    fn create(&self, spec: &MachineSpec) -> Result<()>;
    /// Power on (`start_server`, `poweron`).
    fn power_on(&self, id: u64, boot: &Boot) -> Result<()>;
    /// Hard reset; a powered-off machine starts (`reset`).
    fn reset(&self, id: u64, boot: &Boot) -> Result<()>;
    /// Send an ACPI power-down and return; the machine may still be running afterwards.
    fn shutdown(&self, id: u64) -> Result<()>;
    /// Cut the power (`poweroff`).
    fn power_off(&self, id: u64) -> Result<()>;
    /// Whether the machine is running now; a server's `status` is `running` or `off` by this.
    fn is_running(&self, id: u64) -> bool;
    /// Take the new hardware; the disk grows only with `upgrade_disk` (machine is off).
    fn change_type(&self, id: u64, hardware: &Hardware, upgrade_disk: bool) -> Result<()>;
    /// Copy the disk into snapshot `image_id`; pause a running machine while copying.
    fn snapshot(&self, id: u64, image_id: u64) -> Result<SnapshotInfo>;
    /// Stop the machine, remove its disk and release its addresses.
    fn delete(&self, id: u64) -> Result<()>;
    /// Remove snapshot `image_id` (`DELETE /images/{id}`).
    fn delete_image(&self, image_id: u64) -> Result<()>;
}

/// A range of IPv4 addresses, both ends included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ipv4Range {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl std::str::FromStr for Ipv4Range {
    type Err = anyhow::Error;

    /// `203.0.113.10-203.0.113.250`.
    fn from_str(s: &str) -> Result<Ipv4Range> {
        let (a, b) = s
            .split_once('-')
            .with_context(|| format!("{s:?}: expected FIRST-LAST"))?;
        let first: Ipv4Addr = a.trim().parse().with_context(|| format!("{a:?}"))?;
        let last: Ipv4Addr = b.trim().parse().with_context(|| format!("{b:?}"))?;
        if u32::from(first) > u32::from(last) {
            bail!("{s:?}: the first address is after the last");
        }
        Ok(Ipv4Range { first, last })
    }
}

impl Ipv4Range {
    /// The first address of the range not in `used` (addresses as `u32`).
    pub fn first_free(&self, used: &BTreeSet<u32>) -> Result<Ipv4Addr> {
        let (lo, hi) = (u32::from(self.first), u32::from(self.last));
        (lo..=hi)
            .find(|a| !used.contains(a))
            .map(Ipv4Addr::from)
            .context("no IPv4 address left in the range")
    }
}

impl Default for Ipv4Range {
    fn default() -> Ipv4Range {
        Ipv4Range {
            first: Ipv4Addr::new(203, 0, 113, 10),
            last: Ipv4Addr::new(203, 0, 113, 250),
        }
    }
}

/// The state an in-memory machine has.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineState {
    pub spec: MachineSpec,
    pub running: bool,
    pub last_boot: Option<Boot>,
    pub boots: u32,
}

#[derive(Default)]
struct Inner {
    used_v4: BTreeSet<u32>,
    next_v6: u16,
    addresses: BTreeMap<u64, Addresses>,
    machines: BTreeMap<u64, MachineState>,
    snapshots: BTreeSet<u64>,
}

/// Machines that are only state: no disks, no processes.
pub struct InMemoryMachines {
    range: Ipv4Range,
    inner: Mutex<Inner>,
}

impl InMemoryMachines {
    pub fn new(range: Ipv4Range) -> InMemoryMachines {
        InMemoryMachines {
            range,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A machine's state, for tests.
    pub fn machine(&self, id: u64) -> Option<MachineState> {
        self.inner().machines.get(&id).cloned()
    }

    /// The snapshots that exist.
    pub fn snapshots(&self) -> Vec<u64> {
        self.inner().snapshots.iter().copied().collect()
    }

    fn with<T>(&self, id: u64, f: impl FnOnce(&mut MachineState) -> T) -> Result<T> {
        let mut inner = self.inner();
        let m = inner
            .machines
            .get_mut(&id)
            .with_context(|| format!("machine {id} does not exist"))?;
        Ok(f(m))
    }

    fn boot(&self, id: u64, boot: &Boot) -> Result<()> {
        self.with(id, |m| {
            m.running = true;
            m.boots += 1;
            m.last_boot = Some(boot.clone());
        })
    }
}

impl Machines for InMemoryMachines {
    fn allocate(&self, spec: &MachineSpec) -> Result<Addresses> {
        let mut inner = self.inner();
        let ipv4 = if spec.enable_ipv4 {
            let free = self.range.first_free(&inner.used_v4)?;
            inner.used_v4.insert(u32::from(free));
            Some(free)
        } else {
            None
        };
        let ipv6_net = if spec.enable_ipv6 {
            inner.next_v6 = inner.next_v6.wrapping_add(1);
            Some(Ipv6Addr::new(0x2001, 0xdb8, 0, inner.next_v6, 0, 0, 0, 0))
        } else {
            None
        };
        let a = Addresses { ipv4, ipv6_net };
        inner.addresses.insert(spec.id, a.clone());
        Ok(a)
    }

    fn create(&self, spec: &MachineSpec) -> Result<()> {
        let mut inner = self.inner();
        if let DiskSource::Snapshot { image_id } = spec.image {
            if !inner.snapshots.contains(&image_id) {
                bail!("snapshot {image_id} does not exist");
            }
        }
        inner.machines.insert(
            spec.id,
            MachineState {
                spec: spec.clone(),
                running: false,
                last_boot: None,
                boots: 0,
            },
        );
        Ok(())
    }

    fn power_on(&self, id: u64, boot: &Boot) -> Result<()> {
        self.boot(id, boot)
    }

    fn reset(&self, id: u64, boot: &Boot) -> Result<()> {
        self.boot(id, boot)
    }

    fn shutdown(&self, id: u64) -> Result<()> {
        self.with(id, |m| m.running = false)
    }

    fn power_off(&self, id: u64) -> Result<()> {
        self.with(id, |m| m.running = false)
    }

    fn is_running(&self, id: u64) -> bool {
        self.inner().machines.get(&id).is_some_and(|m| m.running)
    }

    fn change_type(&self, id: u64, hardware: &Hardware, upgrade_disk: bool) -> Result<()> {
        self.with(id, |m| {
            let disk = if upgrade_disk {
                hardware.disk_gb
            } else {
                m.spec.hardware.disk_gb
            };
            m.spec.hardware = Hardware {
                disk_gb: disk,
                ..hardware.clone()
            };
        })
    }

    fn snapshot(&self, id: u64, image_id: u64) -> Result<SnapshotInfo> {
        let disk = self.with(id, |m| m.spec.hardware.disk_gb)?;
        self.inner().snapshots.insert(image_id);
        // A fresh install compresses to a small fraction of the disk.
        Ok(SnapshotInfo {
            image_size_gb: (disk as f64 * 0.03 * 100.0).round() / 100.0,
        })
    }

    fn delete(&self, id: u64) -> Result<()> {
        let mut inner = self.inner();
        inner.machines.remove(&id);
        if let Some(v4) = inner.addresses.remove(&id).and_then(|a| a.ipv4) {
            inner.used_v4.remove(&u32::from(v4));
        }
        Ok(())
    }

    fn delete_image(&self, image_id: u64) -> Result<()> {
        self.inner().snapshots.remove(&image_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u64) -> MachineSpec {
        MachineSpec {
            id,
            name: format!("s{id}"),
            hardware: Hardware {
                server_type: "cx23".into(),
                cores: 2,
                memory_gb: 4.0,
                disk_gb: 40,
                architecture: "x86".into(),
            },
            image: DiskSource::System {
                name: "debian-13".into(),
                image_id: 1,
            },
            location: "fsn1".into(),
            user_data: None,
            ssh_keys: vec![],
            labels: Labels::new(),
            enable_ipv4: true,
            enable_ipv6: true,
        }
    }

    #[test]
    fn addresses_come_from_the_range_and_are_reused_after_delete() {
        let m = InMemoryMachines::new("10.0.0.1-10.0.0.2".parse().unwrap());
        let a = m.allocate(&spec(1)).unwrap();
        let b = m.allocate(&spec(2)).unwrap();
        assert_eq!(a.ipv4, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(b.ipv4, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_ne!(a.ipv6_net, b.ipv6_net);
        assert!(m.allocate(&spec(3)).is_err());
        m.create(&spec(1)).unwrap();
        m.delete(1).unwrap();
        assert_eq!(
            m.allocate(&spec(3)).unwrap().ipv4,
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
    }

    #[test]
    fn ranges_parse() {
        assert!("10.0.0.5-10.0.0.1".parse::<Ipv4Range>().is_err());
        assert!("10.0.0.5".parse::<Ipv4Range>().is_err());
    }
}
