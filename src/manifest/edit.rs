//! Version edits: the records of the manifest.
//!
//! An edit is a sequence of tagged fields; absent fields are unchanged.
//!
//! ```text
//! tag 1  log_number        varint   first WAL segment still needed
//! tag 2  next_file_number  varint
//! tag 3  last_sequence     varint   covers every flushed sequence
//! tag 4  new table         level varint | number varint | size varint
//!                          | smallest len varint | smallest (internal key)
//!                          | largest len varint | largest (internal key)
//! tag 5  deleted table     level varint | number varint
//! ```
//! An unknown tag is corruption: an edit is never half understood.

use crate::varint;

/// A live table as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// Level (0 = overlapping, newest files last).
    pub level: u32,
    /// File number (`NNNNNN.sst`).
    pub number: u64,
    /// Size in bytes.
    pub size: u64,
    /// Smallest internal key.
    pub smallest: Vec<u8>,
    /// Largest internal key.
    pub largest: Vec<u8>,
}

/// A change to the database's persistent state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// New first needed WAL segment.
    pub log_number: Option<u64>,
    /// New next file number.
    pub next_file_number: Option<u64>,
    /// New last sequence.
    pub last_sequence: Option<u64>,
    /// Tables added.
    pub new_tables: Vec<TableEntry>,
    /// Tables removed: (level, number).
    pub deleted_tables: Vec<(u32, u64)>,
}

const TAG_LOG_NUMBER: u8 = 1;
const TAG_NEXT_FILE: u8 = 2;
const TAG_LAST_SEQ: u8 = 3;
const TAG_NEW_TABLE: u8 = 4;
const TAG_DELETED_TABLE: u8 = 5;

impl VersionEdit {
    /// Encodes the edit.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let field = |tag: u8, v: Option<u64>, out: &mut Vec<u8>| {
            if let Some(v) = v {
                out.push(tag);
                varint::put(out, v);
            }
        };
        field(TAG_LOG_NUMBER, self.log_number, out);
        field(TAG_NEXT_FILE, self.next_file_number, out);
        field(TAG_LAST_SEQ, self.last_sequence, out);
        for t in &self.new_tables {
            out.push(TAG_NEW_TABLE);
            varint::put(out, u64::from(t.level));
            varint::put(out, t.number);
            varint::put(out, t.size);
            varint::put(out, t.smallest.len() as u64);
            out.extend_from_slice(&t.smallest);
            varint::put(out, t.largest.len() as u64);
            out.extend_from_slice(&t.largest);
        }
        for &(level, number) in &self.deleted_tables {
            out.push(TAG_DELETED_TABLE);
            varint::put(out, u64::from(level));
            varint::put(out, number);
        }
    }

    /// Decodes an edit; the error says what is malformed.
    pub fn decode(mut data: &[u8]) -> Result<VersionEdit, String> {
        let mut e = VersionEdit::default();
        while let Some((&tag, rest)) = data.split_first() {
            data = rest;
            let mut num = |what: &str| varint::get(&mut data).ok_or(format!("bad {what}"));
            match tag {
                TAG_LOG_NUMBER => e.log_number = Some(num("log number")?),
                TAG_NEXT_FILE => e.next_file_number = Some(num("next file number")?),
                TAG_LAST_SEQ => e.last_sequence = Some(num("last sequence")?),
                TAG_NEW_TABLE => {
                    let level = u32::try_from(num("level")?).map_err(|_| "bad level")?;
                    let number = num("table number")?;
                    let size = num("table size")?;
                    let smallest = take_bytes(&mut data).ok_or("bad smallest key")?;
                    let largest = take_bytes(&mut data).ok_or("bad largest key")?;
                    e.new_tables.push(TableEntry {
                        level,
                        number,
                        size,
                        smallest,
                        largest,
                    });
                }
                TAG_DELETED_TABLE => {
                    let level = u32::try_from(num("level")?).map_err(|_| "bad level")?;
                    let number = num("table number")?;
                    e.deleted_tables.push((level, number));
                }
                other => return Err(format!("unknown edit tag {other}")),
            }
        }
        Ok(e)
    }
}

fn take_bytes(data: &mut &[u8]) -> Option<Vec<u8>> {
    let len = usize::try_from(varint::get(data)?).ok()?;
    if data.len() < len {
        return None;
    }
    let (b, rest) = data.split_at(len);
    *data = rest;
    Some(b.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = VersionEdit {
            log_number: Some(3),
            next_file_number: Some(9),
            last_sequence: Some(1000),
            new_tables: vec![TableEntry {
                level: 1,
                number: 7,
                size: 4096,
                smallest: b"a".to_vec(),
                largest: b"z".to_vec(),
            }],
            deleted_tables: vec![(0, 5)],
        };
        let mut buf = Vec::new();
        e.encode(&mut buf);
        assert_eq!(VersionEdit::decode(&buf).unwrap(), e);
        assert!(VersionEdit::decode(&[99]).is_err());
        assert!(VersionEdit::decode(&buf[..buf.len() - 1]).is_err());
    }
}
