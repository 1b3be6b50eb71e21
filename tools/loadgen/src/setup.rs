//! [`Setup`]: the machine and options a run's numbers belong to, printed
//! before any number as `db_bench` does (date, CPU, memory, kernel, file
//! system, commit, command), and carried in every JSON line.
//!
//! Everything is read from `/proc`, `statfs(2)` and `git`; what cannot be
//! read is shown as `unknown` rather than failing the run.

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::cli::{Config, Distribution, Target};

/// The machine and the run's options.
#[derive(Debug, Clone)]
pub struct Setup {
    pub date: String,
    pub cpu_model: String,
    /// Logical CPUs listed in /proc/cpuinfo.
    pub cpus: usize,
    /// CPUs this process may run on.
    pub cpus_online: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    pub commit: String,
    /// File system of the embedded data directory.
    pub file_system: Option<String>,
    /// The engine's IO backend (embedded).
    pub io_backend: Option<String>,
}

impl Setup {
    /// Reads the machine's description; `backend` is the embedded
    /// database's IO backend, if one is open.
    pub fn gather(cfg: &Config, backend: Option<String>) -> Setup {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
            .count();
        let file_system = match &cfg.target {
            Target::Embedded(dir) => Some(file_system(dir)),
            Target::Server(_) => None,
        };
        Setup {
            date: utc_now(),
            cpu_model,
            cpus,
            cpus_online: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes: mem_total_bytes().unwrap_or(0),
            kernel: kernel(),
            commit: git_commit(),
            file_system,
            io_backend: backend,
        }
    }

    /// The Setup block, db_bench style.
    pub fn render(&self, cfg: &Config) -> String {
        let mut s = String::from("Setup\n");
        let mut line = |k: &str, v: String| {
            let _ = writeln!(s, "  {:<12} {v}", format!("{k}:"));
        };
        line("Date", self.date.clone());
        line(
            "CPU",
            format!(
                "{} x {} ({} usable by this process)",
                self.cpus, self.cpu_model, self.cpus_online
            ),
        );
        line(
            "Memory",
            format!("{:.1} GiB", self.memory_bytes as f64 / (1u64 << 30) as f64),
        );
        line("Kernel", self.kernel.clone());
        line("Commit", self.commit.clone());
        line("Target", target_line(cfg, self));
        line(
            "Keys",
            format!(
                "{} bytes, fixed-width decimal; key space {}, {}",
                cfg.key_size,
                cfg.key_space,
                match cfg.distribution {
                    Distribution::Uniform => "uniform",
                    Distribution::Zipfian => "zipfian (YCSB, 0.99, scrambled)",
                }
            ),
        );
        line(
            "Values",
            format!("{} bytes, compressible to about half", cfg.value_size),
        );
        line("Load", load_line(cfg));
        line("Length", length_line(cfg));
        line(
            "Workloads",
            cfg.workloads
                .iter()
                .map(|w| w.name())
                .collect::<Vec<_>>()
                .join(","),
        );
        line("Seed", cfg.seed.to_string());
        line("Command", cfg.command.clone());
        s
    }

    /// The Setup as a JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "date": self.date,
            "cpu_model": self.cpu_model,
            "cpus": self.cpus,
            "cpus_online": self.cpus_online,
            "memory_bytes": self.memory_bytes,
            "kernel": self.kernel,
            "commit": self.commit,
            "file_system": self.file_system,
            "io_backend": self.io_backend,
        })
    }
}

fn target_line(cfg: &Config, setup: &Setup) -> String {
    match &cfg.target {
        Target::Server(addr) => format!("server {addr} over TCP (cityhall::client)"),
        Target::Embedded(dir) => format!(
            "embedded {}, {}, {}durability {}",
            dir.display(),
            setup
                .file_system
                .as_deref()
                .unwrap_or("unknown file system"),
            setup
                .io_backend
                .as_deref()
                .map(|b| format!("io backend {b}, "))
                .unwrap_or_default(),
            durability_name(cfg.durability)
        ),
    }
}

/// `sync` or `relaxed (sync every N ms)`.
pub fn durability_name(d: cityhall::Durability) -> String {
    match d {
        cityhall::Durability::Sync => "sync".into(),
        cityhall::Durability::Relaxed { interval_ms } => {
            format!("relaxed (sync every {interval_ms} ms)")
        }
    }
}

fn load_line(cfg: &Config) -> String {
    let mode = match cfg.rate {
        None => "closed loop".to_string(),
        Some(r) => format!("fixed rate {r} ops/s, latency from intended send time"),
    };
    let threads = if cfg.client_threads < cfg.connections {
        format!(" on {} client threads", cfg.client_threads)
    } else {
        String::new()
    };
    format!(
        "{} connections x pipeline {}{threads}, {mode}",
        cfg.connections, cfg.pipeline
    )
}

fn length_line(cfg: &Config) -> String {
    match (cfg.num, cfg.duration) {
        (Some(n), None) => format!("{n} operations per workload"),
        (None, Some(d)) => format!("{:.1} s per workload", d.as_secs_f64()),
        (Some(n), Some(d)) => format!(
            "{n} operations or {:.1} s per workload, whichever ends first",
            d.as_secs_f64()
        ),
        (None, None) => "unbounded".into(),
    }
}

fn mem_total_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn kernel() -> String {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Ok(t), Ok(r)) => format!("{t} {r}"),
        _ => "unknown".into(),
    }
}

/// `git rev-parse --short HEAD` of the source tree (or the current
/// directory), noting uncommitted changes to tracked files.
fn git_commit() -> String {
    let src = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(src)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{commit} (with uncommitted changes)"),
            _ => commit,
        },
        None => "unknown (not a git checkout)".into(),
    }
}

/// The file system holding `dir`: statfs type, and the mount's source
/// from /proc/self/mountinfo.
fn file_system(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let magic = statfs_type(&dir);
    let mount = mount_of(&dir);
    let name = match (magic.and_then(fs_name), &mount) {
        (Some(n), _) => n.to_string(),
        (None, Some((fstype, _))) => fstype.clone(),
        (None, None) => "unknown".into(),
    };
    let mut s = match magic {
        Some(m) => format!("{name} (statfs type 0x{m:x})"),
        None => name,
    };
    if let Some((_, source)) = mount {
        let _ = write!(s, " on {source}");
    }
    s
}

fn statfs_type(dir: &Path) -> Option<u64> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: all-zero bytes are a valid `statfs` (plain integers).
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out pointer.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut st) };
    (rc == 0).then_some(st.f_type as u64)
}

/// Names of the common file-system magic numbers (statfs(2)).
fn fs_name(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x0102_1994 => "tmpfs",
        0x2fc1_2fc1 => "zfs",
        0xf2f5_2010 => "f2fs",
        0x794c_7630 => "overlayfs",
        0x6969 => "nfs",
        0x8584_58f6 => "ramfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x5346_544e => "ntfs",
        0x4d44 => "vfat",
        _ => return None,
    })
}

/// The file-system type and source of the mount holding `dir`.
fn mount_of(dir: &Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for line in info.lines() {
        // id parent major:minor root mount-point options [optional...] - type source super-options
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4) else {
            continue;
        };
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(fstype), Some(source)) = (fields.get(dash + 1), fields.get(dash + 2)) else {
            continue;
        };
        let mount_point = mount_point.replace("\\040", " ");
        if dir.starts_with(&mount_point)
            && best
                .as_ref()
                .is_none_or(|(len, _, _)| mount_point.len() >= *len)
        {
            best = Some((mount_point.len(), fstype.to_string(), source.to_string()));
        }
    }
    best.map(|(_, t, s)| (t, s))
}

/// Now, as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn file_system_of_temp_dir_is_named() {
        let fs = file_system(&std::env::temp_dir());
        assert!(!fs.is_empty());
        assert!(statfs_type(Path::new("/")).is_some());
    }
}
