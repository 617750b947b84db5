//! What a Hetzner project sees before it creates anything: the locations, the server types of
//! 2026 with their per-location availability (`server_type.locations[]`), and the system images
//! (each name once per architecture).

use serde_json::{Value, json};

/// `x86` or `arm`, as the API spells it.
pub type Arch = &'static str;

#[derive(Debug, Clone)]
pub struct Location {
    pub id: u64,
    pub name: &'static str,
    pub description: &'static str,
    pub country: &'static str,
    pub city: &'static str,
    pub latitude: f64,
    pub longitude: f64,
    pub network_zone: &'static str,
}

impl Location {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "description": self.description,
            "country": self.country, "city": self.city, "latitude": self.latitude,
            "longitude": self.longitude, "network_zone": self.network_zone,
        })
    }
}

/// A server type's offer in one location.
#[derive(Debug, Clone)]
pub struct Offer {
    pub location: &'static str,
    /// `false`: listed, but without capacity now (creating fails with `resource_unavailable`).
    pub available: bool,
}

#[derive(Debug, Clone)]
pub struct ServerType {
    pub id: u64,
    pub name: &'static str,
    pub cores: u32,
    pub memory_gb: f64,
    pub disk_gb: u64,
    pub architecture: Arch,
    pub cpu_type: &'static str,
    pub category: &'static str,
    pub price_monthly: &'static str,
    pub offers: Vec<Offer>,
}

impl ServerType {
    pub fn offer(&self, location: &str) -> Option<&Offer> {
        self.offers.iter().find(|o| o.location == location)
    }

    pub fn json(&self, locations: &[Location]) -> Value {
        let loc = |name: &str| locations.iter().find(|l| l.name == name);
        let offers: Vec<Value> = self
            .offers
            .iter()
            .filter_map(|o| {
                let l = loc(o.location)?;
                Some(json!({"id": l.id, "name": l.name, "available": o.available,
                            "recommended": o.available, "deprecation": null}))
            })
            .collect();
        let prices: Vec<Value> = self
            .offers
            .iter()
            .map(|o| {
                json!({"location": o.location,
                       "price_hourly": {"net": "0.0100000000", "gross": "0.0119000000"},
                       "price_monthly": {"net": self.price_monthly, "gross": self.price_monthly},
                       "included_traffic": 21990232555520u64,
                       "price_per_tb_traffic": {"net": "1.0000000000", "gross": "1.1900000000"}})
            })
            .collect();
        json!({
            "id": self.id, "name": self.name,
            "description": self.name.to_uppercase(),
            "cores": self.cores, "memory": self.memory_gb, "disk": self.disk_gb,
            "deprecated": false, "deprecation": null,
            "prices": prices, "storage_type": "local", "cpu_type": self.cpu_type,
            "category": self.category, "architecture": self.architecture,
            "included_traffic": 21990232555520u64,
            "locations": offers,
        })
    }
}

pub fn locations() -> Vec<Location> {
    let l = |id, name, description, country, city, latitude, longitude, network_zone| Location {
        id,
        name,
        description,
        country,
        city,
        latitude,
        longitude,
        network_zone,
    };
    vec![
        l(
            1,
            "fsn1",
            "Falkenstein DC Park 1",
            "DE",
            "Falkenstein",
            50.47612,
            12.370071,
            "eu-central",
        ),
        l(
            2,
            "nbg1",
            "Nuremberg DC Park 1",
            "DE",
            "Nuremberg",
            49.452102,
            11.076665,
            "eu-central",
        ),
        l(
            3,
            "hel1",
            "Helsinki DC Park 1",
            "FI",
            "Helsinki",
            60.169855,
            24.938379,
            "eu-central",
        ),
        l(
            4,
            "ash",
            "Ashburn, VA",
            "US",
            "Ashburn, VA",
            39.045821,
            -77.487073,
            "us-east",
        ),
        l(
            5,
            "hil",
            "Hillsboro, OR",
            "US",
            "Hillsboro, OR",
            45.54222,
            -122.951924,
            "us-west",
        ),
        l(
            6,
            "sin",
            "Singapore",
            "SG",
            "Singapore",
            1.283333,
            103.833333,
            "ap-southeast",
        ),
    ]
}

const EU: &[&str] = &["fsn1", "nbg1", "hel1"];
const ALL: &[&str] = &["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];

/// The server types in use in 2026 (CX Gen3, CPX Gen2, CAX, CCX); CX and CAX only in the EU.
pub fn server_types() -> Vec<ServerType> {
    let t = |id,
             name,
             cores,
             memory_gb,
             disk_gb,
             architecture,
             cpu_type,
             category,
             price_monthly,
             locs: &[&'static str]| {
        ServerType {
            id,
            name,
            cores,
            memory_gb,
            disk_gb,
            architecture,
            cpu_type,
            category,
            price_monthly,
            offers: locs
                .iter()
                .map(|&location| Offer {
                    location,
                    available: true,
                })
                .collect(),
        }
    };
    vec![
        t(
            104,
            "cx23",
            2,
            4.0,
            40,
            "x86",
            "shared",
            "cost_optimized",
            "3.4900000000",
            EU,
        ),
        t(
            105,
            "cx33",
            4,
            8.0,
            80,
            "x86",
            "shared",
            "cost_optimized",
            "5.4900000000",
            EU,
        ),
        t(
            106,
            "cx43",
            8,
            16.0,
            160,
            "x86",
            "shared",
            "cost_optimized",
            "9.4900000000",
            EU,
        ),
        t(
            107,
            "cx53",
            16,
            32.0,
            320,
            "x86",
            "shared",
            "cost_optimized",
            "17.4900000000",
            EU,
        ),
        t(
            108,
            "cpx12",
            1,
            2.0,
            40,
            "x86",
            "shared",
            "regular_purpose",
            "4.4900000000",
            ALL,
        ),
        t(
            109,
            "cpx22",
            2,
            4.0,
            80,
            "x86",
            "shared",
            "regular_purpose",
            "7.4900000000",
            ALL,
        ),
        t(
            110,
            "cpx32",
            4,
            8.0,
            160,
            "x86",
            "shared",
            "regular_purpose",
            "12.4900000000",
            ALL,
        ),
        t(
            111,
            "cpx42",
            8,
            16.0,
            320,
            "x86",
            "shared",
            "regular_purpose",
            "23.4900000000",
            ALL,
        ),
        t(
            45,
            "cax11",
            2,
            4.0,
            40,
            "arm",
            "shared",
            "cost_optimized",
            "3.7900000000",
            EU,
        ),
        t(
            93,
            "cax21",
            4,
            8.0,
            80,
            "arm",
            "shared",
            "cost_optimized",
            "6.4900000000",
            EU,
        ),
        t(
            94,
            "cax31",
            8,
            16.0,
            160,
            "arm",
            "shared",
            "cost_optimized",
            "12.4900000000",
            EU,
        ),
        t(
            95,
            "cax41",
            16,
            32.0,
            320,
            "arm",
            "shared",
            "cost_optimized",
            "24.4900000000",
            EU,
        ),
        t(
            96,
            "ccx13",
            2,
            8.0,
            80,
            "x86",
            "dedicated",
            "general_purpose",
            "12.4900000000",
            ALL,
        ),
    ]
}

/// A system image, one per name and architecture.
#[derive(Debug, Clone)]
pub struct SystemImage {
    pub name: &'static str,
    pub description: &'static str,
    pub os_flavor: &'static str,
    pub os_version: &'static str,
}

pub fn system_images() -> Vec<SystemImage> {
    let i = |name, description, os_flavor, os_version| SystemImage {
        name,
        description,
        os_flavor,
        os_version,
    };
    vec![
        i("debian-12", "Debian 12", "debian", "12"),
        i("debian-13", "Debian 13", "debian", "13"),
        i("ubuntu-22.04", "Ubuntu 22.04", "ubuntu", "22.04"),
        i("ubuntu-24.04", "Ubuntu 24.04", "ubuntu", "24.04"),
        i("fedora-42", "Fedora 42", "fedora", "42"),
        i("rocky-10", "Rocky Linux 10", "rocky", "10"),
    ]
}
