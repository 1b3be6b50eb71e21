//! [`SeriesKey`]: what names a series — a name plus optional labels — its
//! one canonical text form, and [`LabelMatcher`]s that select series.
//!
//! The canonical form is the name alone, or the name followed by the
//! labels sorted by key: `system.cpu.load{core=0,host=a}`. It is what the
//! catalog stores and what the protocol carries, so `host=a,core=0` and
//! `core=0,host=a` name the same series. The characters that structure it
//! (`{ } , =`) and control characters are refused in names, keys and
//! values, so every canonical form parses back to the key it came from.
//!
//! Bounds: name up to [`SERIES_NAME_BYTES_MAX`] bytes of
//! `[A-Za-z0-9_.:/-]`; up to [`LABELS_MAX`] labels, keys up to
//! [`LABEL_KEY_BYTES_MAX`] bytes of `[A-Za-z0-9_.:-]`, values of 1 to
//! [`LABEL_VALUE_BYTES_MAX`] bytes; the canonical form up to
//! [`SERIES_KEY_BYTES_MAX`] bytes.

use std::fmt;

use crate::error::{Error, Result};

/// Longest series name.
pub const SERIES_NAME_BYTES_MAX: usize = 256;
/// Most labels on one series.
pub const LABELS_MAX: usize = 16;
/// Longest label key.
pub const LABEL_KEY_BYTES_MAX: usize = 64;
/// Longest label value.
pub const LABEL_VALUE_BYTES_MAX: usize = 256;
/// Longest canonical form (name and labels).
pub const SERIES_KEY_BYTES_MAX: usize = 1024;

/// A series' identity: name and labels sorted by key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    name: String,
    labels: Vec<(String, String)>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// Whether every byte of `s` is ASCII alphanumeric or one of `extra`
/// (the common case, checked without decoding characters).
fn all_ascii_in(s: &str, extra: &[u8]) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > SERIES_NAME_BYTES_MAX {
        return Err(invalid(format!(
            "series name of {} bytes: must be 1 to {SERIES_NAME_BYTES_MAX}",
            name.len()
        )));
    }
    if all_ascii_in(name, b"_.:/-") {
        return Ok(());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:/-".contains(*c)))
    {
        return Err(invalid(format!(
            "series name {name:?}: character {c:?} not allowed (use A-Z a-z 0-9 _ . : / -)"
        )));
    }
    Ok(())
}

fn check_label(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.len() > LABEL_KEY_BYTES_MAX {
        return Err(invalid(format!(
            "label key {key:?}: must be 1 to {LABEL_KEY_BYTES_MAX} bytes"
        )));
    }
    if !all_ascii_in(key, b"_.:-") {
        if let Some(c) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_.:-".contains(*c)))
        {
            return Err(invalid(format!(
                "label key {key:?}: character {c:?} not allowed (use A-Z a-z 0-9 _ . : -)"
            )));
        }
    }
    if value.is_empty() || value.len() > LABEL_VALUE_BYTES_MAX {
        return Err(invalid(format!(
            "label {key}: value must be 1 to {LABEL_VALUE_BYTES_MAX} bytes, not {}",
            value.len()
        )));
    }
    let plain = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && !b",={}".contains(&b));
    if plain {
        return Ok(());
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || ",={}".contains(*c))
    {
        return Err(invalid(format!(
            "label {key}: character {c:?} not allowed in a value"
        )));
    }
    Ok(())
}

impl SeriesKey {
    /// A key from a name and labels in any order; refuses bad characters,
    /// bounds and repeated label keys.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(name: &str, labels: &[(K, V)]) -> Result<Self> {
        check_name(name)?;
        if labels.len() > LABELS_MAX {
            return Err(invalid(format!(
                "{} labels: at most {LABELS_MAX}",
                labels.len()
            )));
        }
        let mut sorted = Vec::with_capacity(labels.len());
        for (k, v) in labels {
            check_label(k.as_ref(), v.as_ref())?;
            sorted.push((k.as_ref().to_string(), v.as_ref().to_string()));
        }
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(invalid(format!("label {} given twice", w[0].0)));
        }
        let key = SeriesKey {
            name: name.to_string(),
            labels: sorted,
        };
        let len = key.canonical_len();
        if len > SERIES_KEY_BYTES_MAX {
            return Err(invalid(format!(
                "series {} of {len} bytes exceeds {SERIES_KEY_BYTES_MAX}",
                key.canonical()
            )));
        }
        Ok(key)
    }

    /// Parses `name` or `name{k=v,...}` (labels in any order).
    pub fn parse(text: &str) -> Result<Self> {
        match text.split_once('{') {
            None => Self::new::<&str, &str>(text, &[]),
            Some((name, rest)) => {
                let Some(inner) = rest.strip_suffix('}') else {
                    return Err(invalid(format!("series {text:?}: missing closing brace")));
                };
                // Borrowed pairs: `new` copies each once.
                let mut labels: Vec<(&str, &str)> = Vec::new();
                if !inner.is_empty() {
                    for pair in inner.split(',') {
                        match pair.split_once('=') {
                            Some(kv) => labels.push(kv),
                            None => {
                                return Err(invalid(format!("label {pair:?} is not key=value")))
                            }
                        }
                    }
                }
                Self::new(name, &labels)
            }
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The labels, sorted by key.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn canonical_len(&self) -> usize {
        let labels: usize = self.labels.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        self.name.len() + labels + usize::from(!self.labels.is_empty())
    }

    /// The canonical text form.
    pub fn canonical(&self) -> String {
        let mut s = String::with_capacity(self.canonical_len());
        s.push_str(&self.name);
        for (i, (k, v)) in self.labels.iter().enumerate() {
            s.push(if i == 0 { '{' } else { ',' });
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        if !self.labels.is_empty() {
            s.push('}');
        }
        s
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Parses `k=v,k2=v2` (empty text: no labels).
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(invalid(format!("label {pair:?} is not key=value"))),
        })
        .collect()
}

/// How a matcher compares a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// The series has the label with exactly this value.
    Eq,
    /// The series lacks the label or has another value.
    Ne,
}

/// A condition on one label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMatcher {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value compared with.
    pub value: String,
}

impl LabelMatcher {
    /// Parses `k=v` or `k!=v`.
    pub fn parse(text: &str) -> Result<Self> {
        let (key, op, value) = if let Some((k, v)) = text.split_once("!=") {
            (k, MatchOp::Ne, v)
        } else if let Some((k, v)) = text.split_once('=') {
            (k, MatchOp::Eq, v)
        } else {
            return Err(invalid(format!(
                "label matcher {text:?} is not key=value or key!=value"
            )));
        };
        Self::new(key, op, value)
    }

    /// A matcher from its parts, checked like a label.
    pub fn new(key: &str, op: MatchOp, value: &str) -> Result<Self> {
        check_label(key, value)?;
        Ok(LabelMatcher {
            key: key.to_string(),
            op,
            value: value.to_string(),
        })
    }

    /// Parses a comma-separated list of matchers.
    pub fn parse_list(text: &str) -> Result<Vec<Self>> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        text.split(',').map(Self::parse).collect()
    }

    /// Whether `series` satisfies the matcher.
    pub fn matches(&self, series: &SeriesKey) -> bool {
        let have = series.label(&self.key);
        match self.op {
            MatchOp::Eq => have == Some(self.value.as_str()),
            MatchOp::Ne => have != Some(self.value.as_str()),
        }
    }
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
        };
        write!(f, "{}{op}{}", self.key, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_sorts_labels_and_parses_back() {
        let a = SeriesKey::new("system.cpu.load", &[("host", "a"), ("core", "0")]).unwrap();
        assert_eq!(a.canonical(), "system.cpu.load{core=0,host=a}");
        assert_eq!(SeriesKey::parse(&a.canonical()).unwrap(), a);
        assert_eq!(
            SeriesKey::parse("system.cpu.load{host=a,core=0}").unwrap(),
            a
        );
        let b = SeriesKey::parse("up").unwrap();
        assert_eq!(b.canonical(), "up");
        assert!(b.labels().is_empty());
        assert_eq!(a.label("host"), Some("a"));
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        for (text, why) in [
            ("", "1 to 256"),
            ("a b", "' '"),
            ("a{b}", "not key=value"),
            ("a{b=1", "closing brace"),
            ("a{b=1,b=2}", "twice"),
            ("a{b=}", "value must be"),
            ("a{=1}", "label key"),
            ("a{b=x\ty}", "'\\t'"),
        ] {
            let e = SeriesKey::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let long = "x".repeat(SERIES_NAME_BYTES_MAX + 1);
        assert!(SeriesKey::parse(&long).is_err());
        let many: Vec<(String, String)> = (0..=LABELS_MAX)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(SeriesKey::new("a", &many).is_err());
    }

    #[test]
    fn matchers() {
        let s = SeriesKey::parse("m{host=a,dc=x}").unwrap();
        let m = LabelMatcher::parse_list("host=a,dc!=y").unwrap();
        assert!(m.iter().all(|m| m.matches(&s)));
        assert!(LabelMatcher::parse("zone!=q").unwrap().matches(&s));
        assert!(!LabelMatcher::parse("zone=q").unwrap().matches(&s));
        assert!(!LabelMatcher::parse("host!=a").unwrap().matches(&s));
        assert!(LabelMatcher::parse("host").is_err());
        assert_eq!(m[1].to_string(), "dc!=y");
    }
}
