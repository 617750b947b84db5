//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image manuals` renders the last two).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::image::Release;
use crate::vm::{Accel, Firmware};

/// A simulated Hetzner Cloud server on this machine (network namespace, DHCP, fake metadata
/// service, QEMU with Debian and the hcloud agents). Needs root.
#[derive(Parser)]
#[command(version, about, after_long_help = AFTER_LONG_HELP)]
pub struct Cli {
    /// Name of the simulated server (namespace hsim-<name>, state in /var/lib/hcloud-sim/<name>).
    #[arg(long, global = true, default_value = "try")]
    pub name: String,
    /// The workspace (for systemd/ and the static build); default: found from the current directory.
    #[arg(long, global = true)]
    pub workspace: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Build (or find in the cache) the Debian guest image.
    Image {
        /// Debian mirror for debootstrap.
        #[arg(long)]
        mirror: Option<String>,
        /// bookworm (systemd 252) or sid (current systemd with systemd-imds).
        #[arg(long, value_enum, default_value = "bookworm")]
        release: Release,
    },
    /// Build (or find in the cache) the simulated rescue system.
    RescueImage {
        /// Debian mirror for debootstrap.
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Build (or find in the cache) the local Debian mirror for the simulated builds: what a
    /// debootstrap of SUITE with the packages of a list needs, signed by the mirror's own key.
    /// Prints its directory (mirror-keyring.asc in it is the key).
    Mirror {
        /// The package list (one per line, # comments).
        #[arg(long, default_value = "packer/files/debian/packages.txt")]
        packages: PathBuf,
        #[arg(long, default_value = "trixie")]
        suite: String,
        /// Debian mirror to download from.
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Serve a simulated Hetzner Cloud until interrupted: the fake Cloud API in the namespace
    /// hsim-<name>, each server a QEMU VM (rescue system, snapshots), so `packer build` runs
    /// end to end. Run packer in the namespace with the printed HCLOUD_ENDPOINT.
    Cloud {
        /// tcg (default, works everywhere) or kvm.
        #[arg(long, value_enum, default_value = "tcg")]
        accel: Accel,
        /// Firmware of servers without the label hcloud-sim/firmware=uefi|bios.
        #[arg(long, value_enum, default_value = "bios")]
        firmware: Firmware,
        /// The API token clients must send.
        #[arg(long, default_value = "fake-hcloud-token")]
        token: String,
        /// Serve this directory at http://10.255.255.1:8000/ inside the cloud (a local mirror).
        #[arg(long)]
        serve: Option<PathBuf>,
        /// Debian mirror for debootstrap, when the rescue system is built.
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Boot a simulated server from a scenario file, print what it configured and how to log in.
    Up {
        /// Scenario file (docs/scenario.md); default: crates/hcloud-sim/scenarios/try.yaml.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// tcg (default, works everywhere) or kvm.
        #[arg(long, value_enum, default_value = "tcg")]
        accel: Accel,
        /// Boot Debian's cloud-init (Hetzner datasource) instead of the agents.
        #[arg(long)]
        cloud_init: bool,
        /// Boot the bare baseline instead: the keys baked in, DHCP, nothing provisioned at boot.
        #[arg(long, conflicts_with = "cloud_init")]
        bare: bool,
        /// The guest's Debian release: bookworm (systemd 252) or sid (current systemd with
        /// systemd-imds, as on Arch).
        #[arg(long, value_enum, default_value = "bookworm")]
        release: Release,
        /// Add this to the guest's kernel command line (repeatable), e.g.
        /// `--kernel-arg systemd.imds.network=locked`.
        #[arg(long = "kernel-arg", value_name = "ARG")]
        kernel_args: Vec<String>,
        /// Memory of the VM in MiB.
        #[arg(long, default_value_t = 1024)]
        memory: u32,
        /// Virtual CPUs of the VM.
        #[arg(long, default_value_t = 1)]
        cpus: u32,
        /// Seconds to wait for the first SSH login.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Debian mirror for debootstrap, when the guest image is built.
        #[arg(long)]
        mirror: Option<String>,
        /// Boot the disk left by the previous `up` of this name instead of a fresh one: the
        /// same disk as another server (a snapshot clone) when the scenario changed.
        #[arg(long)]
        reuse_disk: bool,
    },
    /// Log in to the simulated server as root (or run a command there).
    Ssh {
        /// The command to run instead of an interactive login.
        #[arg(trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Print hostname, addresses, routes, unit states and boot timings again.
    Report,
    /// Stop the simulated server and remove its network (keeps disk and logs unless --purge).
    Down {
        /// Remove the disk, key and logs too.
        #[arg(long)]
        purge: bool,
    },
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  0  done
  1  something failed (the message says what; up prints the boot diagnostics)

Files:
  /var/lib/hcloud-sim/<name>/  the server's disk, SSH key, serial console log and state
  /var/cache/hcloud-sim/  the Debian guest image built by debootstrap
  crates/hcloud-sim/scenarios/try.yaml  the default scenario (in the workspace)

See also:
  hcloud-fake-metadata(1), hcloud-image(1)
";
