//! `/proc/meminfo`: memory and swap, in bytes.
//!
//! `MemAvailable` (kernels since 3.14) is the kernel's estimate of what can
//! be allocated without swapping; used is total minus available, as
//! Telegraf and `free` compute it. On older kernels, free + buffers +
//! cached stands in for it.

use super::parse::{counter, ParseError};

const FILE: &str = "/proc/meminfo";

/// Memory figures in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: u64,
    /// `MemFree`.
    pub free: u64,
    /// `MemAvailable`, or free + buffers + cached without it.
    pub available: u64,
    /// `Buffers`.
    pub buffers: u64,
    /// `Cached`.
    pub cached: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

impl MemInfo {
    /// Total minus available.
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    /// Used as a percentage of total (0 without memory).
    pub fn used_percent(&self) -> f64 {
        percent(self.used(), self.total)
    }

    /// Swap in use.
    pub fn swap_used(&self) -> u64 {
        self.swap_total.saturating_sub(self.swap_free)
    }

    /// Swap in use as a percentage of swap (0 without swap).
    pub fn swap_used_percent(&self) -> f64 {
        percent(self.swap_used(), self.swap_total)
    }
}

pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Parses the text of `/proc/meminfo` (`Key:   123 kB` lines).
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ParseError> {
    let mut m = MemInfo::default();
    let (mut total, mut available) = (false, None);
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut m.total,
            "MemFree" => &mut m.free,
            "MemAvailable" => &mut m.available,
            "Buffers" => &mut m.buffers,
            "Cached" => &mut m.cached,
            "SwapTotal" => &mut m.swap_total,
            "SwapFree" => &mut m.swap_free,
            _ => continue,
        };
        let mut words = rest.split_ascii_whitespace();
        let value = match words.next() {
            Some(w) => counter(FILE, n, key, w)?,
            None => return Err(ParseError::new(FILE, n, format!("{key} has no value"))),
        };
        let scale = match words.next() {
            None => 1,
            Some("kB") => 1024,
            Some(u) => {
                return Err(ParseError::new(
                    FILE,
                    n,
                    format!("{key}: unknown unit {u:?}"),
                ))
            }
        };
        *slot = value.saturating_mul(scale);
        match key {
            "MemTotal" => total = true,
            "MemAvailable" => available = Some(*slot),
            _ => {}
        }
    }
    if !total {
        return Err(ParseError::new(FILE, 0, "no MemTotal line"));
    }
    if available.is_none() {
        m.available = m.free.saturating_add(m.buffers).saturating_add(m.cached);
    }
    Ok(m)
}
