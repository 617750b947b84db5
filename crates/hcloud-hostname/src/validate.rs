//! Hostname validation: RFC 1123 labels, the kernel's 64-byte limit, and the "cut a long FQDN at
//! its first dot" rule users of other clouds expect.

/// The kernel's limit for a hostname (`HOST_NAME_MAX`, `__NEW_UTS_LEN`), also enforced by hostnamed.
pub const HOST_NAME_MAX: usize = 64;
/// RFC 1123 / RFC 1035: at most 63 characters per label.
pub const LABEL_MAX: usize = 63;

/// A hostname that passed validation, ready to be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname {
    name: String,
    /// The name from the document when it was longer than [`HOST_NAME_MAX`] and had to be cut.
    pub shortened_from: Option<String>,
}

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for Hostname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Why a hostname was refused. Names are shown with `{:?}` so control characters stay visible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHostname {
    #[error("the hostname is empty")]
    Empty,
    #[error(
        "the hostname {name:?} contains {what} at character {position}; only letters, digits, \
         hyphens and dots between labels are allowed"
    )]
    BadCharacter {
        name: String,
        what: String,
        position: usize,
    },
    #[error("the hostname {name:?} has an empty label (a leading, trailing or doubled dot)")]
    EmptyLabel { name: String },
    #[error("label {label:?} of the hostname {name:?} starts or ends with a hyphen")]
    Hyphen { name: String, label: String },
    #[error("label {label:?} of the hostname {name:?} is longer than {LABEL_MAX} characters")]
    LabelTooLong { name: String, label: String },
    #[error(
        "the hostname {name:?} is {len} characters long, more than the kernel's limit of \
         {HOST_NAME_MAX}, and has no dot to cut it at"
    )]
    TooLong { name: String, len: usize },
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        '\n' => "a newline".into(),
        '\r' => "a carriage return".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("{c:?}"),
    }
}

/// Check `raw` (the document's `hostname`) and return the name to set. Nothing is trimmed or
/// lower-cased: what the server was named is what it gets, or a clear refusal.
pub fn validate(raw: &str) -> Result<Hostname, InvalidHostname> {
    if raw.is_empty() {
        return Err(InvalidHostname::Empty);
    }
    if let Some((i, c)) = raw
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(InvalidHostname::BadCharacter {
            name: raw.to_string(),
            what: describe_char(c),
            position: i + 1,
        });
    }
    for label in raw.split('.') {
        if label.is_empty() {
            return Err(InvalidHostname::EmptyLabel {
                name: raw.to_string(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(InvalidHostname::Hyphen {
                name: raw.to_string(),
                label: label.to_string(),
            });
        }
        if label.len() > LABEL_MAX && raw.len() <= HOST_NAME_MAX {
            return Err(InvalidHostname::LabelTooLong {
                name: raw.to_string(),
                label: label.to_string(),
            });
        }
    }
    if raw.len() <= HOST_NAME_MAX {
        return Ok(Hostname {
            name: raw.to_string(),
            shortened_from: None,
        });
    }
    // Too long for the kernel: keep the first label, as other clouds' agents do.
    match raw.split_once('.') {
        Some((first, _)) if first.len() <= LABEL_MAX => Ok(Hostname {
            name: first.to_string(),
            shortened_from: Some(raw.to_string()),
        }),
        Some((first, _)) => Err(InvalidHostname::LabelTooLong {
            name: raw.to_string(),
            label: first.to_string(),
        }),
        None => Err(InvalidHostname::TooLong {
            name: raw.to_string(),
            len: raw.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        let h = validate(s).unwrap_or_else(|e| panic!("{s:?} refused: {e}"));
        assert_eq!(h.shortened_from, None);
        h.to_string()
    }

    #[test]
    fn accepts_rfc1123_names() {
        for name in [
            "app-7",
            "a",
            "web1.example.com",
            "123",
            "x-1.y-2",
            "Server-One",
            &"a".repeat(63),
            &format!("{}.{}", "a".repeat(31), "b".repeat(32)), // exactly 64
        ] {
            assert_eq!(ok(name), name);
        }
    }

    #[test]
    fn cuts_long_names_at_the_first_dot() {
        let long = format!("db-primary.{}.example.com", "x".repeat(60));
        assert!(long.len() > HOST_NAME_MAX);
        let h = validate(&long).unwrap();
        assert_eq!(h.as_str(), "db-primary");
        assert_eq!(h.shortened_from.as_deref(), Some(long.as_str()));
        // 65 characters with a dot is cut too.
        let sixty_five = format!("{}.{}", "a".repeat(32), "b".repeat(32));
        assert_eq!(sixty_five.len(), 65);
        assert_eq!(validate(&sixty_five).unwrap().as_str(), "a".repeat(32));
    }

    #[test]
    fn refuses_long_names_that_cannot_be_cut() {
        assert!(matches!(
            validate(&"a".repeat(65)),
            Err(InvalidHostname::TooLong { len: 65, .. })
        ));
        assert!(matches!(
            validate(&"a".repeat(64)),
            Err(InvalidHostname::LabelTooLong { .. })
        ));
        let first_too_long = format!("{}.example.com", "a".repeat(70));
        assert!(matches!(
            validate(&first_too_long),
            Err(InvalidHostname::LabelTooLong { .. })
        ));
    }

    #[test]
    fn refuses_hostile_and_malformed_names() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("my host", "a space"),
            ("host;reboot", "';'"),
            ("../../etc/passwd", "'/'"),
            ("host\nname", "a newline"),
            ("host\r", "a carriage return"),
            ("a\u{0}b", "U+0000"),
            ("$(reboot)", "'$'"),
            ("host_name", "'_'"),
            ("hôst", "'ô'"),
            ("-host", "hyphen"),
            ("host-", "hyphen"),
            ("a.-b.c", "hyphen"),
            (".host", "empty label"),
            ("host.", "empty label"),
            ("a..b", "empty label"),
            ("`id`", "'`'"),
        ];
        for (name, expect) in cases {
            let err = validate(name).expect_err(name).to_string();
            assert!(err.contains(expect), "{name:?}: {err}");
        }
        // Hostile characters are refused even in a long name that would be cut.
        let long = format!("ok.{};rm.example.com", "x".repeat(70));
        assert!(matches!(
            validate(&long),
            Err(InvalidHostname::BadCharacter { .. })
        ));
    }

    #[test]
    fn error_names_the_position() {
        let err = validate("ab cd").unwrap_err().to_string();
        assert!(err.contains("character 3"), "{err}");
        assert!(err.contains("\"ab cd\""), "{err}");
    }
}
