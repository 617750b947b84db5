//! What a user would look at after a boot, gathered over SSH in one round trip: hostname,
//! addresses, routes, unit states, boot timings.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::sim::Sim;

/// The sections gathered, in order: (title, command run in the guest).
pub const SECTIONS: &[(&str, &str)] = &[
    ("hostname", "hostname"),
    ("addresses", "ip -br addr"),
    ("ipv4 routes", "ip -4 route"),
    (
        "ipv6 routes",
        "ip -6 route | grep -v '^fe80::/64\\|^multicast\\|^ff00::/8\\|^local'",
    ),
    (
        "units",
        "systemctl list-units --all --plain --no-legend --no-pager 'hcloud-*' 'cloud-init*' 'cloud-config*' 'cloud-final*'",
    ),
    (
        "failed units",
        "systemctl --failed --plain --no-legend --no-pager",
    ),
    (
        "boot time",
        "systemd-analyze time --no-pager 2>&1 | head -n1",
    ),
    (
        "blame",
        "systemd-analyze blame --no-pager | grep -E 'hcloud|cloud-|systemd-networkd|ssh'",
    ),
    ("generated networks", "ls /run/systemd/network/ 2>/dev/null"),
];

pub fn script() -> String {
    SECTIONS
        .iter()
        .map(|(title, cmd)| format!("echo '### {title}'; {{ {cmd}; }} 2>&1; "))
        .collect()
}

/// Splits the output of `script()` into its sections.
pub fn parse(output: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut body = String::new();
    for line in output.lines() {
        if let Some(title) = line.strip_prefix("### ") {
            if let Some(t) = current.take() {
                map.insert(t, std::mem::take(&mut body));
            }
            current = Some(title.to_string());
        } else if current.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some(t) = current {
        map.insert(t, body);
    }
    map
}

/// Sum of the `systemd-analyze blame` times (in seconds) of the units whose name matches.
pub fn blame_sum(blame: &str, matches: impl Fn(&str) -> bool) -> f64 {
    blame
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (time, unit) = l.rsplit_once(' ')?;
            matches(unit).then(|| parse_systemd_span(time.trim()))?
        })
        .sum()
}

/// Rounded to tenths (and never `-0`).
fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0 + 0.0
}

/// Parses systemd time spans like `1min 2.345s`, `812ms`, `3.001s`, `250us`.
pub fn parse_systemd_span(s: &str) -> Option<f64> {
    let mut total = 0.0;
    for part in s.split_whitespace() {
        let idx = part.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, unit) = part.split_at(idx);
        let n: f64 = num.parse().ok()?;
        total += n * match unit {
            "h" => 3600.0,
            "min" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            _ => return None,
        };
    }
    Some(total)
}

pub struct Report {
    pub sections: BTreeMap<String, String>,
    pub time_to_ssh: Option<Duration>,
}

/// Gathers the report once the boot finished (or after 5 minutes).
pub fn gather(sim: &Sim, key: &Path, time_to_ssh: Option<Duration>) -> Result<Report> {
    // `degraded` exits non-zero but is a finished boot too; the failed units show it.
    let _ = sim.ssh(key, "timeout 300 systemctl is-system-running --wait");
    let out = sim.ssh_ok(key, &script())?;
    Ok(Report {
        sections: parse(&out),
        time_to_ssh,
    })
}

impl Report {
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(t) = self.time_to_ssh {
            s.push_str(&format!(
                "first SSH login {:.1} s after QEMU started\n",
                t.as_secs_f64()
            ));
        }
        for (title, _) in SECTIONS {
            if let Some(body) = self.sections.get(*title) {
                s.push_str(&format!("--- {title}\n"));
                let b = body.trim_end();
                s.push_str(if b.is_empty() { "(none)" } else { b });
                s.push('\n');
            }
        }
        s
    }

    /// Figures for the comparison with cloud-init: time to the first SSH login, the boot
    /// (`systemd-analyze time`) and the summed unit times of the hcloud and cloud-init units.
    pub fn figures(&self) -> serde_json::Value {
        let blame = self.get("blame");
        serde_json::json!({
            "time_to_ssh_s": self.time_to_ssh.map(|t| tenths(t.as_secs_f64())),
            "boot": self.get("boot time").trim(),
            "hcloud_units_s": tenths(blame_sum(blame, |u| u.starts_with("hcloud-"))),
            "cloud_init_units_s": tenths(blame_sum(blame, |u| u.starts_with("cloud-"))),
        })
    }

    pub fn get(&self, title: &str) -> &str {
        self.sections.get(title).map(String::as_str).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_split_back() {
        let m = parse(
            "junk\n### hostname\napp-7\n### addresses\nlo UNKNOWN 127.0.0.1/8\nens3 UP 203.0.113.10/32\n### failed units\n",
        );
        assert_eq!(m["hostname"], "app-7\n");
        assert_eq!(m["addresses"].lines().count(), 2);
        assert_eq!(m["failed units"], "");
    }

    #[test]
    fn blame_times_add_up() {
        let blame = "  1min 2.500s cloud-init-local.service\n     812ms hcloud-dl-metadata.service\n 3.001s cloud-final.service\n 250us hcloud-hostname.service\n 2s ssh.service\n";
        let ci = blame_sum(blame, |u| u.starts_with("cloud-"));
        assert!((ci - 65.501).abs() < 1e-9, "{ci}");
        let hc = blame_sum(blame, |u| u.starts_with("hcloud-"));
        assert!((hc - 0.81225).abs() < 1e-9, "{hc}");
        assert_eq!(parse_systemd_span("bogus"), None);
    }
}
