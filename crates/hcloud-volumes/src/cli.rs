//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image dist` renders the last two).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hcloud_metadata::DEFAULT_METADATA_URL;

/// Mount Hetzner Cloud Volumes attached with automount at /mnt/HC_Volume_<id>.
///
/// For a volume with a filesystem, asks the metadata service's internal endpoint whether
/// automount was requested; if so records the volume in /etc/fstab (one line, nofail,discard,
/// written atomically, never twice) and has systemd mount it. Unformatted volumes and volumes
/// the user mounts elsewhere are left alone; nothing is ever unmounted.
#[derive(Parser)]
#[command(version, after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    /// Resolve every path under this directory; with a root other than / only files are written.
    #[arg(long, global = true, default_value = "/")]
    pub root: PathBuf,
    /// Base URL of the metadata service; the internal endpoint is on the same host.
    #[arg(long, global = true, env = "HCLOUD_METADATA_URL", default_value = DEFAULT_METADATA_URL)]
    pub metadata_url: String,
    /// Whole retry budget in seconds for asking the metadata service.
    #[arg(long, global = true, default_value_t = 20)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Handle the attached volume with this id: ask, record in /etc/fstab, mount.
    Attach {
        /// The volume id (its SCSI serial).
        id: u64,
        /// Take the answer `ask` left in /run/hcloud-volumes/<id>.automount instead of asking
        /// (the unit's second step, with the privileges to write /etc/fstab and mount).
        #[arg(long)]
        answered: bool,
    },
    /// Only ask the metadata service whether the volume is to be mounted, when it needs the
    /// question, and leave the answer for `attach --answered` (the unit's first step, in a
    /// sandbox where /etc is read-only).
    Ask {
        /// The volume id (its SCSI serial).
        id: u64,
    },
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  0  the volume is mounted, or left alone on purpose (no automount, no filesystem,
     mounted elsewhere by the user)
  1  the volume could not be handled

Files:
  /etc/fstab  one line per automounted volume (written atomically; other lines are kept)
  /mnt/HC_Volume_<id>  the mount point (mounted by systemd from the fstab line)
  /run/hcloud-volumes/fstab.lock  serializes volumes attached at the same time
  /run/hcloud-volumes/<id>.automount  the answer of ask, for attach --answered
  /usr/lib/udev/rules.d/81-hcloud-volumes.rules  starts the unit for a volume with a
     filesystem

Units:
  hcloud-volumes@<id>.service  started by the udev rule: runs hcloud-volumes ask <id> in its
     sandbox, then hcloud-volumes attach --answered <id>

See also:
  fstab(5), systemd.mount(5)
";
