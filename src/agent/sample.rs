//! [`Sampler`]: reads this machine's /proc and /sys files and turns them
//! into one [`Sample`], the points of every host series at one time.
//!
//! Names follow Telegraf: `cpu.usage_user{cpu=cpu0}`, `mem.used_percent`,
//! `diskio.read_bytes{name=vda}`, `disk.used_percent{path=/}`,
//! `net.bytes_recv{interface=eth0}`, `system.load1`. Counters (`diskio.*`,
//! `net.*`, `kernel.*`) are stored as read; rates are derived at query time
//! (`ts range --agg rate`). Values are f64, exact up to 2^53.
//!
//! A file that cannot be read or parsed costs its own series for that
//! sample only; the error is returned with the sample for the caller to
//! report. CPU usage needs two readings: the first sample of a sampler has
//! none unless [`Sampler::prime`] was called.

use std::path::{Path, PathBuf};

use crate::protocol::ts::TsSeriesPoints;
use crate::ts::series::LABEL_VALUE_BYTES_MAX;
use crate::ts::{Point, SeriesKey};

use super::cpu::{self, CpuTimes, USAGE_FIELDS};
use super::{diskio, fs, mem, net, system};

/// The points of every series at one time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// When it was taken, milliseconds since the epoch.
    pub ts_ms: i64,
    /// Series and values.
    pub points: Vec<(SeriesKey, f64)>,
}

impl Sample {
    /// An empty sample at `ts_ms`.
    pub fn new(ts_ms: i64) -> Self {
        Sample {
            ts_ms,
            points: Vec::new(),
        }
    }

    /// Adds `name{key=value}` (or `name` with `label: None`); values that
    /// are not finite and names the series rules refuse are skipped.
    pub fn push(&mut self, name: &str, label: Option<(&str, &str)>, value: f64) {
        if !value.is_finite() {
            return;
        }
        let key = match label {
            None => SeriesKey::new::<&str, &str>(name, &[]),
            Some((k, v)) => SeriesKey::new(name, &[(k, label_value(v).as_str())]),
        };
        if let Ok(key) = key {
            self.points.push((key, value));
        }
    }

    /// The sample as the groups of a TS_ADD, at most `series_max` series
    /// per group (one group unless the machine is very large).
    pub fn batches(&self, series_max: usize) -> Vec<Vec<TsSeriesPoints>> {
        self.points
            .chunks(series_max.max(1))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| TsSeriesPoints {
                        series: k.clone(),
                        points: vec![Point {
                            ts: self.ts_ms,
                            value: *v,
                        }],
                    })
                    .collect()
            })
            .collect()
    }
}

/// A label value the series rules accept: characters that structure a
/// series (`, = { }`) and control characters become `_`, and it is cut to
/// the longest allowed.
pub fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if out.len() + c.len_utf8() > LABEL_VALUE_BYTES_MAX {
            break;
        }
        out.push(if c.is_control() || ",={}".contains(c) {
            '_'
        } else {
            c
        });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Reads the host's figures; keeps the previous CPU times for usage.
#[derive(Debug)]
pub struct Sampler {
    proc_dir: PathBuf,
    prev_cpu: Vec<(String, CpuTimes)>,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new(Path::new("/proc"))
    }
}

impl Sampler {
    /// A sampler reading the proc file system mounted at `proc_dir`.
    pub fn new(proc_dir: &Path) -> Self {
        Sampler {
            proc_dir: proc_dir.to_path_buf(),
            prev_cpu: Vec::new(),
        }
    }

    fn read(&self, rel: &str) -> Result<String, String> {
        let path = self.proc_dir.join(rel);
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))
    }

    /// Reads the CPU times, so that the next sample has usage figures.
    pub fn prime(&mut self) -> Result<(), String> {
        let stat = cpu::parse_stat(&self.read("stat")?).map_err(|e| e.to_string())?;
        self.prev_cpu = stat.cpus;
        Ok(())
    }

    /// Takes a sample stamped `ts_ms`; also returns what could not be read.
    pub fn sample(&mut self, ts_ms: i64) -> (Sample, Vec<String>) {
        let mut s = Sample::new(ts_ms);
        let mut errors = Vec::new();
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        note(self.cpu(&mut s));
        note(self.mem(&mut s));
        note(self.system(&mut s));
        note(self.diskio(&mut s));
        note(self.net(&mut s));
        for e in self.disk(&mut s) {
            errors.push(e);
        }
        (s, errors)
    }

    fn cpu(&mut self, s: &mut Sample) -> Result<(), String> {
        let stat = cpu::parse_stat(&self.read("stat")?).map_err(|e| e.to_string())?;
        for (name, cur) in &stat.cpus {
            let prev = self.prev_cpu.iter().find(|(n, _)| n == name);
            if let Some(u) = prev.and_then(|(_, p)| cpu::usage(p, cur)) {
                for (field, v) in USAGE_FIELDS.iter().zip(u) {
                    s.push(&format!("cpu.{field}"), Some(("cpu", name)), v);
                }
            }
        }
        let counters = [
            ("kernel.context_switches", stat.context_switches),
            ("kernel.processes_forked", stat.processes_forked),
            ("kernel.interrupts", stat.interrupts),
            ("processes.running", stat.procs_running),
            ("processes.blocked", stat.procs_blocked),
        ];
        for (name, v) in counters {
            if let Some(v) = v {
                s.push(name, None, v as f64);
            }
        }
        let cpus = stat.cpus.len().saturating_sub(1);
        s.push("system.n_cpus", None, cpus as f64);
        self.prev_cpu = stat.cpus;
        Ok(())
    }

    fn mem(&self, s: &mut Sample) -> Result<(), String> {
        let m = mem::parse_meminfo(&self.read("meminfo")?).map_err(|e| e.to_string())?;
        s.push("mem.total", None, m.total as f64);
        s.push("mem.available", None, m.available as f64);
        s.push("mem.used", None, m.used() as f64);
        s.push("mem.free", None, m.free as f64);
        s.push("mem.buffers", None, m.buffers as f64);
        s.push("mem.cached", None, m.cached as f64);
        s.push("mem.used_percent", None, m.used_percent());
        s.push("mem.available_percent", None, 100.0 - m.used_percent());
        s.push("swap.total", None, m.swap_total as f64);
        s.push("swap.free", None, m.swap_free as f64);
        s.push("swap.used", None, m.swap_used() as f64);
        s.push("swap.used_percent", None, m.swap_used_percent());
        Ok(())
    }

    fn system(&self, s: &mut Sample) -> Result<(), String> {
        let l = system::parse_loadavg(&self.read("loadavg")?).map_err(|e| e.to_string())?;
        s.push("system.load1", None, l.load1);
        s.push("system.load5", None, l.load5);
        s.push("system.load15", None, l.load15);
        s.push("processes.total_threads", None, l.threads as f64);
        let up = system::parse_uptime(&self.read("uptime")?).map_err(|e| e.to_string())?;
        s.push("system.uptime", None, up);
        let dir = std::fs::read_dir(&self.proc_dir)
            .map_err(|e| format!("read {}: {e}", self.proc_dir.display()))?;
        let names: Vec<std::ffi::OsString> =
            dir.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        let total = system::count_processes(names.iter().filter_map(|n| n.to_str()));
        s.push("processes.total", None, total as f64);
        Ok(())
    }

    fn diskio(&self, s: &mut Sample) -> Result<(), String> {
        let disks = diskio::parse_diskstats(&self.read("diskstats")?).map_err(|e| e.to_string())?;
        for d in disks.iter().filter(|d| !d.is_idle_since_boot()) {
            let l = Some(("name", d.name.as_str()));
            s.push("diskio.reads", l, d.reads as f64);
            s.push("diskio.writes", l, d.writes as f64);
            s.push("diskio.read_bytes", l, d.read_bytes as f64);
            s.push("diskio.write_bytes", l, d.write_bytes as f64);
            s.push("diskio.read_time", l, d.read_time_ms as f64);
            s.push("diskio.write_time", l, d.write_time_ms as f64);
            s.push("diskio.io_time", l, d.io_time_ms as f64);
            s.push("diskio.weighted_io_time", l, d.weighted_io_time_ms as f64);
            s.push("diskio.iops_in_progress", l, d.in_progress as f64);
        }
        Ok(())
    }

    fn net(&self, s: &mut Sample) -> Result<(), String> {
        let devs = net::parse_net_dev(&self.read("net/dev")?).map_err(|e| e.to_string())?;
        for d in &devs {
            let l = Some(("interface", d.name.as_str()));
            s.push("net.bytes_recv", l, d.bytes_recv as f64);
            s.push("net.bytes_sent", l, d.bytes_sent as f64);
            s.push("net.packets_recv", l, d.packets_recv as f64);
            s.push("net.packets_sent", l, d.packets_sent as f64);
            s.push("net.err_in", l, d.err_in as f64);
            s.push("net.err_out", l, d.err_out as f64);
            s.push("net.drop_in", l, d.drop_in as f64);
            s.push("net.drop_out", l, d.drop_out as f64);
        }
        Ok(())
    }

    fn disk(&self, s: &mut Sample) -> Vec<String> {
        let mounts = match self
            .read("self/mounts")
            .and_then(|t| fs::parse_mounts(&t).map_err(|e| e.to_string()))
        {
            Ok(m) => m,
            Err(e) => return vec![e],
        };
        let mut errors = Vec::new();
        for m in fs::select(&mounts) {
            let u = match fs::usage(Path::new(&m.path)) {
                Ok(u) => u,
                Err(e) => {
                    errors.push(format!("statvfs {}: {e}", m.path));
                    continue;
                }
            };
            let l = Some(("path", m.path.as_str()));
            s.push("disk.total", l, u.total as f64);
            s.push("disk.free", l, u.available as f64);
            s.push("disk.used", l, u.used() as f64);
            s.push("disk.used_percent", l, u.used_percent());
            s.push("disk.inodes_total", l, u.inodes_total as f64);
            s.push("disk.inodes_free", l, u.inodes_free as f64);
        }
        errors
    }
}
