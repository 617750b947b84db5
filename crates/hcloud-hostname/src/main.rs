use std::process::ExitCode;

use clap::Parser;
use hcloud_hostname::cli::Args;
use hcloud_metadata::{Root, competitors};

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-hostname");
    let root = Root::new(args.root);
    // Warn (only) when cloud-init does this job too; the hand-over is in docs/install.md.
    competitors::log_warnings(&root, competitors::Job::Hostname);
    let cfg = hcloud_hostname::Config {
        root,
        metadata: args.metadata,
        dbus_address: args.dbus_address,
        etc_hosts: !args.no_etc_hosts,
    };
    match hcloud_hostname::run(&cfg) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
