//! The thin image-build crate: what the Packer templates upload (`dist`), which Arch Linux
//! release they install (`arch_release`), the wrapper that runs them (`build`) and the list of
//! snapshots they produced (`images`).

pub mod arch_release;
pub mod build;
pub mod cli;
pub mod dist;
pub mod elf;
pub mod images;
pub mod manual;
