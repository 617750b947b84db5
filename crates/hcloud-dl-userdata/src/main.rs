use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hcloud_dl_userdata::{Options, run};
use hcloud_metadata::{Root, USERDATA_PATH, fetch::DownloadArgs};

/// Fetch the Hetzner Cloud user data and write it (default /etc/hcloud-userdata, mode 0600).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    download: DownloadArgs,
    /// Where to write the user data (resolved under --root).
    #[arg(long, default_value = USERDATA_PATH)]
    output: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-dl-userdata");
    let output = Root::new(&args.download.root).join(&args.output);
    match run(&Options {
        download: args.download,
        output,
    }) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
