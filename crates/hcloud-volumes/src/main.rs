use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hcloud_metadata::{DEFAULT_METADATA_URL, Root, competitors};
use hcloud_volumes::{Options, attach, automount_requested, describe};

/// Mount Hetzner Cloud Volumes attached with automount at /mnt/HC_Volume_<id>.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Resolve every path under this directory; with a root other than / only files are written.
    #[arg(long, global = true, default_value = "/")]
    root: PathBuf,
    /// Base URL of the metadata service; the internal endpoint is on the same host.
    #[arg(long, global = true, env = "HCLOUD_METADATA_URL", default_value = DEFAULT_METADATA_URL)]
    metadata_url: String,
    /// Whole retry budget in seconds for asking the metadata service.
    #[arg(long, global = true, default_value_t = 20)]
    timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Handle the attached volume with this id (run by hcloud-volumes@<id>.service).
    Attach {
        /// The volume id (its SCSI serial).
        id: u64,
    },
}

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
