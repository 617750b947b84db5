//! What every hcloud agent shares: parsing what the Hetzner metadata service serves, the
//! normalized document (`/etc/hcloud-metadata.json`), atomic writes, `--root` resolution, the
//! DMI instance identity, logging, and (feature `fetch`) the retrying HTTP client used by the
//! two downloaders only.

pub mod atomic;
pub mod block;
pub mod competitors;
pub mod document;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod identity;
pub mod logging;
pub mod root;
pub mod service;
pub mod state;
pub mod yaml;

pub use atomic::{WriteOptions, WriteOutcome, write_atomic};
pub use document::{Document, LoadError, Network, load_document};
pub use identity::{Identity, IdentityError, Verdict, check_instance};
pub use root::Root;
pub use service::{
    ParseError, PrivateNetwork, PrivateNetworks, PublicNetwork, Summary, parse_private_networks,
    parse_summary,
};

/// Where the document lives on a server.
pub const DOCUMENT_PATH: &str = "/etc/hcloud-metadata.json";
/// Where the user data lives on a server.
pub const USERDATA_PATH: &str = "/etc/hcloud-userdata";
/// The metadata service's base URL.
pub const DEFAULT_METADATA_URL: &str = "http://169.254.169.254/hetzner/v1/";
