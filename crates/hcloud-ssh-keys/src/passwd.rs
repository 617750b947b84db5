//! The user's uid, gid and home from `<root>/etc/passwd` (not NSS: the file under `--root` is
//! what counts, also for image builds).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Find `name` in the text of a passwd file. Malformed lines are skipped.
pub fn lookup(passwd: &str, name: &str) -> Option<User> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0] != name {
            return None;
        }
        Some(User {
            name: name.to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: PathBuf::from(f[5]),
        })
        .filter(|u| u.home.is_absolute())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment
broken line
alice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh
bob:x:notanumber:1:Bob:/home/bob:/bin/sh
rel:x:1001:1001::home/rel:/bin/sh
";

    #[test]
    fn finds_users() {
        let root = lookup(PASSWD, "root").unwrap();
        assert_eq!(
            (root.uid, root.gid, root.home),
            (0, 0, PathBuf::from("/root"))
        );
        let alice = lookup(PASSWD, "alice").unwrap();
        assert_eq!((alice.uid, alice.gid), (1000, 1000));
        assert_eq!(alice.home, PathBuf::from("/home/alice"));
    }

    #[test]
    fn skips_missing_and_malformed() {
        assert_eq!(lookup(PASSWD, "nobody"), None);
        assert_eq!(lookup(PASSWD, "bob"), None);
        assert_eq!(lookup(PASSWD, "rel"), None);
        assert_eq!(lookup(PASSWD, "broken line"), None);
        assert_eq!(lookup(PASSWD, ""), None);
    }
}
