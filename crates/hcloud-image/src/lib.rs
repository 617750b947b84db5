//! The thin image-build crate: what the Packer templates upload (`dist`), which Arch Linux
//! release they install (`arch_release`), the wrapper that runs them (`build`) the list of
//! snapshots they produced (`images`), and the Cloud API calls around a build (`cloud`).

pub mod arch_release;
pub mod build;
pub mod cli;
pub mod cloud;
pub mod dist;
pub mod elf;
pub mod images;
pub mod manual;
