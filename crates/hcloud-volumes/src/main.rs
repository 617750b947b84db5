use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hcloud_metadata::{Root, competitors};
use hcloud_volumes::cli::{Args, Cmd};
use hcloud_volumes::{Options, attach, automount_requested, describe};

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-volumes");
    let opts = Options {
        root: Root::new(&args.root),
        metadata_url: args.metadata_url,
        budget: Duration::from_secs(args.timeout.max(1)),
    };
    match args.command {
        Cmd::Attach { id } => {
            // hc-utils' own rule would add a second fstab line for the same volume.
            competitors::log_warnings(&opts.root, competitors::Job::Volumes);
            match attach(&opts, id, automount_requested) {
                Ok(outcome) => {
                    log::info!("{}", describe(id, &outcome));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
