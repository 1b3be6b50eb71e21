//! Sequence numbers and internal keys.
//!
//! Every write gets a sequence number; an internal key is
//! (user key, sequence, kind). Internal keys sort by user key ascending,
//! then sequence descending, so the newest version of a key comes first.
//! Reads carry a snapshot sequence and ignore anything newer. Newest-wins,
//! tombstones, snapshots and consistent scans are all this one rule.
//!
//! Encoded (in tables):
//!
//! ```text
//! +-----------------+------------------------------------+
//! | user key (n B)  | trailer: u64 BE = seq << 8 | kind  |
//! +-----------------+------------------------------------+
//! ```

use std::cmp::Ordering;

/// A sequence number. Only the low 56 bits are used.
pub type SeqNo = u64;

/// The largest sequence number.
pub const SEQ_MAX: SeqNo = (1 << 56) - 1;

/// Bytes of the trailer after the user key.
pub const TRAILER_LEN: usize = 8;

/// What an internal key records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: the key is deleted as of this sequence.
    Delete = 0,
    /// A value.
    Put = 1,
}

impl ValueKind {
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

/// Appends the encoded internal key for (`user_key`, `seq`, `kind`).
pub fn encode_internal_key(out: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: ValueKind) {
    out.extend_from_slice(user_key);
    out.extend_from_slice(&((seq << 8) | kind as u64).to_be_bytes());
}

/// The encoded internal key as a new vector.
pub fn internal_key(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    encode_internal_key(&mut v, user_key, seq, kind);
    v
}

/// Splits an encoded internal key; `None` if it is too short or its kind
/// byte is unknown.
pub fn split_internal_key(ikey: &[u8]) -> Option<(&[u8], SeqNo, ValueKind)> {
    let split = ikey.len().checked_sub(TRAILER_LEN)?;
    let (user, trailer) = ikey.split_at(split);
    let t = u64::from_be_bytes(trailer.try_into().ok()?);
    let kind = ValueKind::from_u8((t & 0xff) as u8)?;
    Some((user, t >> 8, kind))
}

/// The user-key part of an encoded internal key (the whole slice if it is
/// shorter than a trailer).
pub fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

/// Orders encoded internal keys: user key ascending, then trailer
/// (sequence, kind) descending.
pub fn compare_internal_keys(a: &[u8], b: &[u8]) -> Ordering {
    let (ua, ta) = a.split_at(a.len().saturating_sub(TRAILER_LEN));
    let (ub, tb) = b.split_at(b.len().saturating_sub(TRAILER_LEN));
    ua.cmp(ub).then_with(|| tb.cmp(ta))
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` if there is none (the prefix is all 0xff).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_user_key_major() {
        let a5 = internal_key(b"a", 5, ValueKind::Put);
        let a7 = internal_key(b"a", 7, ValueKind::Delete);
        let ab1 = internal_key(b"ab", 1, ValueKind::Put);
        assert_eq!(compare_internal_keys(&a7, &a5), Ordering::Less);
        assert_eq!(compare_internal_keys(&a5, &ab1), Ordering::Less);
        assert_eq!(compare_internal_keys(&a7, &ab1), Ordering::Less);
        assert_eq!(
            split_internal_key(&a7),
            Some((&b"a"[..], 7, ValueKind::Delete))
        );
        assert_eq!(split_internal_key(b"short"), None);
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }
}
