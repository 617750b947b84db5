//! The command line of `hcloud-fake-cloud`.

use std::path::PathBuf;

use clap::Parser;

use crate::machines::Ipv4Range;

/// Serve a fake of the Hetzner Cloud API, as Packer's hcloud builder uses it.
///
/// Serves /v1/ssh_keys, /v1/servers and their actions, /v1/actions, /v1/images,
/// /v1/server_types, /v1/locations, /v1/primary_ips and /v1/firewalls with Hetzner's
/// validation rules and error JSON (docs/fake-cloud.md). Servers are only state: nothing
/// boots. Point a client at it with HCLOUD_ENDPOINT=http://ADDRESS/v1 and
/// HCLOUD_TOKEN=TOKEN. Prints the endpoint it listens on.
#[derive(Parser, Debug)]
#[command(version, after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    /// Address to listen on, e.g. 127.0.0.1:0 or 127.0.0.1:8080.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// The API token clients must send (Authorization: Bearer TOKEN).
    #[arg(long, env = "HCLOUD_FAKE_TOKEN", default_value = "fake-hcloud-token")]
    pub token: String,
    /// A read-only token: GET requests only, others fail with token_readonly.
    #[arg(long)]
    pub readonly_token: Option<String>,
    /// How long an action runs, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub action_ms: u64,
    /// How long create_image runs, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub snapshot_ms: u64,
    /// Public IPv4 addresses for servers, FIRST-LAST.
    #[arg(long, default_value = "203.0.113.10-203.0.113.250")]
    pub ipv4_range: Ipv4Range,
    /// Also send the `datacenter` of servers (removed from the real API on 2026-07-01).
    #[arg(long)]
    pub datacenter_field: bool,
    /// Append every request (method, path, query, body, status) as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  1  the address cannot be bound or the record file cannot be opened (otherwise it serves
     until it is stopped)

Files:
  the --record file  one JSON object per request, appended

See also:
  hcloud-sim(1), hcloud-fake-metadata(1), packer(1)
";
