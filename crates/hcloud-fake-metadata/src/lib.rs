//! A faithful fake of the Hetzner Cloud metadata service (`/hetzner/v1/...`), driven by a
//! scenario file (`docs/scenario.md`), with fault injection and live scenario changes. Used by
//! the integration tests and, on 169.254.169.254:80, by the simulator.

pub mod cli;
pub mod render;
pub mod scenario;
pub mod server;

pub use scenario::{Fault, Options, PrivateNet, Scenario, Server, Volume};
pub use server::{FakeServer, RequestRecord, Source};
