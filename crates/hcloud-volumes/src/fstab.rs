//! `/etc/fstab`: find how a volume is recorded and add the one line of an automounted volume.
//! The rest of the file is kept byte for byte, whatever its encoding (an fstab need not be
//! UTF-8: a path in Latin-1 is just bytes to the kernel).

use crate::device::VolumeDevice;

/// Where a volume is mounted: `/mnt/HC_Volume_<id>`, as on the stock images.
pub fn mount_point(id: u64) -> String {
    format!("/mnt/HC_Volume_{id}")
}

/// The systemd mount unit systemd-fstab-generator makes of that line.
pub fn mount_unit(id: u64) -> String {
    // systemd-escape --path: "/" becomes "-"; letters, digits and "_" stay.
    format!("mnt-HC_Volume_{id}.mount")
}

/// The line the stock images write (hc-utils), with `nofail` so a detached volume never
/// holds up the boot.
pub fn line_for(id: u64, fs_type: &str) -> String {
    format!(
        "{} {} {fs_type} discard,nofail,defaults 0 0",
        crate::device::by_id_link(id),
        mount_point(id)
    )
}

/// One entry (non-comment line) of fstab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    pub spec: String,
    pub file: String,
}

/// Every entry, with fstab's `\040`-style escapes decoded. Bytes that are not UTF-8 are
/// compared as U+FFFD: the names the agent looks for are ASCII.
pub fn entries(text: &[u8]) -> Vec<Entry> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, l)| {
            let l = String::from_utf8_lossy(l);
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut fields = l.split_whitespace();
            let spec = unescape(fields.next()?);
            let file = unescape(fields.next()?);
            Some(Entry {
                line: i + 1,
                spec,
                file,
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How fstab already knows a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Not at all.
    No,
    /// At `/mnt/HC_Volume_<id>` (our line, or the stock image's, or the user's).
    AtMountPoint { line: usize },
    /// The user mounts this device somewhere else: left to them.
    Elsewhere { line: usize, file: String },
}

/// Look the volume up by mount point first, then by anything naming its device.
pub fn find(text: &[u8], dev: &VolumeDevice) -> Recorded {
    let all = entries(text);
    let mp = mount_point(dev.id);
    if let Some(e) = all.iter().find(|e| e.file.trim_end_matches('/') == mp) {
        return Recorded::AtMountPoint { line: e.line };
    }
    let mut names = vec![dev.link.clone(), format!("/dev/{}", dev.kernel_name)];
    if let Some(uuid) = &dev.fs_uuid {
        names.push(format!("UUID={uuid}"));
        names.push(format!("UUID=\"{uuid}\""));
        names.push(format!("/dev/disk/by-uuid/{uuid}"));
    }
    match all.iter().find(|e| names.contains(&e.spec)) {
        Some(e) => Recorded::Elsewhere {
            line: e.line,
            file: e.file.clone(),
        },
        None => Recorded::No,
    }
}

/// `text` with `line` appended (after a newline if the file did not end with one).
pub fn with_line(text: &[u8], line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + line.len() + 2);
    out.extend_from_slice(text);
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> VolumeDevice {
        VolumeDevice {
            id: 100001,
            link: "/dev/disk/by-id/scsi-0HC_Volume_100001".into(),
            kernel_name: "sdb".into(),
            fs_type: Some("ext4".into()),
            fs_usage: Some("filesystem".into()),
            fs_uuid: Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into()),
        }
    }

    #[test]
    fn the_line_is_the_stock_images_line() {
        assert_eq!(
            line_for(100001, "ext4"),
            "/dev/disk/by-id/scsi-0HC_Volume_100001 /mnt/HC_Volume_100001 ext4 discard,nofail,defaults 0 0"
        );
        assert_eq!(mount_unit(100001), "mnt-HC_Volume_100001.mount");
    }

    #[test]
    fn found_by_mount_point_or_by_device() {
        let d = dev();
        let text: &[u8] = b"# comment /mnt/HC_Volume_100001\nUUID=abc / ext4 defaults 0 1\n";
        assert_eq!(find(text, &d), Recorded::No);
        let ours = with_line(text, &line_for(100001, "ext4"));
        assert_eq!(find(&ours, &d), Recorded::AtMountPoint { line: 3 });
        let user = [
            text,
            b"UUID=1b4e28ba-2fa1-11d2-883f-0016d3cca427 /srv/data ext4 defaults 0 2\n",
        ]
        .concat();
        assert_eq!(
            find(&user, &d),
            Recorded::Elsewhere {
                line: 3,
                file: "/srv/data".into()
            }
        );
        let user = b"/dev/sdb\t/srv/my\\040data xfs defaults 0 2";
        assert_eq!(
            find(user, &d),
            Recorded::Elsewhere {
                line: 1,
                file: "/srv/my data".into()
            }
        );
    }

    #[test]
    fn appending_keeps_the_rest_byte_for_byte() {
        assert_eq!(with_line(b"a b", "c d"), b"a b\nc d\n");
        assert_eq!(with_line(b"a b\n", "c d"), b"a b\nc d\n");
        assert_eq!(with_line(b"", "c d"), b"c d\n");
        assert_eq!(with_line(b"\xe9", "c d"), b"\xe9\nc d\n");
    }
}
