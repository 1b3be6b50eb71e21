//! `cityhall check DIR`: offline verification of every file of a database.
//!
//! Reads, never writes: `CURRENT`, the manifest it names (every edit's crc
//! and structure), every WAL segment the manifest still needs (every
//! record's crc, segment number, sequence continuity; a torn tail is
//! reported as what it is: the unacknowledged end of the last write, which
//! the next open cuts off), and every table (each block's crc and
//! structure, key order, index, filter, footer, and that the file's
//! contents match what the manifest says of it). Files the manifest does
//! not name are listed as leftovers. Each problem names the file and the
//! offset.

use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
use crate::io::{read_all, Fs, OpenOptions};
use crate::manifest::{self, manifest_name};
use crate::sstable::Table;
use crate::types::{compare_internal_keys, user_key};
use crate::wal::reader::{replay_segment, SegmentEnd};
use crate::wal::segment::{parse_segment_name, segment_name};

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// One line per file checked, saying what was found.
    pub checked: Vec<String>,
    /// Notes that are not damage (a torn tail, leftover files).
    pub notes: Vec<String>,
    /// Damage: each names the file and offset.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the database in `dir`.
pub fn check_dir(fs: &dyn Fs, dir: &Path) -> CheckReport {
    let mut r = CheckReport::default();
    let number = match manifest::read_current(fs, dir) {
        Ok(Some(n)) => n,
        Ok(None) => {
            r.problems.push(format!(
                "{}: no CURRENT file: not a CityHall database",
                dir.display()
            ));
            return r;
        }
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    let state = match manifest::recover(fs, dir, number) {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    r.checked.push(format!(
        "{}: ok: {} tables, log number {}, last sequence {}",
        manifest_name(number),
        state.tables.len(),
        state.log_number,
        state.last_sequence
    ));
    let names = match fs.list(dir) {
        Ok(n) => n,
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    check_wal(
        fs,
        dir,
        &names,
        state.log_number,
        state.last_sequence,
        &mut r,
    );
    check_tables(fs, dir, &state, &mut r);
    for name in &names {
        let leftover = match name.strip_suffix(".sst") {
            Some(n) => n
                .parse::<u64>()
                .is_ok_and(|n| !state.tables.contains_key(&n)),
            None => {
                name.ends_with(".tmp")
                    || (name.starts_with("MANIFEST-") && *name != manifest_name(number))
            }
        };
        if leftover {
            r.notes.push(format!(
                "{name}: not referenced by the manifest; removed at next open"
            ));
        }
    }
    r
}

fn check_wal(
    fs: &dyn Fs,
    dir: &Path,
    names: &[String],
    log_number: u64,
    last_sequence: u64,
    r: &mut CheckReport,
) {
    let mut segs: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_name(n))
        .filter(|&n| n >= log_number)
        .collect();
    segs.sort_unstable();
    let mut last_seq = last_sequence;
    let mut torn: Option<(String, u64)> = None;
    for n in segs {
        let path = dir.join(segment_name(n));
        let data = match fs
            .open(&path, OpenOptions::read())
            .and_then(|f| read_all(&*f))
        {
            Ok(d) => d,
            Err(e) => {
                r.problems.push(e.to_string());
                continue;
            }
        };
        let mut records = 0u64;
        match replay_segment(&path, &data, n as u32, last_seq, |_, _| {
            records += 1;
            Ok(())
        }) {
            Ok((end, seq)) => {
                if records > 0 {
                    if let Some((file, offset)) = torn.take() {
                        r.problems.push(format!(
                            "corruption in {file} at offset {offset}: bad record in a segment \
                             that later segments follow"
                        ));
                    }
                }
                last_seq = seq;
                r.checked.push(format!(
                    "{}: ok: {records} records, data ends at offset {}",
                    segment_name(n),
                    end.offset()
                ));
                if let SegmentEnd::Torn { offset } = end {
                    torn = Some((path.display().to_string(), offset));
                }
            }
            Err(e) => r.problems.push(e.to_string()),
        }
    }
    if let Some((file, offset)) = torn {
        r.notes.push(format!(
            "{file}: torn tail at offset {offset} (a write that was never acknowledged; \
             cut off at next open)"
        ));
    }
}

fn check_tables(fs: &dyn Fs, dir: &Path, state: &manifest::ManifestState, r: &mut CheckReport) {
    let mut by_level: std::collections::BTreeMap<u32, Vec<&manifest::TableEntry>> =
        Default::default();
    for entry in state.tables.values() {
        let path = dir.join(format!("{:06}.sst", entry.number));
        let result = fs
            .open(&path, OpenOptions::read())
            .and_then(|f| Table::verify_file(Arc::clone(&f)).map(|rep| (f, rep)));
        match result {
            Ok((f, rep)) => {
                let size = f.len().unwrap_or(0);
                if size != entry.size {
                    r.problems.push(format!(
                        "{}: size {size} differs from the manifest's {}",
                        path.display(),
                        entry.size
                    ));
                }
                r.checked.push(format!(
                    "{:06}.sst: ok: level {}, {} entries in {} data blocks, {} bytes",
                    entry.number, entry.level, rep.entries, rep.data_blocks, rep.file_size
                ));
            }
            Err(e @ Error::Corruption { .. }) => r.problems.push(e.to_string()),
            Err(e) => r.problems.push(format!("{}: {e}", path.display())),
        }
        by_level.entry(entry.level).or_default().push(entry);
    }
    for (level, mut tables) in by_level {
        if level == 0 {
            continue;
        }
        tables.sort_by(|a, b| compare_internal_keys(&a.smallest, &b.smallest));
        for pair in tables.windows(2) {
            if user_key(&pair[0].largest) >= user_key(&pair[1].smallest) {
                r.problems.push(format!(
                    "level {level}: tables {:06}.sst and {:06}.sst overlap",
                    pair[0].number, pair[1].number
                ));
            }
        }
    }
}
