//! `hcloud-sim`: a simulated Hetzner Cloud on one machine. Each simulated server gets a network
//! namespace with Hetzner's network (DHCP /32 lease with 172.31.1.1 on-link, `fe80::1`, private
//! networks with MTU 1450), the fake metadata service on 169.254.169.254, and a QEMU VM booting
//! a real Debian with systemd, networkd and sshd, with the agents installed as a package would.
//! See `docs/simulator.md`.

pub mod cli;
pub mod cloud;
pub mod image;
pub mod net;
pub mod report;
pub mod rescue;
pub mod scenario;
pub mod sim;
pub mod vm;
pub mod volumes;
