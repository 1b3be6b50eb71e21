//! File-system usage: which mounts to report (from `/proc/self/mounts`)
//! and their size, free space and inodes (from `statvfs`).
//!
//! Reported: every mount of a file system that stores data. Left out:
//! kernel and in-memory file systems ([`PSEUDO_FS_TYPES`]: proc, sysfs,
//! tmpfs, devtmpfs, cgroup, ...); `overlay` except when it is `/` (inside
//! a container it is the disk the container sees; on a container host its
//! many mounts would only repeat the host's disk); and second mounts of a
//! device already reported (bind mounts), the first listed winning.
//! Mount points with spaces are written `\040` by the kernel and decoded
//! here.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::parse::ParseError;

/// File-system types that hold no data of their own.
pub const PSEUDO_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// One line of `/proc/self/mounts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The device or source (`/dev/vda1`, `overlay`, `server:/export`).
    pub device: String,
    /// Where it is mounted, unescaped.
    pub path: String,
    /// File-system type.
    pub fstype: String,
}

/// Decodes the kernel's octal escapes (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            d.iter().all(|c| (b'0'..=b'7').contains(c)) && d.first().is_some_and(|c| *c <= b'3')
        });
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of `/proc/self/mounts` (or `/proc/mounts`).
pub fn parse_mounts(text: &str) -> Result<Vec<Mount>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut w = line.split_ascii_whitespace();
        let (Some(device), Some(path), Some(fstype)) = (w.next(), w.next(), w.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(ParseError::new(
                "/proc/self/mounts",
                i + 1,
                "expected `device path type options`",
            ));
        };
        out.push(Mount {
            device: unescape(device),
            path: unescape(path),
            fstype: fstype.to_string(),
        });
    }
    Ok(out)
}

/// The mounts worth reporting, in the order listed (see the module doc).
pub fn select(mounts: &[Mount]) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for m in mounts {
        if PSEUDO_FS_TYPES.contains(&m.fstype.as_str()) {
            continue;
        }
        if m.fstype == "overlay" && m.path != "/" {
            continue;
        }
        if out.iter().any(|o| o.device == m.device || o.path == m.path) {
            continue;
        }
        out.push(m.clone());
    }
    out
}

/// Size and use of one file system.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FsUsage {
    /// Bytes in the file system.
    pub total: u64,
    /// Bytes free (including those reserved for root).
    pub free: u64,
    /// Bytes an unprivileged user can still use.
    pub available: u64,
    /// Inodes in the file system.
    pub inodes_total: u64,
    /// Inodes free.
    pub inodes_free: u64,
}

impl FsUsage {
    /// From `statvfs` fields: block counts in `frsize` units.
    pub fn from_blocks(
        frsize: u64,
        blocks: u64,
        bfree: u64,
        bavail: u64,
        files: u64,
        ffree: u64,
    ) -> Self {
        FsUsage {
            total: blocks.saturating_mul(frsize),
            free: bfree.saturating_mul(frsize),
            available: bavail.saturating_mul(frsize),
            inodes_total: files,
            inodes_free: ffree,
        }
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }

    /// Used as a percentage of what users can have (used + available), as
    /// `df` prints it.
    pub fn used_percent(&self) -> f64 {
        super::mem::percent(self.used(), self.used().saturating_add(self.available))
    }
}

/// `statvfs(path)`.
pub fn usage(path: &Path) -> std::io::Result<FsUsage> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: an all-zero statvfs is a valid value of a plain C struct.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(FsUsage::from_blocks(
        s.f_frsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree,
    ))
}
