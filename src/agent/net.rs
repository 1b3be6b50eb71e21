//! `/proc/net/dev`: traffic counters per network interface.
//!
//! Two header lines, then `name: 8 receive counters 8 transmit counters`.
//! The name is everything before the last colon (the counters hold none),
//! trimmed, so a name holding spaces or colons is read whole. Counters are
//! 64-bit in the kernel but some drivers keep 32-bit ones that wrap; they
//! are stored as read, and `ts range --agg rate` counts a drop as a reset.

use super::parse::{counter, ParseError};

const FILE: &str = "/proc/net/dev";

/// Cumulative counters of one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDev {
    /// Interface name.
    pub name: String,
    /// Bytes received.
    pub bytes_recv: u64,
    /// Packets received.
    pub packets_recv: u64,
    /// Receive errors.
    pub err_in: u64,
    /// Received packets dropped.
    pub drop_in: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Transmit errors.
    pub err_out: u64,
    /// Packets dropped on transmit.
    pub drop_out: u64,
}

/// Parses the text of `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> Result<Vec<NetDev>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.contains('|') || line.trim().is_empty() {
            continue; // the two header lines
        }
        let Some((name, rest)) = line.rsplit_once(':') else {
            return Err(ParseError::new(FILE, n, "no `name:` before the counters"));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(ParseError::new(FILE, n, "empty interface name"));
        }
        let words: Vec<&str> = rest.split_ascii_whitespace().collect();
        if words.len() < 16 {
            return Err(ParseError::new(
                FILE,
                n,
                format!("{name}: {} counters, expected 16", words.len()),
            ));
        }
        let mut v = [0u64; 16];
        for (slot, w) in v.iter_mut().zip(&words) {
            *slot = counter(FILE, n, name, w)?;
        }
        out.push(NetDev {
            name: name.to_string(),
            bytes_recv: v[0],
            packets_recv: v[1],
            err_in: v[2],
            drop_in: v[3],
            bytes_sent: v[8],
            packets_sent: v[9],
            err_out: v[10],
            drop_out: v[11],
        });
    }
    Ok(out)
}
