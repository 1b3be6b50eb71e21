//! InfluxDB line protocol, the text format TSBS, Telegraf and InfluxDB
//! emit, parsed for bulk loading (`cityhall client ts import`).
//!
//! ```text
//! cpu,host=a,region=eu usage_user=12.5,usage_idle=80i,state="ok" 1700000000000000000
//! └┬┘ └──────┬───────┘ └─────────────────┬─────────────────────┘ └────────┬────────┘
//! measurement  tags (labels)        fields (one series each)     timestamp (ns by default)
//! ```
//!
//! - The measurement ends at the first unescaped `,` or space; tags are
//!   `,key=value` pairs up to the first unescaped space; fields are
//!   `key=value` pairs separated by `,` up to the next unescaped space
//!   outside a quoted string; an optional integer timestamp follows.
//! - Backslash escapes the next character (`\,` `\ ` `\=` `\\`) in the
//!   measurement, tag keys and values and field keys; in a string field
//!   value only `\"` and `\\` are escapes.
//! - Field values: floats (`1.5`, `-2e3`), integers (`12i`), unsigned
//!   integers (`12u`), strings (`"text"`) and booleans (`t`, `true`,
//!   `F`, `FALSE`, ...). Floats and integers become points (an integer
//!   beyond 2^53 loses precision as an f64); strings and booleans are
//!   reported as skipped. NaN and infinities are refused, as everywhere
//!   in the time-series layer.
//! - Empty lines and lines starting with `#` carry nothing.
//!
//! Each numeric field becomes the series `measurement.field` with the
//! tags as its labels: `cpu.usage_user{host=a,region=eu}`.

use std::fmt;

/// Units of the timestamps in the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Nanoseconds (the line protocol's default).
    #[default]
    Nanoseconds,
    /// Microseconds.
    Microseconds,
    /// Milliseconds (CityHall's own unit).
    Milliseconds,
    /// Seconds.
    Seconds,
}

impl Precision {
    /// Parses `ns`, `us`, `ms` or `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            _ => return None,
        })
    }

    /// `t` in these units as epoch milliseconds (floored), or `None` if
    /// it does not fit.
    pub fn to_ms(self, t: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(t.div_euclid(1_000_000)),
            Precision::Microseconds => Some(t.div_euclid(1_000)),
            Precision::Milliseconds => Some(t),
            Precision::Seconds => t.checked_mul(1_000),
        }
    }
}

/// A field's value as the line carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// A float or an integer, as an f64 (finite).
    Number(f64),
    /// A string field (not stored).
    Text,
    /// A boolean field (not stored).
    Bool,
}

/// One parsed line.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The measurement, unescaped.
    pub measurement: String,
    /// The tags, unescaped, in the order given.
    pub tags: Vec<(String, String)>,
    /// The fields, keys unescaped, in the order given.
    pub fields: Vec<(String, FieldValue)>,
    /// The timestamp as written (in the input's precision), if any.
    pub timestamp: Option<i64>,
}

/// Why a line is not valid line protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError(pub String);

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, LineError> {
    Err(LineError(msg.into()))
}

/// Parses one line (without its newline). `Ok(None)` for an empty or
/// comment line.
pub fn parse_line(line: &str) -> Result<Option<Line>, LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let b = trimmed.as_bytes();
    let mut at = 0;

    // Measurement and tags: up to the first unescaped space.
    let (measurement, end) = scan_escaped(b, at, b",  ");
    at = end;
    if measurement.is_empty() {
        return err("missing measurement");
    }
    let mut tags = Vec::new();
    while b.get(at) == Some(&b',') {
        let (key, end) = scan_escaped(b, at + 1, b"=, ");
        if b.get(end) != Some(&b'=') {
            return err(format!("tag {key:?} has no '=value'"));
        }
        let (value, end) = scan_escaped(b, end + 1, b", ");
        if key.is_empty() || value.is_empty() {
            return err(format!("empty tag key or value in {key:?}={value:?}"));
        }
        tags.push((key, value));
        at = end;
    }
    if b.get(at) != Some(&b' ') {
        return err(format!("no fields after measurement {measurement:?}"));
    }
    while b.get(at) == Some(&b' ') {
        at += 1;
    }

    // Fields.
    let mut fields = Vec::new();
    loop {
        let (key, end) = scan_escaped(b, at, b"=, ");
        if b.get(end) != Some(&b'=') || key.is_empty() {
            return err(format!("field {key:?} has no '=value'"));
        }
        let (value, end) = field_value(b, end + 1, &key)?;
        fields.push((key, value));
        at = end;
        match b.get(at) {
            Some(b',') => at += 1,
            _ => break,
        }
    }

    // Timestamp.
    while b.get(at) == Some(&b' ') {
        at += 1;
    }
    let rest = trimmed[at..].trim_end();
    let timestamp = if rest.is_empty() {
        None
    } else {
        match rest.parse::<i64>() {
            Ok(t) => Some(t),
            Err(_) => return err(format!("timestamp {rest:?} is not an integer")),
        }
    };
    Ok(Some(Line {
        measurement,
        tags,
        fields,
        timestamp,
    }))
}

/// Reads an escaped token from `at` up to (not including) the first
/// unescaped byte of `stops`; returns it unescaped and where it ended.
fn scan_escaped(b: &[u8], mut at: usize, stops: &[u8]) -> (String, usize) {
    let mut out = Vec::new();
    while let Some(&c) = b.get(at) {
        if c == b'\\' {
            if let Some(&next) = b.get(at + 1) {
                if matches!(next, b',' | b' ' | b'=' | b'\\') {
                    out.push(next);
                    at += 2;
                    continue;
                }
            }
            out.push(c);
            at += 1;
            continue;
        }
        if stops.contains(&c) {
            break;
        }
        out.push(c);
        at += 1;
    }
    // The input is a &str and escapes only drop ASCII backslashes before
    // ASCII bytes, so the bytes stay UTF-8.
    (String::from_utf8_lossy(&out).into_owned(), at)
}

/// Parses a field value starting at `at`; returns it and where it ended
/// (at a `,`, a space or the end).
fn field_value(b: &[u8], at: usize, key: &str) -> Result<(FieldValue, usize), LineError> {
    if b.get(at) == Some(&b'"') {
        let mut i = at + 1;
        loop {
            match b.get(i) {
                None => return err(format!("field {key:?}: string value has no closing quote")),
                Some(b'\\') => i += 2,
                Some(b'"') => return Ok((FieldValue::Text, i + 1)),
                Some(_) => i += 1,
            }
        }
    }
    let end = b[at..]
        .iter()
        .position(|&c| c == b',' || c == b' ')
        .map_or(b.len(), |p| at + p);
    // Only ASCII bytes stop the scan, so this slice is UTF-8.
    let text = String::from_utf8_lossy(&b[at..end]);
    let text = text.as_ref();
    let value = match text {
        "" => return err(format!("field {key:?} has an empty value")),
        "t" | "T" | "true" | "True" | "TRUE" | "f" | "F" | "false" | "False" | "FALSE" => {
            FieldValue::Bool
        }
        _ => {
            let v = if let Some(digits) = text.strip_suffix('i') {
                digits
                    .parse::<i64>()
                    .map(|v| v as f64)
                    .map_err(|_| LineError(format!("field {key:?}: {text:?} is not an integer")))?
            } else if let Some(digits) = text.strip_suffix('u') {
                digits.parse::<u64>().map(|v| v as f64).map_err(|_| {
                    LineError(format!(
                        "field {key:?}: {text:?} is not an unsigned integer"
                    ))
                })?
            } else if text
                .bytes()
                .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
            {
                text.parse::<f64>()
                    .map_err(|_| LineError(format!("field {key:?}: {text:?} is not a number")))?
            } else {
                return err(format!("field {key:?}: {text:?} is not a number"));
            };
            if !v.is_finite() {
                return err(format!(
                    "field {key:?}: {text:?} is not finite (NaN and infinities are refused)"
                ));
            }
            FieldValue::Number(v)
        }
    };
    Ok((value, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Line {
        parse_line(s).unwrap().unwrap()
    }

    #[test]
    fn tsbs_cpu_line() {
        let l = line("cpu,hostname=host_0,region=eu-west-1 usage_user=58i,usage_system=2.5 1451606400000000000");
        assert_eq!(l.measurement, "cpu");
        assert_eq!(
            l.tags,
            vec![
                ("hostname".to_string(), "host_0".to_string()),
                ("region".to_string(), "eu-west-1".to_string())
            ]
        );
        assert_eq!(
            l.fields,
            vec![
                ("usage_user".to_string(), FieldValue::Number(58.0)),
                ("usage_system".to_string(), FieldValue::Number(2.5))
            ]
        );
        assert_eq!(l.timestamp, Some(1_451_606_400_000_000_000));
    }

    #[test]
    fn escapes_strings_and_booleans() {
        let l = line(r#"my\ m\,x,t\=k=v\ 1 s="a \"q\", b",ok=true,n=-1e3,u=7u"#);
        assert_eq!(l.measurement, "my m,x");
        assert_eq!(l.tags, vec![("t=k".to_string(), "v 1".to_string())]);
        assert_eq!(
            l.fields,
            vec![
                ("s".to_string(), FieldValue::Text),
                ("ok".to_string(), FieldValue::Bool),
                ("n".to_string(), FieldValue::Number(-1000.0)),
                ("u".to_string(), FieldValue::Number(7.0)),
            ]
        );
        assert_eq!(l.timestamp, None);
    }

    #[test]
    fn empty_and_comment_lines() {
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(parse_line("   ").unwrap(), None);
        assert_eq!(parse_line("# a comment").unwrap(), None);
        assert!(parse_line("m v=1 5\r").unwrap().is_some());
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let cases = [
            ("cpu", "no fields"),
            ("cpu,host usage=1", "has no '=value'"),
            ("cpu usage", "has no '=value'"),
            ("cpu usage=", "empty value"),
            ("cpu usage=abc", "not a number"),
            ("cpu usage=1.5i", "not an integer"),
            ("cpu usage=NaN", "not a number"),
            ("cpu usage=1e999", "not finite"),
            ("cpu usage=1 12x", "not an integer"),
            ("cpu usage=1 12 13", "not an integer"),
            (r#"cpu s="open"#, "no closing quote"),
            (",host=a v=1", "missing measurement"),
        ];
        for (text, want) in cases {
            let e = parse_line(text).unwrap_err();
            assert!(e.0.contains(want), "{text:?}: {e} lacks {want:?}");
        }
    }

    #[test]
    fn precision_to_ms_floors() {
        assert_eq!(Precision::Nanoseconds.to_ms(1_999_999), Some(1));
        assert_eq!(Precision::Nanoseconds.to_ms(-1), Some(-1));
        assert_eq!(Precision::Microseconds.to_ms(2_500), Some(2));
        assert_eq!(Precision::Seconds.to_ms(3), Some(3_000));
        assert_eq!(Precision::Seconds.to_ms(i64::MAX), None);
        assert_eq!(Precision::parse("us"), Some(Precision::Microseconds));
        assert_eq!(Precision::parse("h"), None);
    }
}
