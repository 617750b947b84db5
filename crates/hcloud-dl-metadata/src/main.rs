use std::process::ExitCode;

use clap::Parser;
use hcloud_dl_metadata::{Options, cli::Args, run};
use hcloud_metadata::{Root, state};

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-dl-metadata");
    let root = Root::new(&args.download.root);
    if args.migrate {
        return state::migrate_command(&root, &state::METADATA);
    }
    let output = state::write_target(&root, &root.join(&args.output));
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
