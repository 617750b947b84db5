use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hcloud_dl_metadata::{Options, run};
use hcloud_metadata::{DOCUMENT_PATH, Root, fetch::DownloadArgs};

/// Fetch the Hetzner Cloud metadata and write the document (default /etc/hcloud-metadata.json).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    download: DownloadArgs,
    /// Where to write the document (resolved under --root).
    #[arg(long, default_value = DOCUMENT_PATH)]
    output: PathBuf,
    /// Retry until metadata/private-networks lists exactly the 86:00:00:* NICs present
    /// (after a network was attached or detached); at the end of the budget write what it lists.
    #[arg(long)]
    sync_private_nics: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-dl-metadata");
    let output = Root::new(&args.download.root).join(&args.output);
    let opts = Options {
        download: args.download,
        output,
        sync_private_nics: args.sync_private_nics,
    };
    match run(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
