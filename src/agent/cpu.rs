//! `/proc/stat`: CPU time by mode per CPU and in total, and the kernel's
//! counters of context switches, forks and interrupts.
//!
//! The file gives cumulative ticks since boot; usage percentages need two
//! readings, so [`usage`] takes the previous and the current times. Guest
//! time is already counted in user (and guest_nice in nice) by the kernel,
//! so the total used as the denominator leaves them out, as Telegraf does.
//! A reading whose counters went backwards (a CPU taken offline and back,
//! a wrapped counter) yields no usage for that CPU rather than a wrong one.

use super::parse::{counter, ParseError};

const FILE: &str = "/proc/stat";

/// Cumulative ticks of one CPU (or of all, for the `cpu` line) by mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal processes in user mode (guest included).
    pub user: u64,
    /// Niced processes in user mode (guest_nice included).
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle with IO outstanding.
    pub iowait: u64,
    /// Hard interrupts.
    pub irq: u64,
    /// Soft interrupts.
    pub softirq: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
    /// Running a guest.
    pub guest: u64,
    /// Running a niced guest.
    pub guest_nice: u64,
}

impl CpuTimes {
    /// The ticks every mode adds up to (guest time is inside user/nice).
    pub fn total(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }

    fn fields(&self) -> [u64; 10] {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
            self.guest,
            self.guest_nice,
        ]
    }
}

/// Names of the usage fields, in the order [`usage`] returns them.
pub const USAGE_FIELDS: [&str; 10] = [
    "usage_user",
    "usage_nice",
    "usage_system",
    "usage_idle",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

/// What `/proc/stat` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// `cpu-total` first (the `cpu` line), then `cpu0`, `cpu1`, ... as listed.
    pub cpus: Vec<(String, CpuTimes)>,
    /// Context switches since boot (`ctxt`).
    pub context_switches: Option<u64>,
    /// Processes created since boot (`processes`).
    pub processes_forked: Option<u64>,
    /// Interrupts serviced since boot (first number of `intr`).
    pub interrupts: Option<u64>,
    /// Runnable threads now (`procs_running`).
    pub procs_running: Option<u64>,
    /// Threads blocked on IO now (`procs_blocked`).
    pub procs_blocked: Option<u64>,
    /// Boot time, seconds since the epoch (`btime`).
    pub boot_time: Option<u64>,
}

/// Parses the text of `/proc/stat`.
pub fn parse_stat(text: &str) -> Result<Stat, ParseError> {
    let mut stat = Stat::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let mut words = line.split_ascii_whitespace();
        let Some(key) = words.next() else { continue };
        if let Some(id) = key.strip_prefix("cpu") {
            let name = if id.is_empty() {
                "cpu-total".to_string()
            } else if id.bytes().all(|b| b.is_ascii_digit()) {
                key.to_string()
            } else {
                return Err(ParseError::new(FILE, n, format!("unknown line {key:?}")));
            };
            let mut v = [0u64; 10];
            let mut count = 0;
            for (slot, w) in v.iter_mut().zip(words.by_ref()) {
                *slot = counter(FILE, n, key, w)?;
                count += 1;
            }
            // Kernels before 2.6.11 print four fields; every one since
            // prints at least seven.
            if count < 4 {
                return Err(ParseError::new(
                    FILE,
                    n,
                    format!("{key} has {count} fields, expected at least 4"),
                ));
            }
            let t = CpuTimes {
                user: v[0],
                nice: v[1],
                system: v[2],
                idle: v[3],
                iowait: v[4],
                irq: v[5],
                softirq: v[6],
                steal: v[7],
                guest: v[8],
                guest_nice: v[9],
            };
            if id.is_empty() {
                stat.cpus.insert(0, (name, t));
            } else {
                stat.cpus.push((name, t));
            }
            continue;
        }
        let first = |words: &mut std::str::SplitAsciiWhitespace<'_>| match words.next() {
            Some(w) => counter(FILE, n, key, w).map(Some),
            None => Err(ParseError::new(FILE, n, format!("{key} has no value"))),
        };
        match key {
            "ctxt" => stat.context_switches = first(&mut words)?,
            "processes" => stat.processes_forked = first(&mut words)?,
            "intr" => stat.interrupts = first(&mut words)?,
            "procs_running" => stat.procs_running = first(&mut words)?,
            "procs_blocked" => stat.procs_blocked = first(&mut words)?,
            "btime" => stat.boot_time = first(&mut words)?,
            _ => {}
        }
    }
    if stat.cpus.first().map(|(n, _)| n.as_str()) != Some("cpu-total") {
        return Err(ParseError::new(FILE, 0, "no `cpu` line"));
    }
    Ok(stat)
}

/// Usage percentages of each mode between two readings of one CPU, in the
/// order of [`USAGE_FIELDS`]; `None` when no tick passed or a counter went
/// backwards.
pub fn usage(prev: &CpuTimes, cur: &CpuTimes) -> Option<[f64; 10]> {
    let (p, c) = (prev.fields(), cur.fields());
    if p.iter().zip(&c).any(|(a, b)| b < a) {
        return None;
    }
    let total = cur.total().checked_sub(prev.total())?;
    if total == 0 {
        return None;
    }
    let mut out = [0.0; 10];
    for ((o, a), b) in out.iter_mut().zip(&p).zip(&c) {
        *o = 100.0 * (b - a) as f64 / total as f64;
    }
    Some(out)
}
