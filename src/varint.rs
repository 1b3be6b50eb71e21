//! LEB128 variable-length unsigned integers.

/// Appends `v` as a varint (1 to 10 bytes).
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint from the front of `data`, advancing it; `None` if it is
/// truncated or longer than 10 bytes.
pub fn get(data: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *data = &data[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            super::put(&mut buf, v);
            let mut s = &buf[..];
            assert_eq!(super::get(&mut s), Some(v));
            assert!(s.is_empty());
        }
        assert_eq!(super::get(&mut &[0x80u8][..]), None);
    }
}
