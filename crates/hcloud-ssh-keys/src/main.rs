use std::process::ExitCode;

use clap::Parser;
use hcloud_metadata::{Root, competitors};
use hcloud_ssh_keys::cli::Args;

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
