//! `cityhall client ts ...`: the time-series commands of the CLI.
//!
//! ```text
//! ts add SERIES VALUE [--time T] [--labels k=v,...] [--label k=v]...   -> OK
//! ts range SERIES [--from T] [--to T] [--agg F --bucket D] [--limit N] -> timestamp<TAB>value lines
//! ts latest SERIES                                                     -> timestamp<TAB>value
//! ts series [--prefix P] [--labels k=v,k!=v,...]                       -> one series a line
//! ts delete SERIES [--from T --to T]                                   -> OK
//! ts retention SERIES DURATION | ts retention --default DURATION       -> OK
//! ts policy SERIES last|first|block|min|max|sum                        -> OK
//! ts import FILE|- [--precision ns|us|ms|s] [--batch N]                -> a summary line
//! ts agg FN [--prefix P] [--label k=v]... [--from T] [--to T] [--bucket D] [--limit N]
//!                                                                      -> timestamp<TAB>value lines
//! ```
//!
//! `ts agg` pools every series the prefix and the labels select (as
//! `ts series` lists them, `k!=v` too) and prints FN (count, sum, min,
//! max, avg, first, last) per bucket, or one line stamped with --from
//! without --bucket; see `src/ts/select.rs`.
//!
//! SERIES is a name, optionally with labels inline (`cpu{host=a}`); labels
//! given with `--labels`/`--label` are added to them. T is epoch
//! milliseconds, `now`, relative (`-5m`, `now-1h`) or RFC 3339
//! (`2026-11-24T10:00:00Z`); see [`crate::ts::time`]. `--from` defaults to
//! the beginning of time, `--to` to now. DURATION is `30d`, `12h`, ...,
//! `forever`, or `default` (the database default).
//!
//! Values print in Rust's shortest round-trip form (`0.75`, `12`, `-0`),
//! in exponent form beyond 1e16 or below 1e-6 (`1e300`).
//!
//! Exit codes: 0 done; 1 the series does not exist (`NOT_FOUND` printed)
//! or the result is empty (nothing printed), or an import met malformed
//! lines (the other lines are loaded); 2 usage; 3 server or IO error.

use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::Error;
use crate::protocol::ts::TsSeriesPoints;
use crate::ts::line_protocol::Precision;
use crate::ts::series::parse_labels;
use crate::ts::time::{parse_duration_ms, parse_time_ms};
use crate::ts::{
    Aggregation, DupPolicy, LabelMatcher, Point, RangeQuery, Retention, SelectQuery, SeriesKey,
};

use super::ts_import::{self, ImportOptions};
use super::Client;

/// Labels given as options.
#[derive(Args, Debug, Default)]
pub struct LabelArgs {
    /// Labels, comma-separated: host=a,core=0 (for `series`, also
    /// host!=a: series without that value).
    #[arg(long, value_name = "K=V,...")]
    labels: Option<String>,
    /// One label (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    label: Vec<String>,
}

impl LabelArgs {
    fn pairs(&self) -> Result<Vec<(String, String)>, Error> {
        let mut out = parse_labels(self.labels.as_deref().unwrap_or(""))?;
        for l in &self.label {
            out.extend(parse_labels(l)?);
        }
        Ok(out)
    }

    fn matchers(&self) -> Result<Vec<LabelMatcher>, Error> {
        let mut out = LabelMatcher::parse_list(self.labels.as_deref().unwrap_or(""))?;
        for l in &self.label {
            out.push(LabelMatcher::parse(l)?);
        }
        Ok(out)
    }
}

/// The `ts` subcommands.
#[derive(Subcommand, Debug)]
pub enum TsCommand {
    /// Add a point to SERIES (created by its first point); prints OK once
    /// durable.
    Add {
        /// The series: name or name{k=v,...}.
        series: String,
        /// The value (NaN and infinities are refused).
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// When: epoch ms, now, -5m, now-1h, 2026-11-24T10:00:00Z [default: now].
        #[arg(
            long,
            visible_alias = "at",
            value_name = "T",
            allow_hyphen_values = true
        )]
        time: Option<String>,
        #[command(flatten)]
        labels: LabelArgs,
    },
    /// Print `timestamp<TAB>value` per point, or per bucket with --agg.
    Range {
        /// The series.
        series: String,
        /// First time (inclusive) [default: the beginning].
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        from: Option<String>,
        /// Last time (inclusive) [default: now].
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        to: Option<String>,
        /// avg, min, max, sum, count, first, last or rate.
        #[arg(long, value_name = "FN")]
        agg: Option<String>,
        /// Bucket width (1m, 1h, ...); without it --agg covers the range.
        #[arg(long, value_name = "D", requires = "agg")]
        bucket: Option<String>,
        /// Most lines [default: all].
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[command(flatten)]
        labels: LabelArgs,
    },
    /// Print the newest point as `timestamp<TAB>value`.
    Latest {
        /// The series.
        series: String,
        #[command(flatten)]
        labels: LabelArgs,
    },
    /// Print the series, one a line, in canonical form.
    Series {
        /// Only series starting with P.
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        /// Only series with these labels (k=v) and without these (k!=v).
        #[command(flatten)]
        labels: LabelArgs,
        /// Most series [default: all].
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Delete a series, or with --from/--to the points of a time range.
    Delete {
        /// The series.
        series: String,
        /// First time deleted (inclusive) [default: the beginning].
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        from: Option<String>,
        /// Last time deleted (inclusive) [default: the end].
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        to: Option<String>,
        #[command(flatten)]
        labels: LabelArgs,
    },
    /// Keep SERIES's points DURATION back from now (30d, forever,
    /// default), or set the default of every series with --default.
    Retention {
        /// SERIES DURATION, or DURATION with --default.
        #[arg(value_name = "SERIES DURATION", num_args = 1..=2, required = true)]
        args: Vec<String>,
        /// Set the database-wide default.
        #[arg(long)]
        default: bool,
        #[command(flatten)]
        labels: LabelArgs,
    },
    /// Set what a second point at the same time does: last (replace, the
    /// default), first (keep), block (refuse), min, max or sum.
    Policy {
        /// The series.
        series: String,
        /// last, first, block, min, max or sum.
        policy: String,
        #[command(flatten)]
        labels: LabelArgs,
    },
    /// Load InfluxDB line protocol (`measurement,tag=v field=1.5 TIME`)
    /// from FILE, or standard input with `-`: each numeric field becomes
    /// the series `measurement.field` labelled with the tags. Malformed
    /// lines are reported by number and the rest still loads.
    Import {
        /// The file, or - for standard input.
        file: String,
        /// Units of the timestamps: ns, us, ms or s.
        #[arg(long, value_name = "P", default_value = "ns")]
        precision: String,
        /// Points per request (each one group commit).
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        batch: usize,
    },
    /// Print FN over every series the selector matches, pooled, as
    /// `timestamp<TAB>value` per bucket (one line stamped with --from
    /// without --bucket).
    Agg {
        /// count, sum, min, max, avg, first or last.
        #[arg(value_name = "FN")]
        agg: String,
        /// Only series starting with P.
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        /// Only series with these labels (k=v) and without these (k!=v).
        #[command(flatten)]
        labels: LabelArgs,
        /// First time (inclusive) [default: the beginning].
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        from: Option<String>,
        /// Last time (inclusive) [default: now].
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        to: Option<String>,
        /// Bucket width (1m, 1h, ...); without it one value for the range.
        #[arg(long, value_name = "D")]
        bucket: Option<String>,
        /// Most lines [default: all].
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
}

/// A `ts` command with its arguments parsed and checked (before any
/// connection is made, so a usage error never waits for a server).
#[derive(Clone, Debug, PartialEq)]
pub enum TsAction {
    /// Add one point.
    Add(SeriesKey, Point),
    /// A range, raw or aggregated.
    Range(SeriesKey, RangeQuery),
    /// The newest point.
    Latest(SeriesKey),
    /// List series.
    Series {
        /// Canonical-form prefix.
        prefix: String,
        /// Label conditions.
        matchers: Vec<LabelMatcher>,
        /// Most series.
        limit: usize,
    },
    /// Delete a series or a range of it.
    Delete(SeriesKey, Option<(i64, i64)>),
    /// Set a retention (of the default with `None`).
    Retention(Option<SeriesKey>, Retention),
    /// Set a duplicate policy.
    Policy(SeriesKey, DupPolicy),
    /// Bulk-load line protocol from a file (standard input with `None`).
    Import(Option<PathBuf>, ImportOptions),
    /// An aggregate across series.
    Agg(SelectQuery),
}

/// How a `ts` command ended, for the exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum TsOutcome {
    /// Done (exit 0).
    Done,
    /// Not found or empty (exit 1).
    NotFound,
    /// Done in part: some input was refused and reported (exit 1).
    Incomplete,
}

/// Why a `ts` command failed after it was sent.
#[derive(Debug)]
pub enum TsFailure {
    /// The server or the connection failed (exit 3).
    Server(Error),
    /// Stdout could not be written.
    Stdout(io::Error),
}

impl From<Error> for TsFailure {
    fn from(e: Error) -> Self {
        TsFailure::Server(e)
    }
}

impl From<io::Error> for TsFailure {
    fn from(e: io::Error) -> Self {
        TsFailure::Stdout(e)
    }
}

/// The name of the subcommand (for messages: `ts range failed: ...`).
pub fn command_name(cmd: &TsCommand) -> &'static str {
    match cmd {
        TsCommand::Add { .. } => "ts add",
        TsCommand::Range { .. } => "ts range",
        TsCommand::Latest { .. } => "ts latest",
        TsCommand::Series { .. } => "ts series",
        TsCommand::Delete { .. } => "ts delete",
        TsCommand::Retention { .. } => "ts retention",
        TsCommand::Policy { .. } => "ts policy",
        TsCommand::Import { .. } => "ts import",
        TsCommand::Agg { .. } => "ts agg",
    }
}

/// A value as the CLI prints it.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && a.is_finite() && !(1e-6..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn series_key(text: &str, labels: &LabelArgs) -> Result<SeriesKey, String> {
    let base = SeriesKey::parse(text).map_err(|e| e.to_string())?;
    let extra = labels.pairs().map_err(|e| e.to_string())?;
    if extra.is_empty() {
        return Ok(base);
    }
    let mut all: Vec<(String, String)> = base.labels().to_vec();
    all.extend(extra);
    SeriesKey::new(base.name(), &all).map_err(|e| e.to_string())
}

fn time(text: Option<&str>, default: i64, now: i64) -> Result<i64, String> {
    match text {
        None => Ok(default),
        Some(t) => parse_time_ms(t, now),
    }
}

fn retention_arg(text: &str) -> Result<Retention, String> {
    match text {
        "forever" | "none" | "0" => Ok(Retention::Forever),
        "default" => Ok(Retention::Default),
        d => {
            let ms = parse_duration_ms(d)?;
            if ms <= 0 {
                return Err(format!("retention {d:?} must be positive"));
            }
            Ok(Retention::Ms(ms))
        }
    }
}

/// Parses and checks a command's arguments; the error is a usage message.
pub fn plan(cmd: &TsCommand, now: i64) -> Result<TsAction, String> {
    Ok(match cmd {
        TsCommand::Add {
            series,
            value,
            time: at,
            labels,
        } => {
            let series = series_key(series, labels)?;
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("value {value:?} is not a number"))?;
            if !v.is_finite() {
                return Err(format!(
                    "value {value:?} is not a finite number (NaN and infinities are refused)"
                ));
            }
            let ts = time(at.as_deref(), now, now)?;
            TsAction::Add(series, Point { ts, value: v })
        }
        TsCommand::Range {
            series,
            from,
            to,
            agg,
            bucket,
            limit,
            labels,
        } => {
            let series = series_key(series, labels)?;
            let agg = match agg.as_deref() {
                None => None,
                Some(a) => Some(Aggregation::parse(a).ok_or_else(|| {
                    format!("--agg {a:?}: use avg, min, max, sum, count, first, last or rate")
                })?),
            };
            let bucket_ms = match bucket.as_deref() {
                None => 0,
                Some(b) => parse_duration_ms(b)?,
            };
            let query = RangeQuery {
                from: time(from.as_deref(), i64::MIN, now)?,
                to: time(to.as_deref(), now, now)?,
                agg,
                bucket_ms,
                limit: limit.unwrap_or(usize::MAX).max(1),
            };
            if query.from > query.to {
                return Err(format!("--from {} is after --to {}", query.from, query.to));
            }
            TsAction::Range(series, query)
        }
        TsCommand::Latest { series, labels } => TsAction::Latest(series_key(series, labels)?),
        TsCommand::Series {
            prefix,
            labels,
            limit,
        } => TsAction::Series {
            prefix: prefix.clone().unwrap_or_default(),
            matchers: labels.matchers().map_err(|e| e.to_string())?,
            limit: limit.unwrap_or(usize::MAX).max(1),
        },
        TsCommand::Delete {
            series,
            from,
            to,
            labels,
        } => {
            let series = series_key(series, labels)?;
            let range = if from.is_none() && to.is_none() {
                None
            } else {
                let a = time(from.as_deref(), i64::MIN, now)?;
                let b = time(to.as_deref(), i64::MAX, now)?;
                if a > b {
                    return Err(format!("--from {a} is after --to {b}"));
                }
                Some((a, b))
            };
            TsAction::Delete(series, range)
        }
        TsCommand::Retention {
            args,
            default,
            labels,
        } => {
            let (series, duration) = match (default, args.as_slice()) {
                (true, [d]) => (None, d),
                (false, [s, d]) => (Some(series_key(s, labels)?), d),
                (true, _) => return Err("with --default give only DURATION".into()),
                (false, _) => return Err("give SERIES DURATION (or --default DURATION)".into()),
            };
            let r = retention_arg(duration)?;
            if series.is_none() && r == Retention::Default {
                return Err("the default retention cannot be \"default\"".into());
            }
            TsAction::Retention(series, r)
        }
        TsCommand::Policy {
            series,
            policy,
            labels,
        } => {
            let series = series_key(series, labels)?;
            let p = DupPolicy::parse(policy).ok_or_else(|| {
                format!("policy {policy:?}: use last, first, block, min, max or sum")
            })?;
            TsAction::Policy(series, p)
        }
        TsCommand::Import {
            file,
            precision,
            batch,
        } => {
            let precision = Precision::parse(precision)
                .ok_or_else(|| format!("--precision {precision:?}: use ns, us, ms or s"))?;
            if *batch == 0 || *batch > crate::protocol::ts::TS_ADD_POINTS_MAX {
                return Err(format!(
                    "--batch {batch}: must be 1 to {}",
                    crate::protocol::ts::TS_ADD_POINTS_MAX
                ));
            }
            let path = (file != "-").then(|| PathBuf::from(file));
            TsAction::Import(
                path,
                ImportOptions {
                    precision,
                    batch_points: *batch,
                    now_ms: now,
                    progress: true,
                },
            )
        }
        TsCommand::Agg {
            agg,
            prefix,
            labels,
            from,
            to,
            bucket,
            limit,
        } => {
            let agg = Aggregation::parse(agg)
                .filter(|a| *a != Aggregation::Rate)
                .ok_or_else(|| {
                    format!("FN {agg:?}: use count, sum, min, max, avg, first or last")
                })?;
            let bucket_ms = match bucket.as_deref() {
                None => 0,
                Some(b) => parse_duration_ms(b)?,
            };
            let query = SelectQuery {
                prefix: prefix.clone().unwrap_or_default(),
                matchers: labels.matchers().map_err(|e| e.to_string())?,
                from: time(from.as_deref(), i64::MIN, now)?,
                to: time(to.as_deref(), now, now)?,
                agg,
                bucket_ms,
                limit: limit.unwrap_or(usize::MAX).max(1),
                series_max: crate::protocol::ts::TS_AGG_SERIES_MAX,
            };
            if query.from > query.to {
                return Err(format!("--from {} is after --to {}", query.from, query.to));
            }
            TsAction::Agg(query)
        }
    })
}

fn print_points(out: &mut impl Write, points: &[Point]) -> io::Result<()> {
    for p in points {
        writeln!(out, "{}\t{}", p.ts, format_value(p.value))?;
    }
    Ok(())
}

fn ok_or_not_found(out: &mut impl Write, found: bool) -> io::Result<TsOutcome> {
    if found {
        writeln!(out, "OK")?;
        Ok(TsOutcome::Done)
    } else {
        writeln!(out, "NOT_FOUND")?;
        Ok(TsOutcome::NotFound)
    }
}

/// Runs a planned command and prints its result to `out`.
pub fn execute(
    client: &mut Client,
    action: TsAction,
    out: &mut impl Write,
) -> Result<TsOutcome, TsFailure> {
    let outcome = match action {
        TsAction::Add(series, p) => {
            client.ts_add(vec![TsSeriesPoints {
                series,
                points: vec![p],
            }])?;
            writeln!(out, "OK")?;
            TsOutcome::Done
        }
        TsAction::Range(series, query) => match client.ts_range(&series, &query)? {
            None => {
                writeln!(out, "NOT_FOUND")?;
                TsOutcome::NotFound
            }
            Some(points) if points.is_empty() => TsOutcome::NotFound,
            Some(points) => {
                print_points(out, &points)?;
                TsOutcome::Done
            }
        },
        TsAction::Latest(series) => match client.ts_latest(&series)? {
            Some(Some(p)) => {
                print_points(out, &[p])?;
                TsOutcome::Done
            }
            _ => {
                writeln!(out, "NOT_FOUND")?;
                TsOutcome::NotFound
            }
        },
        TsAction::Series {
            prefix,
            matchers,
            limit,
        } => {
            let names = client.ts_series(&prefix, &matchers, limit)?;
            for n in &names {
                writeln!(out, "{n}")?;
            }
            if names.is_empty() {
                TsOutcome::NotFound
            } else {
                TsOutcome::Done
            }
        }
        TsAction::Delete(series, range) => {
            let found = client.ts_delete(&series, range)?;
            ok_or_not_found(out, found)?
        }
        TsAction::Retention(series, r) => {
            let found = client.ts_retention(series.as_ref(), r)?;
            ok_or_not_found(out, found)?
        }
        TsAction::Policy(series, p) => {
            let found = client.ts_policy(&series, p)?;
            ok_or_not_found(out, found)?
        }
        TsAction::Import(path, opts) => {
            let mut input: Box<dyn BufRead> = match &path {
                None => Box::new(io::stdin().lock()),
                Some(p) => Box::new(BufReader::with_capacity(
                    1 << 20,
                    std::fs::File::open(p).map_err(|source| Error::Io {
                        op: "open",
                        path: p.display().to_string(),
                        source,
                    })?,
                )),
            };
            let mut errors = io::stderr().lock();
            let report = ts_import::import(client, &mut input, opts, &mut errors)?;
            writeln!(errors, "{}", report.timing())?;
            writeln!(out, "{}", report.summary())?;
            if report.malformed > 0 {
                TsOutcome::Incomplete
            } else {
                TsOutcome::Done
            }
        }
        TsAction::Agg(query) => {
            let points = client.ts_agg(&query)?;
            print_points(out, &points)?;
            if points.is_empty() {
                TsOutcome::NotFound
            } else {
                TsOutcome::Done
            }
        }
    };
    out.flush()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_short_and_exact() {
        assert_eq!(format_value(0.75), "0.75");
        assert_eq!(format_value(12.0), "12");
        assert_eq!(format_value(-0.0), "-0");
        assert_eq!(format_value(1e300), "1e300");
        assert_eq!(format_value(1.5e-7), "1.5e-7");
        assert_eq!(format_value(123456.789), "123456.789");
        for v in [0.1 + 0.2, 1e300, 5e-324, -1234.5e-9] {
            assert_eq!(format_value(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn series_and_label_options_merge() {
        let l = LabelArgs {
            labels: Some("host=a".into()),
            label: vec!["core=0".into()],
        };
        let k = series_key("cpu{dc=x}", &l).unwrap();
        assert_eq!(k.canonical(), "cpu{core=0,dc=x,host=a}");
        assert!(series_key("cpu{host=b}", &l).is_err());
        assert!(matches!(
            retention_arg("7d"),
            Ok(Retention::Ms(604_800_000))
        ));
        assert!(matches!(retention_arg("forever"), Ok(Retention::Forever)));
        assert!(retention_arg("7").is_err());
    }
}
