use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hcloud_metadata::{DOCUMENT_PATH, Root, competitors};

/// Keep the SSH keys of the Hetzner Cloud project in a managed block of a user's
/// authorized_keys; lines outside the block are the user's and stay as they are.
///
/// Exit status: 0 done (refused key lines are warned about, the good ones written),
/// 1 could not write, 3 the document cannot be read, 4 the document belongs to another
/// server, 5 the target is refused as unsafe (symlink, foreign owner, broken block).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Resolve every path under this directory.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// The metadata document (resolved under --root).
    #[arg(long, default_value = DOCUMENT_PATH)]
    metadata: PathBuf,
    /// Whose keys: the user's uid, gid and home come from <root>/etc/passwd.
    #[arg(long, default_value = "root")]
    user: String,
    /// Manage this file instead of ~/.ssh/authorized_keys (resolved under --root).
    #[arg(long)]
    authorized_keys: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-ssh-keys");
    let root = Root::new(args.root);
    // Warn (only) when cloud-init does this job too; the hand-over is in docs/install.md.
    competitors::log_warnings(&root, competitors::Job::SshKeys);
    let cfg = hcloud_ssh_keys::Config {
        root,
        metadata: args.metadata,
        user: args.user,
        authorized_keys: args.authorized_keys,
    };
    match hcloud_ssh_keys::run(&cfg) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
