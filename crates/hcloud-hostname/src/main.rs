use std::process::ExitCode;

use clap::Parser;
use hcloud_hostname::cli::Args;
use hcloud_metadata::{Root, competitors};

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-hostname");
    let root = Root::new(args.root);
    if args.etc_only {
        return match hcloud_hostname::write_etc(&root, !args.no_etc_hosts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("{e}");
                ExitCode::from(e.exit_code() as u8)
            }
        };
    }
    // Warn (only) when cloud-init does this job too; the hand-over is in docs/install.md.
    competitors::log_warnings(&root, competitors::Job::Hostname);
    let cfg = hcloud_hostname::Config {
        root,
        metadata: args.metadata,
        dbus_address: args.dbus_address,
        etc_hosts: !args.no_etc_hosts,
        hand_over: args.no_etc,
    };
    match hcloud_hostname::run(&cfg) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
