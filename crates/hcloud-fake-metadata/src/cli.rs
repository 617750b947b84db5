//! The command line: `--help`, the manual page and the shell completions all come from this
//! definition (`hcloud-image manuals` renders the last two).

use std::path::PathBuf;

use clap::Parser;

/// Serve a scenario as the Hetzner Cloud metadata service would.
///
/// Answers /hetzner/v1/metadata, its sub-paths, userdata and the internal volume endpoint from
/// a scenario file (docs/scenario.md), with the faults the scenario injects. The file is
/// reloaded when it changes. Prints the address it listens on.
#[derive(Parser)]
#[command(version, after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    /// Scenario file (reloaded when it changes).
    #[arg(long)]
    pub scenario: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:0 or 169.254.169.254:80.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

const AFTER_LONG_HELP: &str = "\
Exit status:
  1  the scenario cannot be read or the address cannot be bound (otherwise it serves until
     it is stopped)

Files:
  the --scenario file  the server, its networks, volumes, user data and faults (read)

See also:
  hcloud-sim(1), hcloud-dl-metadata(8)
";
