//! The manifest: the durable record of which files make up the database.
//!
//! `MANIFEST-NNNNNN` is an append-only log of [`VersionEdit`]s, each framed
//! as `crc32 u32 LE | len u32 LE | edit` (crc over len and edit). `CURRENT`
//! names the live manifest; it is replaced atomically: write `CURRENT.tmp`,
//! fsync it, rename it over `CURRENT`, fsync the directory. A new manifest
//! (a full snapshot as its first edit) is started at every open.
//!
//! Every edit is synced before the change it describes takes effect, so a
//! torn last record describes a change that never happened and is dropped;
//! a bad record followed by a valid one is corruption.

pub mod edit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use edit::{TableEntry, VersionEdit};

use crate::error::{Error, Result};
use crate::io::{read_all, FileHandle, Fs, OpenOptions};

const RECORD_HEADER_LEN: usize = 8;
/// Largest manifest record accepted.
const RECORD_BYTES_MAX: usize = 64 << 20;

/// The name of `CURRENT`.
pub const CURRENT: &str = "CURRENT";

/// The file name of manifest `number`.
pub fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

/// The persistent state a manifest describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestState {
    /// First WAL segment still needed.
    pub log_number: u64,
    /// Next unused file number.
    pub next_file_number: u64,
    /// Sequence covered by the tables.
    pub last_sequence: u64,
    /// Live tables by number.
    pub tables: BTreeMap<u64, TableEntry>,
}

impl ManifestState {
    /// Applies an edit.
    pub fn apply(&mut self, e: &VersionEdit) {
        if let Some(v) = e.log_number {
            self.log_number = v;
        }
        if let Some(v) = e.next_file_number {
            self.next_file_number = v;
        }
        if let Some(v) = e.last_sequence {
            self.last_sequence = v;
        }
        for &(_, number) in &e.deleted_tables {
            self.tables.remove(&number);
        }
        for t in &e.new_tables {
            self.tables.insert(t.number, t.clone());
        }
    }

    /// The edit that recreates this state from nothing.
    pub fn snapshot_edit(&self) -> VersionEdit {
        VersionEdit {
            log_number: Some(self.log_number),
            next_file_number: Some(self.next_file_number),
            last_sequence: Some(self.last_sequence),
            new_tables: self.tables.values().cloned().collect(),
            deleted_tables: Vec::new(),
        }
    }
}

/// Frames one record.
fn frame(edit: &VersionEdit) -> Vec<u8> {
    let mut payload = Vec::new();
    edit.encode(&mut payload);
    let mut out = Vec::with_capacity(payload.len() + RECORD_HEADER_LEN);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

fn parse_record(data: &[u8]) -> Option<(usize, &[u8])> {
    let crc = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?);
    let len = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
    if len > RECORD_BYTES_MAX {
        return None;
    }
    let body = data.get(4..RECORD_HEADER_LEN + len)?;
    (crc32fast::hash(body) == crc).then(|| (RECORD_HEADER_LEN + len, &body[4..]))
}

/// Reads `CURRENT` and returns the live manifest's number, or `None` when
/// the directory holds no database.
pub fn read_current(fs: &dyn Fs, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(CURRENT);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let f = fs.open(&path, OpenOptions::read())?;
    let data = read_all(&*f)?;
    let text = std::str::from_utf8(&data)
        .map_err(|_| Error::corruption(&path, 0, "CURRENT is not UTF-8"))?;
    let number = text
        .strip_suffix('\n')
        .and_then(|n| n.strip_prefix("MANIFEST-"))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::corruption(
                &path,
                0,
                format!("CURRENT holds {text:?}, not a manifest name"),
            )
        })?;
    Ok(Some(number))
}

/// Replays manifest `number`.
pub fn recover(fs: &dyn Fs, dir: &Path, number: u64) -> Result<ManifestState> {
    let path = dir.join(manifest_name(number));
    let f = fs.open(&path, OpenOptions::read())?;
    let data = read_all(&*f)?;
    let mut state = ManifestState::default();
    let mut off = 0usize;
    let mut records = 0;
    while off < data.len() {
        match parse_record(&data[off..]) {
            Some((n, payload)) => {
                let edit = VersionEdit::decode(payload)
                    .map_err(|e| Error::corruption(&path, off as u64, e))?;
                state.apply(&edit);
                records += 1;
                off += n;
            }
            None => {
                if (off + 1..data.len()).any(|p| parse_record(&data[p..]).is_some()) {
                    return Err(Error::corruption(
                        &path,
                        off as u64,
                        "bad manifest record followed by valid records",
                    ));
                }
                break;
            }
        }
    }
    if records == 0 {
        return Err(Error::corruption(&path, 0, "manifest holds no valid edit"));
    }
    Ok(state)
}

/// Appends edits to the live manifest.
#[derive(Debug)]
pub struct ManifestWriter {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    number: u64,
    file: Arc<dyn FileHandle>,
    offset: u64,
}

impl ManifestWriter {
    /// Starts manifest `number` holding `state`, makes it durable and
    /// points `CURRENT` at it.
    pub fn create(fs: Arc<dyn Fs>, dir: &Path, number: u64, state: &ManifestState) -> Result<Self> {
        let path = dir.join(manifest_name(number));
        let file = fs.open(&path, OpenOptions::create_new())?;
        let rec = frame(&state.snapshot_edit());
        file.write_at(&rec, 0)?;
        file.sync_data()?;
        set_current(&*fs, dir, number)?;
        Ok(ManifestWriter {
            fs,
            dir: dir.to_path_buf(),
            number,
            file,
            offset: rec.len() as u64,
        })
    }

    /// Appends and syncs one edit. On error the manifest must not be
    /// written again (the database poisons itself).
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        let rec = frame(edit);
        self.file.write_at(&rec, self.offset)?;
        self.file.sync_data()?;
        self.offset += rec.len() as u64;
        Ok(())
    }

    /// This manifest's file number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Bytes written so far.
    pub fn size_bytes(&self) -> u64 {
        self.offset
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file system.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }
}

/// Points `CURRENT` at manifest `number` atomically and durably.
pub fn set_current(fs: &dyn Fs, dir: &Path, number: u64) -> Result<()> {
    let tmp = dir.join("CURRENT.tmp");
    let f = fs.open(&tmp, OpenOptions::write_create())?;
    f.set_len(0)?;
    f.write_at(format!("{}\n", manifest_name(number)).as_bytes(), 0)?;
    f.sync_all()?;
    fs.rename(&tmp, &dir.join(CURRENT))?;
    fs.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::{CrashMode, SimFs};

    #[test]
    fn create_append_recover_and_torn_tail() {
        let fs = SimFs::new(5);
        let dir = Path::new("/db");
        let afs: Arc<dyn Fs> = Arc::new(fs.clone());
        let st = ManifestState {
            log_number: 2,
            next_file_number: 3,
            ..Default::default()
        };
        let mut w = ManifestWriter::create(Arc::clone(&afs), dir, 1, &st).unwrap();
        w.append(&VersionEdit {
            last_sequence: Some(77),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(read_current(&fs, dir).unwrap(), Some(1));
        let got = recover(&fs, dir, 1).unwrap();
        assert_eq!(got.last_sequence, 77);
        assert_eq!(got.log_number, 2);
        // A torn last record is dropped.
        let path = dir.join(manifest_name(1));
        let mut bytes = fs.read_file(&path).unwrap();
        let full = bytes.clone();
        bytes.truncate(bytes.len() - 2);
        fs.write_file_durable(&path, &bytes);
        assert_eq!(recover(&fs, dir, 1).unwrap().last_sequence, 0);
        // A flipped bit in the first record, with a valid one after it, is corruption.
        let mut bad = full.clone();
        bad[9] ^= 1;
        fs.write_file_durable(&path, &bad);
        let err = recover(&fs, dir, 1).unwrap_err();
        assert!(matches!(err, Error::Corruption { offset: 0, .. }), "{err}");
        fs.crash(CrashMode::DropUnsynced);
    }
}
