//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image dist` renders the last two).

use std::path::PathBuf;

use clap::Parser;
use hcloud_metadata::DOCUMENT_PATH;

/// Keep the SSH keys of the Hetzner Cloud project in a managed block of a user's
/// authorized_keys; lines outside the block are the user's and stay as they are.
///
/// Each key of the metadata document is validated; refused lines are warned about and the good
/// ones written. The file is replaced atomically with the user's owner and mode, never through
/// a symbolic link.
#[derive(Debug, Parser)]
#[command(version, after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    /// Resolve every path under this directory.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The metadata document (resolved under --root).
    #[arg(long, default_value = DOCUMENT_PATH)]
    pub metadata: PathBuf,
    /// Whose keys: the user's uid, gid and home come from <root>/etc/passwd.
    #[arg(long, default_value = "root")]
    pub user: String,
    /// Manage this file instead of ~/.ssh/authorized_keys (resolved under --root).
    #[arg(long)]
    pub authorized_keys: Option<PathBuf>,
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  0  done (refused key lines are warned about, the good ones written)
  1  could not write
  3  the document cannot be read
  4  the document belongs to another server
  5  the target is refused as unsafe (symbolic link, foreign owner, broken block)

Files:
  /etc/hcloud-metadata.json  the document (read)
  /etc/passwd  the user's uid, gid and home directory (read)
  ~/.ssh/authorized_keys  the block between the lines # BEGIN hcloud-ssh-keys and
     # END hcloud-ssh-keys (written; the rest of the file is kept)

Units:
  hcloud-ssh-keys.service  runs it at every boot, after hcloud-dl-metadata.service and
     before sshd

See also:
  hcloud-dl-metadata(8), sshd(8)
";
