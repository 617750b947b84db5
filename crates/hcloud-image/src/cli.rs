//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image manuals` renders the last two).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::arch_release::{DEFAULT_API_URL, DEFAULT_MIRROR};
use crate::build::Flavor;
use crate::dist::Arch;

/// Build Hetzner Cloud images with the hcloud agents.
#[derive(Parser)]
#[command(version, about, after_long_help = AFTER_LONG_HELP)]
pub struct Cli {
    /// The workspace (any directory inside it).
    #[arg(long, global = true, default_value = ".")]
    pub workspace: PathBuf,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Build the static agents and lay out the staged install tree (usr/bin, units, rules,
    /// presets, networks, manifest with hashes).
    Dist {
        /// x86_64 or aarch64.
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
        /// Output directory (default: <target dir>/dist/<arch>). Replaced if it holds an older tree.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stage the binaries already built instead of running cargo.
        #[arg(long)]
        no_build: bool,
    },
    /// Print the latest Arch Linux release and its bootstrap file.
    ArchRelease {
        /// Offline: use this release (YYYY.MM.DD) instead of asking the release API.
        #[arg(long, env = "HCLOUD_IMAGE_ARCH_RELEASE")]
        release: Option<String>,
        /// The release API; with the default, its deprecated predecessor
        /// (/releng/releases/json/) is asked when it does not answer with a release.
        #[arg(long, default_value = DEFAULT_API_URL)]
        api_url: String,
        #[arg(long, default_value = DEFAULT_MIRROR)]
        mirror: String,
        /// Seconds for the whole request.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Print JSON instead of key=value lines.
        #[arg(long)]
        json: bool,
    },
    /// Check the prerequisites and the build server's type in its location (preflight), stage
    /// the agents and run packer init and packer build.
    Build {
        /// archlinux, nixos or debian.
        image: Flavor,
        /// x86_64 or aarch64 (NixOS and Debian; Arch Linux is x86_64 only).
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
        /// Arch Linux release to install (YYYY.MM.DD); default: the latest, from the release API.
        #[arg(long, env = "HCLOUD_IMAGE_ARCH_RELEASE")]
        arch_release: Option<String>,
        /// The Arch Linux release API to ask for the latest release (default: archlinux.org's
        /// /api/v1/releng/releases/, then its deprecated predecessor /releng/releases/json/).
        #[arg(long, env = "HCLOUD_IMAGE_ARCH_API")]
        arch_api_url: Option<String>,
        /// The packer program.
        #[arg(long, default_value = "packer")]
        packer: String,
        /// Do not check the build server's type and location with the Cloud API first.
        #[arg(long)]
        no_preflight: bool,
        /// More arguments for packer build (after --), e.g. -var location=hel1 or -debug.
        #[arg(last = true)]
        packer_args: Vec<String>,
    },
    /// Write the manual pages and shell completions of binaries under a prefix
    /// (share/man, share/bash-completion, share/zsh, share/fish), as dist stages them.
    Manuals {
        /// The prefix, e.g. ~/.local or a package's $out.
        #[arg(long)]
        out: PathBuf,
        /// The binaries (default: every binary of the workspace).
        binaries: Vec<String>,
    },
    /// List the snapshots recorded in packer-manifest.json.
    Images {
        #[arg(long, default_value = "packer-manifest.json")]
        manifest: PathBuf,
    },
    /// Check with the Cloud API that a server type exists, is offered and available in a
    /// location now, and is of the architecture (what a build needs before it creates a server).
    Preflight {
        /// The build server's type, e.g. cx23 or cax11.
        #[arg(long)]
        server_type: String,
        /// The build server's location, e.g. fsn1.
        #[arg(long, default_value = "fsn1")]
        location: String,
        /// x86_64 or aarch64.
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
    },
    /// Print the snapshots labelled build-id=ID, also after a build packer reported as failed
    /// (a snapshot can exist although its action failed).
    FindSnapshot {
        /// The build id (the templates' build-id label; packer prints it with the snapshot labels).
        #[arg(long)]
        build_id: String,
    },
    /// Delete the servers (and SSH keys) a failed or interrupted build left behind: those
    /// labelled packer-build-id=ID.
    Cleanup {
        /// The build id (the server label packer-build-id).
        #[arg(long)]
        build_id: String,
        /// Also delete SSH keys named packer-<uuid> that carry no label (packer's temporary keys,
        /// which it does not label): only when no other packer build runs in the project.
        #[arg(long)]
        packer_keys: bool,
        /// Print what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  0  done
  1  something failed (the message says what)

Files:
  <target dir>/dist/<arch>/  the staged install tree dist writes (its manifest:
     usr/share/hcloud-agents/manifest.json)
  packer/  the Packer templates build runs (in the workspace)
  packer-manifest.json  the snapshots packer recorded (read by images)

Environment:
  HCLOUD_TOKEN  the Hetzner Cloud API token build hands to packer and preflight,
     find-snapshot and cleanup use
  HCLOUD_ENDPOINT  the Cloud API (default https://api.hetzner.cloud/v1)

See also:
  hcloud-sim(1), packer(1)
";
