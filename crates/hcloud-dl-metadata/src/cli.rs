//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image dist` renders the last two).

use std::path::PathBuf;

use clap::Parser;
use hcloud_metadata::{DOCUMENT_PATH, fetch::DownloadArgs};

/// Fetch the Hetzner Cloud metadata and write the document (default /etc/hcloud-metadata.json).
///
/// Asks the link-local metadata service for `metadata` and `metadata/private-networks`,
/// normalizes both into one JSON document and writes it atomically (mode 0644). A document for
/// another server (its instance id is not this server's DMI serial) is never written; when
/// nothing valid can be had within the retry budget, the previous document is kept byte for
/// byte.
#[derive(Parser)]
#[command(version, after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    #[command(flatten)]
    pub download: DownloadArgs,
    /// Where to write the document (resolved under --root).
    #[arg(long, default_value = DOCUMENT_PATH)]
    pub output: PathBuf,
    /// Retry until metadata/private-networks lists exactly the 86:00:00:* NICs present
    /// (after a network was attached or detached); at the end of the budget write what it lists.
    #[arg(long)]
    pub sync_private_nics: bool,
    /// Make /etc/hcloud-metadata.json the link to the state directory (moving a regular file
    /// found there into it) and exit; the unit runs this with the privileges to write /etc
    /// before the download, which runs with /etc read-only.
    #[arg(long, conflicts_with = "sync_private_nics")]
    pub migrate: bool,
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  0  the document was written, or was already up to date, or the service could not be
     reached and the previous document belongs to this server
  1  no document for this server could be had (the previous one, if any, is kept)

Files:
  /etc/hcloud-metadata.json  the document, read by hcloud-hostname, hcloud-ssh-keys and
     hcloud-network: a link to the file written (--migrate makes it)
  /var/lib/hcloud-dl-metadata/hcloud-metadata.json  the document (written, mode 0644)
  /sys/class/dmi/id/product_serial  the instance id of this server (read)

Units:
  hcloud-dl-metadata.service  runs it at every boot, as soon as systemd-networkd runs
  hcloud-network-refresh.service  runs it with --sync-private-nics after a private network
     was attached or detached

See also:
  hcloud-dl-userdata(8), hcloud-hostname(8), hcloud-ssh-keys(8), hcloud-network(8)
";
