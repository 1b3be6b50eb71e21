//! `cityhall client ts import FILE|-`: bulk loading of InfluxDB line
//! protocol (see [`crate::ts::line_protocol`]).
//!
//! Points are gathered into TS_ADD requests of up to `batch_points`
//! points, each one group commit on the server, with a few requests in
//! flight so parsing overlaps the server's work. The points of a few
//! requests are gathered per series before they are cut into requests,
//! so that a request carries few series with many points each (each
//! series' points stay in time order). A malformed line is
//! reported on the error stream with its line number and the rest of the
//! input still loads; string and boolean fields are counted and skipped.
//! Every point is durable when the final report prints.
//!
//! Speed: a line whose measurement and tags (its *head*, the text before
//! the first space) were seen before, and which holds no escape or quoted
//! string, takes a fast path: one hash of the head, the fields split in
//! place and looked up among that head's known fields, the numbers parsed
//! with the same rules as [`parse_line`]. Anything else (a new head or
//! field, an escape, a string, a malformed value) goes through
//! [`parse_line`], which also says what is wrong.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::protocol::ts::{TsRequest, TsSeriesPoints, TS_ADD_SERIES_MAX};
use crate::protocol::{Request, Response};
use crate::ts::line_protocol::{parse_line, FieldValue, Precision};
use crate::ts::{Point, SeriesKey};

use super::ts_cli::TsFailure;
use super::{unexpected, Client};

/// Requests sent and not yet answered, at most.
const IN_FLIGHT_MAX: usize = 2 * GATHER_REQUESTS;
/// Points are gathered for this many requests before they are sent, so
/// that each request holds fewer series with more points each (the
/// server's cost per series in a request is far above its cost per point).
const GATHER_REQUESTS: usize = 8;
/// Malformed lines reported one by one; past this only counted.
const REPORTED_ERRORS_MAX: u64 = 100;

/// How to import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// Units of the input's timestamps.
    pub precision: Precision,
    /// Points per TS_ADD request.
    pub batch_points: usize,
    /// The time given to lines without a timestamp (epoch ms).
    pub now_ms: i64,
    /// Print a progress line to the error stream every second.
    pub progress: bool,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines read.
    pub lines: u64,
    /// Points stored.
    pub points: u64,
    /// Distinct series written.
    pub series: usize,
    /// String and boolean fields skipped.
    pub skipped_fields: u64,
    /// Lines refused as malformed.
    pub malformed: u64,
    /// Wall time of the import.
    pub elapsed: Duration,
}

impl ImportReport {
    /// The one-line summary the CLI prints on standard output (no
    /// timing, so the same input always prints the same line).
    pub fn summary(&self) -> String {
        format!(
            "imported {} points into {} series from {} lines; \
             skipped {} string or boolean fields; {} malformed lines",
            self.points, self.series, self.lines, self.skipped_fields, self.malformed
        )
    }

    /// Time taken and rate, for the error stream.
    pub fn timing(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.points as f64 / secs
        } else {
            0.0
        };
        format!("took {secs:.3} s ({rate:.0} points/s)")
    }
}

/// FxHash (as in rustc): heads are long and trusted, SipHash's
/// resistance to chosen keys buys nothing here.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// No slot in `Pending::slot`.
const NO_SLOT: u32 = u32::MAX;

/// The points gathered for the next request.
#[derive(Default)]
struct Pending {
    groups: Vec<TsSeriesPoints>,
    /// The series index (into `Importer::series`) of each group.
    group_series: Vec<usize>,
    points: usize,
}

struct Importer<'a> {
    client: &'a mut Client,
    opts: ImportOptions,
    /// Every series seen, by head (`measurement,tags` text) then field.
    index: FxMap<String, Vec<(String, usize)>>,
    series: Vec<SeriesKey>,
    /// Series index -> position in `pending.groups` (`NO_SLOT`: none).
    slot: Vec<u32>,
    pending: Pending,
    report: ImportReport,
}

impl Importer<'_> {
    fn series_of(
        &mut self,
        head: &str,
        measurement: &str,
        tags: &[(String, String)],
        field: &str,
    ) -> Result<usize, Error> {
        if let Some(i) = self.index.get(head).and_then(|f| find_field(f, field)) {
            return Ok(i);
        }
        let key = SeriesKey::new(&format!("{measurement}.{field}"), tags)?;
        let i = self.series.len();
        self.series.push(key);
        self.slot.push(NO_SLOT);
        self.index
            .entry(head.to_string())
            .or_default()
            .push((field.to_string(), i));
        Ok(i)
    }

    fn add(&mut self, series: usize, point: Point) -> Result<(), TsFailure> {
        let mut slot = self.slot.get(series).copied().unwrap_or(NO_SLOT);
        if slot == NO_SLOT && self.pending.groups.len() >= TS_ADD_SERIES_MAX {
            self.send()?;
        }
        let p = &mut self.pending;
        if slot == NO_SLOT {
            let Some(key) = self.series.get(series) else {
                return Ok(());
            };
            p.groups.push(TsSeriesPoints {
                series: key.clone(),
                points: Vec::new(),
            });
            p.group_series.push(series);
            slot = (p.groups.len() - 1) as u32;
            if let Some(s) = self.slot.get_mut(series) {
                *s = slot;
            }
        }
        if let Some(g) = p.groups.get_mut(slot as usize) {
            g.points.push(point);
        }
        p.points += 1;
        if p.points >= self.opts.batch_points.saturating_mul(GATHER_REQUESTS) {
            self.send()?;
        }
        Ok(())
    }

    /// Sends the pending points as requests of at most `batch_points`
    /// points, each series' points kept together where they fit; waits
    /// for the oldest answer when too many requests are in flight.
    fn send(&mut self) -> Result<(), TsFailure> {
        let pending = std::mem::take(&mut self.pending);
        if pending.groups.is_empty() {
            return Ok(());
        }
        for &series in &pending.group_series {
            if let Some(s) = self.slot.get_mut(series) {
                *s = NO_SLOT;
            }
        }
        let max = self.opts.batch_points;
        let mut request: Vec<TsSeriesPoints> = Vec::new();
        let mut points = 0;
        for mut group in pending.groups {
            while !group.points.is_empty() {
                let room = max - points;
                let part = if group.points.len() <= room {
                    std::mem::take(&mut group.points)
                } else {
                    let rest = group.points.split_off(room);
                    std::mem::replace(&mut group.points, rest)
                };
                points += part.len();
                request.push(TsSeriesPoints {
                    series: group.series.clone(),
                    points: part,
                });
                if points >= max || request.len() >= TS_ADD_SERIES_MAX {
                    self.dispatch(std::mem::take(&mut request), points)?;
                    points = 0;
                }
            }
        }
        if !request.is_empty() {
            self.dispatch(request, points)?;
        }
        Ok(())
    }

    fn dispatch(&mut self, groups: Vec<TsSeriesPoints>, points: usize) -> Result<(), TsFailure> {
        self.client.send(&Request::Ts(TsRequest::Add(groups)))?;
        self.client.flush()?;
        self.report.points += points as u64;
        while self.client.in_flight() >= IN_FLIGHT_MAX {
            self.receive_one()?;
        }
        Ok(())
    }

    fn receive_one(&mut self) -> Result<(), TsFailure> {
        match self.client.recv()? {
            Response::Ok => Ok(()),
            other => Err(TsFailure::Server(unexpected("OK", &other))),
        }
    }
}

/// The text of a line before its first unescaped space: measurement and
/// tags, the part every field of the line shares.
fn head_of(line: &str) -> &str {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b' ' => return &line[..i],
            _ => i += 1,
        }
    }
    line
}

/// Loads `input` into the server behind `client`; malformed lines and
/// progress go to `errors`.
pub fn import(
    client: &mut Client,
    input: &mut dyn BufRead,
    opts: ImportOptions,
    errors: &mut dyn Write,
) -> Result<ImportReport, TsFailure> {
    let start = Instant::now();
    let mut next_progress = start + Duration::from_secs(1);
    let mut imp = Importer {
        client,
        opts: ImportOptions {
            batch_points: opts.batch_points.max(1),
            ..opts
        },
        index: FxMap::default(),
        series: Vec::new(),
        slot: Vec::new(),
        pending: Pending::default(),
        report: ImportReport::default(),
    };
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = input.read_line(&mut buf).map_err(|source| {
            TsFailure::Server(Error::Io {
                op: "read",
                path: "the import input".into(),
                source,
            })
        })?;
        if n == 0 {
            break;
        }
        imp.report.lines += 1;
        let text = buf.trim_end_matches(['\n', '\r']);
        if fast_line(&mut imp, text)? {
            continue;
        }
        let outcome = parse_line(text)
            .map_err(|e| e.to_string())
            .and_then(|line| match line {
                None => Ok(Vec::new()),
                Some(line) => line_points(&mut imp, text, line),
            });
        match outcome {
            Ok(points) => {
                for (series, p) in points {
                    imp.add(series, p)?;
                }
            }
            Err(what) => {
                imp.report.malformed += 1;
                if imp.report.malformed <= REPORTED_ERRORS_MAX {
                    writeln!(errors, "line {}: {what}", imp.report.lines)?;
                } else if imp.report.malformed == REPORTED_ERRORS_MAX + 1 {
                    writeln!(errors, "(more malformed lines are counted, not shown)")?;
                }
            }
        }
        if imp.opts.progress && imp.report.lines % 4096 == 0 && Instant::now() >= next_progress {
            next_progress += Duration::from_secs(1);
            let secs = start.elapsed().as_secs_f64();
            writeln!(
                errors,
                "... {} lines, {} points sent, {:.0} points/s",
                imp.report.lines,
                imp.report.points,
                imp.report.points as f64 / secs
            )?;
        }
    }
    imp.send()?;
    while imp.client.in_flight() > 0 {
        imp.receive_one()?;
    }
    imp.report.series = imp.series.len();
    imp.report.elapsed = start.elapsed();
    Ok(imp.report)
}

/// The index of `field` among a head's known fields.
fn find_field(fields: &[(String, usize)], field: &str) -> Option<usize> {
    fields.iter().find(|(f, _)| f == field).map(|&(_, i)| i)
}

/// A number field's value by the rules of [`parse_line`]; `None` for
/// anything else (a boolean, a malformed or non-finite value), which the
/// full parse then handles.
fn fast_number(text: &str) -> Option<f64> {
    let v = if let Some(digits) = text.strip_suffix('i') {
        digits.parse::<i64>().ok()? as f64
    } else if let Some(digits) = text.strip_suffix('u') {
        digits.parse::<u64>().ok()? as f64
    } else if !text.is_empty()
        && text
            .bytes()
            .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
    {
        text.parse::<f64>().ok()?
    } else {
        return None;
    };
    v.is_finite().then_some(v)
}

/// Most fields of a line the fast path takes.
const FAST_FIELDS_MAX: usize = 64;

/// A line as the fast path reads it: borrowed, numbers parsed.
#[derive(Debug, PartialEq)]
struct FastLine<'a> {
    head: &'a str,
    /// Keys and values; `None`: a boolean (skipped).
    fields: [(&'a str, Option<f64>); FAST_FIELDS_MAX],
    count: usize,
    timestamp: Option<i64>,
}

/// Reads a line without escapes or strings in one pass over its bytes;
/// `None` for anything the full parse must handle (which also finds every
/// error). Every delimiter is ASCII, so each cut is on a character
/// boundary.
fn fast_parse(text: &str) -> Option<FastLine<'_>> {
    let line = text.trim_start();
    let b = line.as_bytes();
    if b.first().is_none_or(|&c| c == b'#') {
        return None;
    }
    let mut i = 0;
    loop {
        match b.get(i) {
            Some(b' ') => break,
            None | Some(b'\\' | b'"') => return None,
            Some(_) => i += 1,
        }
    }
    let head = line.get(..i)?;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut out = FastLine {
        head,
        fields: [("", None); FAST_FIELDS_MAX],
        count: 0,
        timestamp: None,
    };
    loop {
        let key_start = i;
        loop {
            match b.get(i) {
                Some(b'=') => break,
                None | Some(b',' | b' ' | b'\\' | b'"') => return None,
                Some(_) => i += 1,
            }
        }
        let key = line.get(key_start..i)?;
        i += 1;
        let value_start = i;
        loop {
            match b.get(i) {
                None | Some(b',' | b' ') => break,
                Some(b'\\' | b'"') => return None,
                Some(_) => i += 1,
            }
        }
        let value = line.get(value_start..i)?;
        if key.is_empty() {
            return None;
        }
        let v = match value {
            "t" | "T" | "true" | "True" | "TRUE" | "f" | "F" | "false" | "False" | "FALSE" => None,
            _ => Some(fast_number(value)?),
        };
        *out.fields.get_mut(out.count)? = (key, v);
        out.count += 1;
        if b.get(i) == Some(&b',') {
            i += 1;
        } else {
            break;
        }
    }
    let tail = line.get(i..)?.trim_start_matches(' ').trim_end();
    if !tail.is_empty() {
        out.timestamp = Some(tail.parse::<i64>().ok()?);
    }
    Some(out)
}

/// Adds the points of `text` if it takes the fast path (see the module
/// documentation); `false` if it must be parsed in full. Nothing is added
/// unless the whole line is valid.
fn fast_line(imp: &mut Importer<'_>, text: &str) -> Result<bool, TsFailure> {
    let Some(line) = fast_parse(text) else {
        return Ok(false);
    };
    let Some(known) = imp.index.get(line.head) else {
        return Ok(false);
    };
    let ts = match line.timestamp {
        None => imp.opts.now_ms,
        Some(t) => match imp.opts.precision.to_ms(t) {
            Some(ms) => ms,
            None => return Ok(false),
        },
    };
    let mut points = [(0usize, 0f64); FAST_FIELDS_MAX];
    let mut n = 0;
    let mut skipped = 0;
    for &(key, value) in line.fields.get(..line.count).unwrap_or_default() {
        let Some(v) = value else {
            skipped += 1;
            continue;
        };
        // Lines of one head mostly list the same fields in the same order.
        let series = match known.get(n) {
            Some((f, s)) if f == key => *s,
            _ => match find_field(known, key) {
                Some(s) => s,
                None => return Ok(false),
            },
        };
        if let Some(slot) = points.get_mut(n) {
            *slot = (series, v);
            n += 1;
        }
    }
    imp.report.skipped_fields += skipped;
    for &(series, value) in points.get(..n).unwrap_or_default() {
        imp.add(series, Point { ts, value })?;
    }
    Ok(true)
}

/// The points of one parsed line, or why the line is refused (no point of
/// a refused line is stored).
fn line_points(
    imp: &mut Importer<'_>,
    text: &str,
    line: crate::ts::line_protocol::Line,
) -> Result<Vec<(usize, Point)>, String> {
    let ts = match line.timestamp {
        None => imp.opts.now_ms,
        Some(t) => imp
            .opts
            .precision
            .to_ms(t)
            .ok_or_else(|| format!("timestamp {t} is out of range"))?,
    };
    let head = head_of(text.trim_start());
    let mut points = Vec::with_capacity(line.fields.len());
    let mut skipped = 0;
    for (field, value) in &line.fields {
        match value {
            FieldValue::Number(v) => {
                let series = imp
                    .series_of(head, &line.measurement, &line.tags, field)
                    .map_err(|e| e.to_string())?;
                points.push((series, Point { ts, value: *v }));
            }
            FieldValue::Text | FieldValue::Bool => skipped += 1,
        }
    }
    imp.report.skipped_fields += skipped;
    Ok(points)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{fast_parse, head_of, FieldValue};
    use crate::ts::line_protocol::parse_line;

    /// Whenever the fast path reads a line, the full parse reads the same.
    fn same_as_full_parse(text: &str) -> bool {
        let Some(fast) = fast_parse(text) else {
            return false;
        };
        let full = parse_line(text).unwrap().unwrap();
        assert_eq!(fast.head, head_of(text.trim_start()), "{text}");
        assert_eq!(fast.timestamp, full.timestamp, "{text}");
        let fields: Vec<(String, Option<f64>)> = fast
            .fields
            .get(..fast.count)
            .unwrap()
            .iter()
            .map(|&(k, v)| (k.to_string(), v))
            .collect();
        let want: Vec<(String, Option<f64>)> = full
            .fields
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    match v {
                        FieldValue::Number(x) => Some(*x),
                        _ => None,
                    },
                )
            })
            .collect();
        assert_eq!(fields, want, "{text}");
        true
    }

    #[test]
    fn fast_path_reads_what_the_full_parse_reads() {
        let taken = [
            "cpu,host=a u=1i,s=2.5 1451606400000000000",
            "  cpu,host=a   u=-3i,s=1e3,b=true,f=F,x=7u   17  ",
            "cpu u=0.0",
            "cpu,h=\u{e9}t\u{e9} u=1",
            "m f=+4.5e-3 -12",
        ];
        for t in taken {
            assert!(same_as_full_parse(t), "fast path not taken: {t}");
        }
        // Everything else is left to the full parse, valid or not.
        let left = [
            "",
            "# comment",
            "cpu",
            "cpu ",
            "cpu u=",
            "cpu =1",
            "cpu u=1,",
            "cpu u=abc",
            "cpu u=1i2",
            "cpu u=1 notatime",
            "cpu u=\"s\"",
            "my\\ m,t=a u=1",
            "cpu u=1=2",
            "cpu u=nan",
            "cpu u=1e999",
        ];
        for t in left {
            assert!(!same_as_full_parse(t), "fast path taken: {t:?}");
        }
    }

    #[test]
    fn head_stops_at_first_unescaped_space() {
        assert_eq!(head_of("cpu,host=a v=1 5"), "cpu,host=a");
        assert_eq!(head_of(r"my\ m,t=a\ b v=1"), r"my\ m,t=a\ b");
        assert_eq!(head_of("nospace"), "nospace");
    }
}
