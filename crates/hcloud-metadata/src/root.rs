//! `--root DIR`: every path an agent reads or writes is resolved under it. With a root other
//! than `/` an agent only writes files: no syscalls that change the running system, no D-Bus.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root(dir.into())
    }

    /// The root is the running system (`/`): live changes (D-Bus, syscalls, reloads) are allowed.
    pub fn is_live(&self) -> bool {
        self.0.components().all(|c| matches!(c, Component::RootDir))
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// Resolve an absolute (or relative) path under the root: `/etc/x` under `/tmp/r` is
    /// `/tmp/r/etc/x`. `..` components are dropped so nothing resolves outside the root.
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.0.clone();
        for c in path.as_ref().components() {
            if let Component::Normal(part) = c {
                out.push(part);
            }
        }
        out
    }
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_under_root_and_drops_parent_components() {
        let r = Root::new("/tmp/r");
        assert_eq!(
            r.join("/etc/hostname"),
            PathBuf::from("/tmp/r/etc/hostname")
        );
        assert_eq!(
            r.join("../../etc/shadow"),
            PathBuf::from("/tmp/r/etc/shadow")
        );
        assert!(!r.is_live());
        assert!(Root::new("/").is_live());
        assert_eq!(Root::new("/").join("/etc/x"), PathBuf::from("/etc/x"));
    }
}
