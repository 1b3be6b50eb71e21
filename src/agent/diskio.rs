//! `/proc/diskstats`: IO counters per block device.
//!
//! Each line is `major minor name` followed by 11 (before Linux 4.18), 15
//! (discards, 4.18) or 17 (flushes, 5.5) counters. Sectors are 512 bytes
//! whatever the device's block size. Device names have no spaces on a
//! stock kernel, but the parser does not rely on it: the name is what lies
//! between the device numbers and the counters.
//!
//! Devices that have never done any IO (unused `loop`, `ram` and `zram`
//! devices) are left out by the sampler, not here.

use super::parse::{counter, is_number, ParseError};

const FILE: &str = "/proc/diskstats";

/// Bytes per sector in `/proc/diskstats`.
pub const SECTOR_BYTES: u64 = 512;

/// Cumulative counters of one block device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Device name (`vda`, `nvme0n1p1`, ...).
    pub name: String,
    /// Reads completed.
    pub reads: u64,
    /// Adjacent reads merged.
    pub merged_reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Milliseconds spent reading.
    pub read_time_ms: u64,
    /// Writes completed.
    pub writes: u64,
    /// Adjacent writes merged.
    pub merged_writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Milliseconds spent writing.
    pub write_time_ms: u64,
    /// IOs in flight now.
    pub in_progress: u64,
    /// Milliseconds the device had IO in flight.
    pub io_time_ms: u64,
    /// In-flight time weighted by the number of IOs in flight.
    pub weighted_io_time_ms: u64,
}

impl DiskStats {
    /// Whether every counter is zero (a device never used since boot).
    pub fn is_idle_since_boot(&self) -> bool {
        self.reads == 0 && self.writes == 0 && self.in_progress == 0 && self.io_time_ms == 0
    }
}

/// Parses the text of `/proc/diskstats`.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskStats>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let numeric_tail = words.iter().rev().take_while(|w| is_number(w)).count();
        // Name tokens are those between the two device numbers and the
        // counters; the layout is the widest known that leaves a name.
        let Some(k) = [17usize, 15, 11]
            .into_iter()
            .find(|k| *k <= numeric_tail && words.len() >= k + 3)
        else {
            return Err(ParseError::new(
                FILE,
                n,
                format!(
                    "expected `major minor name` and 11, 15 or 17 counters, found {} fields",
                    words.len()
                ),
            ));
        };
        let (head, counters) = words.split_at(words.len() - k);
        let (Some(major), Some(minor)) = (head.first(), head.get(1)) else {
            return Err(ParseError::new(FILE, n, "no device numbers"));
        };
        if !is_number(major) || !is_number(minor) {
            return Err(ParseError::new(
                FILE,
                n,
                format!("device numbers {major:?} {minor:?} are not numbers"),
            ));
        }
        let name = head.get(2..).unwrap_or_default().join(" ");
        let mut v = [0u64; 11];
        for (slot, w) in v.iter_mut().zip(counters) {
            *slot = counter(FILE, n, &name, w)?;
        }
        out.push(DiskStats {
            name,
            reads: v[0],
            merged_reads: v[1],
            read_bytes: v[2].saturating_mul(SECTOR_BYTES),
            read_time_ms: v[3],
            writes: v[4],
            merged_writes: v[5],
            write_bytes: v[6].saturating_mul(SECTOR_BYTES),
            write_time_ms: v[7],
            in_progress: v[8],
            io_time_ms: v[9],
            weighted_io_time_ms: v[10],
        });
    }
    Ok(out)
}
