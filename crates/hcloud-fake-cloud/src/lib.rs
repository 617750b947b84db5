//! A faithful fake of the Hetzner Cloud API: the subset that Packer's hcloud builder (the one
//! built into packer 1.6.6, and packer-plugin-hcloud 1.7/1.8) uses: SSH keys, servers and their
//! actions, actions that run on their own clock, images, server types with per-location
//! availability, locations, and the primary IP and firewall lookups. It refuses what Hetzner
//! refuses (token, hostnames, labels, server type, location, architecture) with Hetzner's error
//! JSON, and records every request. The machines behind the servers sit behind the
//! [`Machines`] trait; [`InMemoryMachines`] only keeps their state. `docs/fake-cloud.md`
//! describes what is served and what is not modelled.

pub mod actions;
pub mod api;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod error;
pub mod http;
pub mod machines;
mod md5;
pub mod rules;
pub mod service;
pub mod state;

pub use error::ApiError;
pub use machines::{
    Addresses, Boot, DiskSource, Hardware, InMemoryMachines, Ipv4Range, MachineSpec, MachineState,
    Machines, SnapshotInfo,
};
pub use service::{Config, FakeCloud, RequestRecord};
pub use state::Failure;
