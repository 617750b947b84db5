use std::process::ExitCode;

use clap::Parser;
use hcloud_dl_userdata::{Options, cli::Args, run};
use hcloud_metadata::Root;

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
