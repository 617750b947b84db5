//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image dist` renders the last two).

use std::path::PathBuf;

use clap::Parser;

use crate::DEFAULT_OUTPUT_DIR;

/// Configure the public and private networks of this Hetzner Cloud server for systemd-networkd
/// from the metadata document.
///
/// Writes one networkd file per interface: the public one with DHCPv4 (/32 lease, gateway
/// 172.31.1.1 on-link) and the static IPv6 address with gateway fe80::1, each private network
/// (86:00:00:* NICs) with its address, alias IPs, routes and MTU 1450. Files of interfaces
/// that are gone are removed, and networkd reloads when anything changed.
#[derive(Parser, Debug)]
#[command(version, after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    /// Resolve every path under this directory; with a root other than / only files are written.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The metadata document.
    #[arg(long, default_value = hcloud_metadata::DOCUMENT_PATH)]
    pub metadata: PathBuf,
    /// Where the generated 10-hcloud-*.network files go.
    #[arg(long, default_value = DEFAULT_OUTPUT_DIR)]
    pub output_dir: PathBuf,
    /// Use DHCP on private networks instead of the static addresses and routes from the
    /// metadata (alias IPs stay static). Both units read it from /etc/default/hcloud-network.
    #[arg(long, env = "HCLOUD_NETWORK_PRIVATE_DHCP")]
    pub private_dhcp: bool,
    /// For the udev rule: record a hotplug event (TAG names it) for hcloud-network-refresh.path
    /// and exit.
    #[arg(long, value_name = "TAG", conflicts_with_all = ["clear_refresh_queue", "refresh"])]
    pub queue_refresh: Option<String>,
    /// Take the pending hotplug events and exit.
    #[arg(long, conflicts_with = "refresh")]
    pub clear_refresh_queue: bool,
    /// For hcloud-network-refresh.service: take the pending hotplug events, run
    /// `hcloud-dl-metadata --sync-private-nics` until the metadata lists the NICs present, then
    /// configure the networks.
    #[arg(long)]
    pub refresh: bool,
    /// The downloader --refresh runs (default: hcloud-dl-metadata beside this program).
    #[arg(long, value_name = "PATH", requires = "refresh")]
    pub downloader: Option<PathBuf>,
    /// How long --refresh lets the downloader wait for the metadata to list the NICs present.
    #[arg(long, value_name = "SECS", default_value_t = 300, requires = "refresh")]
    pub sync_timeout: u64,
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  0  every interface configured
  1  an entry or value of the document was skipped (the good ones were still written)
  2  nothing could be done or something failed

Files:
  /etc/hcloud-metadata.json  the document (read)
  /run/systemd/network/10-hcloud-*.network  the networkd configuration (written and
     removed; only files of this name)
  /etc/default/hcloud-network  HCLOUD_NETWORK_PRIVATE_DHCP=1 for --private-dhcp (read by
     both units)
  /run/hcloud-network/hotplug/  the pending hotplug events (--queue-refresh,
     --clear-refresh-queue, --refresh)
  /usr/lib/udev/rules.d/81-hcloud-network.rules  queues an event when an 86:00:00:* NIC
     is added or removed

Units:
  hcloud-network.service  runs it at every boot, after hcloud-dl-metadata.service
  hcloud-network-refresh.path  watches the hotplug queue
  hcloud-network-refresh.service  runs it with --refresh (Type=exec: a refresh that waits
     for the metadata never holds the boot)

See also:
  hcloud-dl-metadata(8), systemd-networkd(8), systemd.network(5)
";
