//! Hetzner's validation rules, as plain functions: server names (RFC 1123 hostnames), label keys
//! and values, label selectors (parsing and matching), pagination parameters, and SSH public
//! keys with their MD5 fingerprint.

use std::collections::BTreeMap;

use base64::Engine;

use crate::error::ApiError;

/// Labels as Hetzner stores them: string to string, keys sorted.
pub type Labels = BTreeMap<String, String>;

/// A server name Hetzner accepts: a valid RFC 1123 hostname ("may only contain letters,
/// digits, periods, and dashes"), at most 253 characters, labels of 1 to 63 characters that
/// neither begin nor end with a dash.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// 1 to `max` characters, alphanumeric at both ends, `-` `_` `.` or alphanumerics between.
fn label_word(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name (1–63 characters);
/// the `hetzner.cloud/` prefix is reserved.
pub fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let dns = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|c| alnum(c) || c == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !dns || p == "hetzner.cloud" || p.ends_with(".hetzner.cloud") {
            return false;
        }
    }
    label_word(name, 63)
}

/// A label value: empty, or 1–63 characters as a key's name.
pub fn valid_label_value(value: &str) -> bool {
    value.is_empty() || label_word(value, 63)
}

/// Read and check the `labels` object of a request body (absent: empty).
pub fn parse_labels(v: Option<&serde_json::Value>) -> Result<Labels, ApiError> {
    let mut labels = Labels::new();
    let Some(v) = v else { return Ok(labels) };
    if v.is_null() {
        return Ok(labels);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid_field("labels", &["must be an object"]))?;
    for (k, val) in obj {
        let Some(val) = val.as_str() else {
            return Err(ApiError::invalid_field("labels", &["invalid label value"]));
        };
        if !valid_label_key(k) {
            return Err(ApiError::invalid_field("labels", &["invalid label key"]));
        }
        if !valid_label_value(val) {
            return Err(ApiError::invalid_field("labels", &["invalid label value"]));
        }
        labels.insert(k.clone(), val.to_string());
    }
    Ok(labels)
}

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector: every term must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector(pub Vec<Term>);

fn selector_error(detail: String) -> ApiError {
    ApiError::invalid_input(
        "label_selector",
        &format!("invalid label_selector: {detail}"),
    )
}

/// Split at the commas outside parentheses, keeping each part's start position.
fn split_terms(s: &str) -> Result<Vec<(usize, &str)>, ApiError> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(selector_error(format!("unexpected ')' at pos {i}")));
                }
            }
            ',' if depth == 0 => {
                parts.push((start, &s[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(selector_error(format!("expected ')' at pos {}", s.len())));
    }
    parts.push((start, &s[start..]));
    Ok(parts)
}

fn selector_key(k: &str, pos: usize) -> Result<String, ApiError> {
    let k = k.trim();
    if valid_label_key(k) {
        Ok(k.to_string())
    } else {
        Err(selector_error(format!("invalid label key at pos {pos}")))
    }
}

fn selector_value(v: &str, pos: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if valid_label_value(v) {
        Ok(v.to_string())
    } else {
        Err(selector_error(format!("invalid label value at pos {pos}")))
    }
}

/// Parse `k==v`, `k=v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined by commas.
pub fn parse_selector(s: &str) -> Result<Selector, ApiError> {
    let mut terms = Vec::new();
    for (pos, raw) in split_terms(s)? {
        let t = raw.trim();
        if t.is_empty() {
            return Err(selector_error(format!("expected expression at pos {pos}")));
        }
        let term = if let Some(k) = t.strip_prefix('!').filter(|r| !r.contains('=')) {
            Term::NotExists(selector_key(k, pos)?)
        } else if let Some((k, v)) = t.split_once("!=") {
            Term::NotEquals(selector_key(k, pos)?, selector_value(v, pos)?)
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            Term::Equals(selector_key(k, pos)?, selector_value(v, pos)?)
        } else if let Some(open) = t.find('(') {
            let head = t[..open].trim_end();
            let Some(list) = t[open + 1..].strip_suffix(')') else {
                return Err(selector_error(format!(
                    "expected comma at pos {}",
                    pos + t.len()
                )));
            };
            let values = list
                .split(',')
                .map(|v| selector_value(v, pos + open))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(k) = head.strip_suffix(" notin") {
                Term::NotIn(selector_key(k, pos)?, values)
            } else if let Some(k) = head.strip_suffix(" in") {
                Term::In(selector_key(k, pos)?, values)
            } else {
                return Err(selector_error(format!(
                    "expected 'in' or 'notin' at pos {pos}"
                )));
            }
        } else {
            Term::Exists(selector_key(t, pos)?)
        };
        terms.push(term);
    }
    Ok(Selector(terms))
}

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|t| match t {
            Term::Exists(k) => labels.contains_key(k),
            Term::NotExists(k) => !labels.contains_key(k),
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::NotEquals(k, v) => labels.get(k) != Some(v),
            Term::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            Term::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
        })
    }
}

/// `page` and `per_page` of a list request: page from 1, per_page 1–50 (default 25).
pub fn pagination(query: &[(String, String)]) -> Result<(usize, usize), ApiError> {
    let get = |name: &str, default: usize| -> Result<usize, ApiError> {
        match query.iter().rev().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| ApiError::invalid_input(name, &format!("invalid {name}"))),
        }
    };
    Ok((get("page", 1)?, get("per_page", 25)?.min(50)))
}

/// The key types Hetzner accepts in `public_key`.
const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Check an OpenSSH public key line and return its MD5 fingerprint (`aa:bb:…`), as Hetzner
/// shows it in `fingerprint`. `None` if the line is not a key.
pub fn ssh_key_fingerprint(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    let kind = fields.next()?;
    if !KEY_TYPES.contains(&kind) {
        return None;
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(fields.next()?)
        .ok()?;
    // The blob starts with the key type as an SSH string.
    let n = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    if blob.get(4..4 + n)? != kind.as_bytes() {
        return None;
    }
    let digest = crate::md5::digest(&blob);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for ok in [
            "packer-nixos-x86-64-1",
            "a",
            "a.b-c.d",
            "1abc",
            "packer-archlinux-20261201T074000",
        ] {
            assert!(valid_hostname(ok), "{ok}");
        }
        for bad in [
            "packer-nixos-x86_64-1",
            "",
            "-a",
            "a-",
            "a..b",
            "a b",
            "a.",
            &"x".repeat(64),
        ] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn label_rules() {
        assert!(valid_label_key("os-flavor"));
        assert!(valid_label_key("example.com/my"));
        assert!(valid_label_key("a_b.c"));
        assert!(!valid_label_key("hetzner.cloud/x"));
        assert!(!valid_label_key("-a"));
        assert!(!valid_label_key(""));
        assert!(!valid_label_key(&"k".repeat(64)));
        assert!(valid_label_value(""));
        assert!(valid_label_value("x86_64"));
        assert!(!valid_label_value("2026-12-01T07:40:00Z"));
        assert!(!valid_label_value("https://example.com"));
        assert!(!valid_label_value("a b"));
        assert!(!valid_label_value("a/b"));
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors() {
        let l = labels(&[("os-flavor", "archlinux"), ("arch", "x86_64")]);
        for (sel, want) in [
            ("os-flavor=archlinux", true),
            ("os-flavor==archlinux", true),
            ("os-flavor!=archlinux", false),
            ("os-flavor", true),
            ("!os-flavor", false),
            ("!missing", true),
            ("arch in (x86_64,aarch64)", true),
            ("arch notin (x86_64, aarch64)", false),
            ("os-flavor=archlinux,arch=aarch64", false),
            ("os-flavor=archlinux, !missing", true),
        ] {
            assert_eq!(parse_selector(sel).expect(sel).matches(&l), want, "{sel}");
        }
        for bad in ["a=b,", "a in (b", "a ~ (b)", "a=b c", ",", "a=(b)"] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints() {
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhjbG91ZC1hZ2VudHMtZXhhbXBsZS1rZXktMDAwMDAw a@b";
        let fp = ssh_key_fingerprint(key).expect("a key");
        assert_eq!(fp.len(), 47);
        assert!(ssh_key_fingerprint("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGhj").is_none());
        assert!(ssh_key_fingerprint("not a key").is_none());
    }
}
