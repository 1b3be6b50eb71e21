//! What the /proc parsers share: the error that names the file, the line
//! and what was wrong, and number parsing that never overflows.

use std::fmt;

/// A /proc or /sys text that did not have the expected shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The file the text came from (`/proc/stat`, ...).
    pub file: &'static str,
    /// Its 1-based line, 0 when the whole text is at fault.
    pub line: usize,
    /// What was wrong.
    pub what: String,
}

impl ParseError {
    /// An error at `line` (1-based) of `file`.
    pub fn new(file: &'static str, line: usize, what: impl Into<String>) -> Self {
        ParseError {
            file,
            line,
            what: what.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.what)
        } else {
            write!(f, "{} line {}: {}", self.file, self.line, self.what)
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses an unsigned decimal counter (the kernel prints them as `%llu`).
pub(crate) fn counter(
    file: &'static str,
    line: usize,
    field: &str,
    text: &str,
) -> Result<u64, ParseError> {
    text.parse::<u64>().map_err(|_| {
        ParseError::new(
            file,
            line,
            format!("{field}: {text:?} is not an unsigned integer"),
        )
    })
}

/// Whether every character of `s` is an ASCII digit (and there is one).
pub(crate) fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}
