//! The document written to `/etc/hcloud-metadata.json`: the public interface every consumer
//! reads. Schema and example: `docs/metadata-document.md`.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::service::{PrivateNetwork, Summary};

/// The IPv4 gateway Hetzner uses for every public network (reached on-link).
pub const HETZNER_IPV4_GATEWAY: &str = "172.31.1.1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub instance_id: u64,
    pub hostname: Option<String>,
    pub region: Option<String>,
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    pub network: Network,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub mac_address: Option<String>,
    pub ipv4_address: Option<String>,
    pub ipv4_subnet: Option<String>,
    pub ipv4_gateway: Option<String>,
    pub ipv6_address: Option<String>,
    pub ipv6_subnet: Option<String>,
    pub ipv6_gateway: Option<String>,
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub private: Vec<PrivateNetwork>,
}

impl Document {
    /// Normalize what the service served into the document.
    pub fn from_service(summary: &Summary, private: &[PrivateNetwork]) -> Document {
        // An absent `network-config` or `public-keys` counts as empty here; the downloader
        // decides before this whether such an answer is used (it is a broken answer).
        let none = Default::default();
        let public = summary.public_network.as_ref().unwrap_or(&none);
        let ipv4 = summary.public_ipv4;
        let ipv6 = public.ipv6;

        // Every resolver named anywhere, deduplicated, IPv4 first, served order kept within a family.
        let mut nameservers: Vec<IpAddr> = Vec::new();
        for ip in &public.nameservers {
            if !nameservers.contains(ip) {
                nameservers.push(*ip);
            }
        }
        nameservers.sort_by_key(|ip| ip.is_ipv6()); // stable: keeps order within a family

        let mut private = private.to_vec();
        private.sort_by_key(|p| p.interface_num.unwrap_or(u64::MAX)); // stable

        Document {
            instance_id: summary.instance_id,
            hostname: summary.hostname.clone(),
            region: summary.region.clone(),
            availability_zone: summary.availability_zone.clone(),
            ssh_keys: summary
                .public_keys
                .iter()
                .flatten()
                .map(|k| k.trim().to_string())
                .collect(),
            network: Network {
                mac_address: public.mac_address.clone(),
                ipv4_address: ipv4.map(|a| a.to_string()),
                ipv4_subnet: ipv4.map(|a| format!("{a}/32")),
                ipv4_gateway: ipv4.map(|_| HETZNER_IPV4_GATEWAY.to_string()),
                ipv6_address: ipv6.map(|(a, _)| a.to_string()),
                ipv6_subnet: ipv6.map(|(a, p)| format!("{a}/{p}")),
                ipv6_gateway: ipv6.and(public.ipv6_gateway).map(|g| g.to_string()),
                nameservers: nameservers.iter().map(|n| n.to_string()).collect(),
                private,
            },
        }
    }

    /// The exact bytes written to disk: pretty JSON, fixed key order, trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs of strings and integers cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn from_json(bytes: &[u8]) -> Result<Document, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Why a document on disk could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the metadata document {path}: {error}; run hcloud-dl-metadata first")]
    Read { path: String, error: std::io::Error },
    #[error("the metadata document {path} is not valid: {error}; rerun hcloud-dl-metadata")]
    Parse {
        path: String,
        error: serde_json::Error,
    },
}

/// Read and parse the document at `path` (already resolved under the root).
pub fn load_document(path: &Path) -> Result<Document, LoadError> {
    let bytes = std::fs::read(path).map_err(|error| LoadError::Read {
        path: path.display().to_string(),
        error,
    })?;
    Document::from_json(&bytes).map_err(|error| LoadError::Parse {
        path: path.display().to_string(),
        error,
    })
}
