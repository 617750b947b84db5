use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hcloud_metadata::{Root, competitors};
use hcloud_volumes::cli::{Args, Cmd};
use hcloud_volumes::{Asked, Options, answered, ask, attach, automount_requested, describe};

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-volumes");
    let opts = Options {
        root: Root::new(&args.root),
        metadata_url: args.metadata_url,
        budget: Duration::from_secs(args.timeout.max(1)),
    };
    match args.command {
        Cmd::Ask { id } => match ask(&opts, id, automount_requested) {
            Ok(Asked::Answered(yes)) => {
                log::info!(
                    "Volume {id}: automount {}",
                    if yes { "requested" } else { "not requested" }
                );
                ExitCode::SUCCESS
            }
            Ok(Asked::NoQuestion(_)) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("{e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Attach {
            id,
            answered: from_ask,
        } => {
            // hc-utils' own rule would add a second fstab line for the same volume.
            competitors::log_warnings(&opts.root, competitors::Job::Volumes);
            let result = if from_ask {
                attach(&opts, id, answered(&opts.root))
            } else {
                attach(&opts, id, automount_requested)
            };
            match result {
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
