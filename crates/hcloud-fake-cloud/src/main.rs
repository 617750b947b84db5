//! `hcloud-fake-cloud`: parse the command line, start the fake with in-memory machines, serve.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hcloud_fake_cloud::{Config, FakeCloud, cli::Args};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config {
        token: args.token,
        readonly_token: args.readonly_token,
        action_time: Duration::from_millis(args.action_ms),
        snapshot_time: Duration::from_millis(args.snapshot_ms),
        datacenter_field: args.datacenter_field,
        record_file: args.record,
        ..Config::default()
    };
    let (fake, _machines) = FakeCloud::start_in_memory(&args.listen, config, args.ipv4_range)
        .with_context(|| format!("serving on {}", args.listen))?;
    println!("listening on {}", fake.endpoint());
    loop {
        std::thread::park();
    }
}
