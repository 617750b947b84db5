//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image dist` renders the last two).

use std::path::PathBuf;

use clap::Parser;
use hcloud_metadata::{USERDATA_PATH, fetch::DownloadArgs};

/// Fetch the Hetzner Cloud user data and write it (default /etc/hcloud-userdata, mode 0600).
///
/// Asks the link-local metadata service for `userdata` and writes exactly the bytes served,
/// atomically: binary-safe, never decoded, never executed. HTTP 204, 404 or an empty 200 mean
/// "no user data" and give an empty file. A failed fetch never touches the previous file.
#[derive(Parser)]
#[command(version, after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    #[command(flatten)]
    pub download: DownloadArgs,
    /// Where to write the user data (resolved under --root).
    #[arg(long, default_value = USERDATA_PATH)]
    pub output: PathBuf,
    /// Make /etc/hcloud-userdata the link to the state directory (moving a regular file found
    /// there, and the instance it names, into it) and exit; the unit runs this with the
    /// privileges to write /etc before the download, which runs with /etc read-only.
    #[arg(long)]
    pub migrate: bool,
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  0  the user data was written (or was already up to date)
  1  the user data could not be fetched or written (the previous file is kept)

Files:
  /etc/hcloud-userdata  a link to the user data (--migrate makes it)
  /var/lib/hcloud-dl-userdata/hcloud-userdata  the user data (written, mode 0600, owned by
     root), and beside it hcloud-userdata.instance-id, the server it belongs to

Units:
  hcloud-dl-userdata.service  runs it at every boot, as soon as systemd-networkd runs

See also:
  hcloud-dl-metadata(8)
";
