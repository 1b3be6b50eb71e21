//! [`WriteBatch`]: a group of puts and deletes applied atomically.
//!
//! The batch is also the payload of a WAL record:
//!
//! ```text
//! +----------------+-------------+--------------------------------------+
//! | first seq u64  | count u32   | count x entry                        |
//! +----------------+-------------+--------------------------------------+
//! entry: kind u8 (0 delete, 1 put) | key len varint | key
//!        | (put only) value len varint | value
//! ```
//! All integers little-endian; entry i has sequence `first seq + i`.

use crate::error::{Error, Result};
use crate::types::{SeqNo, ValueKind};
use crate::varint;

/// One operation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

impl BatchOp {
    /// The key the operation touches.
    pub fn key(&self) -> &[u8] {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }
}

/// Puts and deletes that become durable and visible together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    bytes: usize,
}

/// Fixed bytes of an encoded batch before its entries.
pub const BATCH_HEADER_LEN: usize = 12;

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        let (key, value) = (key.into(), value.into());
        self.bytes += key.len() + value.len() + 11;
        self.ops.push(BatchOp::Put { key, value });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        let key = key.into();
        self.bytes += key.len() + 6;
        self.ops.push(BatchOp::Delete { key });
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// An upper bound of the encoded size in bytes.
    pub fn encoded_size_max(&self) -> usize {
        BATCH_HEADER_LEN + self.bytes
    }

    /// The operations in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Appends the WAL payload encoding with first sequence `seq`.
    pub fn encode(&self, seq: SeqNo, out: &mut Vec<u8>) {
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&(self.ops.len() as u32).to_le_bytes());
        for op in &self.ops {
            match op {
                BatchOp::Put { key, value } => {
                    out.push(ValueKind::Put as u8);
                    varint::put(out, key.len() as u64);
                    out.extend_from_slice(key);
                    varint::put(out, value.len() as u64);
                    out.extend_from_slice(value);
                }
                BatchOp::Delete { key } => {
                    out.push(ValueKind::Delete as u8);
                    varint::put(out, key.len() as u64);
                    out.extend_from_slice(key);
                }
            }
        }
    }

    /// Decodes a WAL payload into (first sequence, batch). The error text
    /// says what is malformed; callers attach the file and offset.
    pub fn decode(mut data: &[u8]) -> std::result::Result<(SeqNo, WriteBatch), String> {
        let seq = take_u64(&mut data).ok_or("batch header truncated")?;
        let count = take_u32(&mut data).ok_or("batch header truncated")?;
        let mut batch = WriteBatch::new();
        for i in 0..count {
            let (&kind, rest) = data
                .split_first()
                .ok_or_else(|| format!("batch entry {i} of {count} missing"))?;
            data = rest;
            let key = take_slice(&mut data).ok_or_else(|| format!("batch entry {i}: bad key"))?;
            match ValueKind::from_u8(kind) {
                Some(ValueKind::Put) => {
                    let value = take_slice(&mut data)
                        .ok_or_else(|| format!("batch entry {i}: bad value"))?;
                    batch.put(key, value);
                }
                Some(ValueKind::Delete) => {
                    batch.delete(key);
                }
                None => return Err(format!("batch entry {i}: unknown kind {kind}")),
            }
        }
        if !data.is_empty() {
            return Err(format!("{} trailing bytes after batch", data.len()));
        }
        Ok((seq, batch))
    }

    /// Checks keys and values against the bounds.
    pub fn validate(
        &self,
        key_bytes_max: usize,
        value_bytes_max: usize,
        batch_bytes_max: usize,
    ) -> Result<()> {
        if self.encoded_size_max() > batch_bytes_max {
            return Err(Error::LimitExceeded {
                what: format!(
                    "batch of {} bytes exceeds batch_size_bytes_max {batch_bytes_max}",
                    self.encoded_size_max()
                ),
            });
        }
        for op in &self.ops {
            let key = op.key();
            if key.is_empty() {
                return Err(Error::InvalidArgument("empty key".into()));
            }
            if key.len() > key_bytes_max {
                return Err(Error::LimitExceeded {
                    what: format!(
                        "key of {} bytes exceeds key_size_bytes_max {key_bytes_max}",
                        key.len()
                    ),
                });
            }
            if let BatchOp::Put { value, .. } = op {
                if value.len() > value_bytes_max {
                    return Err(Error::LimitExceeded {
                        what: format!(
                            "value of {} bytes exceeds value_size_bytes_max {value_bytes_max}",
                            value.len()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

fn take_u64(data: &mut &[u8]) -> Option<u64> {
    let (head, rest) = data.split_first_chunk::<8>()?;
    *data = rest;
    Some(u64::from_le_bytes(*head))
}

fn take_u32(data: &mut &[u8]) -> Option<u32> {
    let (head, rest) = data.split_first_chunk::<4>()?;
    *data = rest;
    Some(u32::from_le_bytes(*head))
}

fn take_slice<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint::get(data)?).ok()?;
    if data.len() < len {
        return None;
    }
    let (s, rest) = data.split_at(len);
    *data = rest;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut b = WriteBatch::new();
        b.put(b"k1".to_vec(), b"v1".to_vec()).delete(b"k2".to_vec());
        let mut enc = Vec::new();
        b.encode(42, &mut enc);
        assert!(enc.len() <= b.encoded_size_max());
        let (seq, d) = WriteBatch::decode(&enc).unwrap();
        assert_eq!((seq, &d), (42, &b));
        for cut in 0..enc.len() {
            assert!(WriteBatch::decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
    }
}
