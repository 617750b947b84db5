//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image dist` renders the last two).

use std::path::PathBuf;

use clap::Parser;
use hcloud_metadata::DOCUMENT_PATH;

/// Set this server's hostname from the Hetzner Cloud metadata document.
///
/// On the running system the static and transient hostname are set through
/// systemd-hostnamed (D-Bus); without hostnamed, /etc/hostname is written and
/// sethostname(2) called. With --root other than / only <root>/etc/hostname is written.
/// Then the name goes into a managed block of /etc/hosts (127.0.1.1 and ::1), unless
/// --no-etc-hosts.
#[derive(Debug, Parser)]
#[command(version, after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    /// Resolve every path under this directory; anything but / only writes files.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The metadata document (resolved under --root).
    #[arg(long, default_value = DOCUMENT_PATH)]
    pub metadata: PathBuf,
    /// D-Bus address where systemd-hostnamed is reached instead of the system bus.
    #[arg(long, env = "HCLOUD_HOSTNAME_DBUS_ADDRESS", hide = true)]
    pub dbus_address: Option<String>,
    /// Leave /etc/hosts alone (by default the server name is kept on 127.0.1.1 and ::1 in a
    /// managed block there, so `hostname -f` and sudo need no DNS).
    #[arg(long)]
    pub no_etc_hosts: bool,
    /// Write nothing in /etc: set the name (through hostnamed, which writes /etc/hostname
    /// itself, or with sethostname(2)) and leave it in /run/hcloud-hostname/applied for
    /// --etc-only. The unit runs it so, in a sandbox where /etc is read-only.
    #[arg(long, conflicts_with = "etc_only")]
    pub no_etc: bool,
    /// Only write /etc from what the --no-etc run left: /etc/hostname where hostnamed was not
    /// there to do it, and the managed block of /etc/hosts (unless --no-etc-hosts). Reads no
    /// document. The unit runs it after --no-etc, with the privileges to write /etc.
    #[arg(long)]
    pub etc_only: bool,
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  0  the hostname is set (or already was)
  1  the hostname could not be applied
  3  the document cannot be read
  4  the document belongs to another server
  5  the hostname in the document is refused

Files:
  /etc/hcloud-metadata.json  the document (read)
  /etc/hostname  the static hostname (written through systemd-hostnamed, or directly
     without it)
  /etc/hosts  the managed block with the server name (unless --no-etc-hosts)

  /run/hcloud-hostname/applied  the name --no-etc applied, for --etc-only

Units:
  hcloud-hostname.service  runs it at every boot, after hcloud-dl-metadata.service: first
     --no-etc in its sandbox, then --etc-only

See also:
  hcloud-dl-metadata(8), hostnamectl(1), systemd-hostnamed(8)
";
