//! `/proc/loadavg` and `/proc/uptime`: load averages, thread counts and
//! the time since boot.

use super::parse::{counter, ParseError};

/// What `/proc/loadavg` holds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadAvg {
    /// Over 1 minute.
    pub load1: f64,
    /// Over 5 minutes.
    pub load5: f64,
    /// Over 15 minutes.
    pub load15: f64,
    /// Runnable scheduling entities (threads) now.
    pub running: u64,
    /// Scheduling entities (threads) that exist.
    pub threads: u64,
}

fn float(file: &'static str, what: &str, text: Option<&str>) -> Result<f64, ParseError> {
    let Some(t) = text else {
        return Err(ParseError::new(file, 1, format!("{what} is missing")));
    };
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(ParseError::new(
            file,
            1,
            format!("{what}: {t:?} is not a non-negative number"),
        )),
    }
}

/// Parses `0.52 0.58 0.59 2/345 12345`.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, ParseError> {
    const FILE: &str = "/proc/loadavg";
    let mut w = text.split_ascii_whitespace();
    let load1 = float(FILE, "load1", w.next())?;
    let load5 = float(FILE, "load5", w.next())?;
    let load15 = float(FILE, "load15", w.next())?;
    let Some((running, threads)) = w.next().and_then(|t| t.split_once('/')) else {
        return Err(ParseError::new(FILE, 1, "no running/total field"));
    };
    Ok(LoadAvg {
        load1,
        load5,
        load15,
        running: counter(FILE, 1, "running", running)?,
        threads: counter(FILE, 1, "total", threads)?,
    })
}

/// Parses `/proc/uptime` (`12345.67 23456.78`): seconds since boot.
pub fn parse_uptime(text: &str) -> Result<f64, ParseError> {
    float(
        "/proc/uptime",
        "uptime",
        text.split_ascii_whitespace().next(),
    )
}

/// Counts the process directories among `/proc` entry names.
pub fn count_processes<'a>(names: impl Iterator<Item = &'a str>) -> u64 {
    names.filter(|n| super::parse::is_number(n)).count() as u64
}
