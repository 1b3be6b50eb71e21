//! The bodies of the fuzz targets, shared by the cargo-fuzz crate
//! (`tools/fuzz`, nightly, libFuzzer) and the proptest versions in
//! `tests/fuzz_props.rs` (stable, in CI), which includes this file.
//!
//! Each target takes untrusted bytes, runs one decoder over them, and
//! panics only when a property is broken: the decoder itself must never
//! panic, must give an error or a valid value, and a valid value must
//! survive a round trip through its encoder where one exists. The
//! `valid_*` functions build well-formed inputs from a seed, for the
//! mutated-valid half of the property tests and for seed corpora.

use std::path::Path;
use std::sync::Arc;

use cityhall::batch::WriteBatch;
use cityhall::io::sim::{SimFs, SimRng};
use cityhall::io::{Fs, OpenOptions};
use cityhall::iter::EntryIter;
use cityhall::manifest::edit::{TableEntry, VersionEdit};
use cityhall::manifest::{recover, ManifestState, ManifestWriter};
use cityhall::protocol::{decode_frame, Decoded, Limits, Request, Response};
use cityhall::sstable::block::{Block, BlockBuilder};
use cityhall::sstable::{BlockCache, Table, TableBuilder, TableOptions};
use cityhall::ts::chunk;
use cityhall::ts::Point;
use cityhall::types::{internal_key, ValueKind};
use cityhall::wal::format::encode_record;
use cityhall::wal::reader::replay_segment;

/// Most entries a target walks, so that a hostile input cannot make one
/// execution slow.
const WALK_MAX: usize = 1 << 16;

/// Small limits, so that inputs of a few KiB reach every bound.
fn limits() -> Limits {
    Limits {
        frame_size_bytes_max: 64 << 10,
        key_size_bytes_max: 1 << 10,
        value_size_bytes_max: 16 << 10,
        batch_size_bytes_max: 32 << 10,
        batch_ops_max: 64,
        mget_keys_max: 64,
        scan_limit_max: 64,
    }
}

/// Protocol decoder: frames are cut from the stream one after another as
/// a server would; each frame decodes as a request (and, for the client's
/// side, as a response) or gives an error. A decoded request encodes to a
/// frame that decodes to the same request.
pub fn protocol(data: &[u8]) {
    let limits = limits();
    let mut rest = data;
    while !rest.is_empty() {
        match decode_frame(rest, limits.frame_size_bytes_max) {
            Decoded::NeedMore { frame_len } => {
                if let Some(n) = frame_len {
                    assert!(n > rest.len(), "NeedMore for a frame already whole");
                }
                return;
            }
            Decoded::Error { skip: None, .. } => return,
            Decoded::Error { skip: Some(n), .. } => {
                assert!(n > 0 && n <= rest.len(), "skip {n} of {}", rest.len());
                rest = &rest[n..];
            }
            Decoded::Frame(f) => {
                assert!(f.consumed > 0 && f.consumed <= rest.len());
                if let Ok(req) = Request::decode(f, &limits) {
                    let mut out = Vec::new();
                    req.encode(&mut out);
                    match decode_frame(&out, usize::MAX) {
                        Decoded::Frame(again) => {
                            assert_eq!(again.consumed, out.len(), "re-encoded frame length");
                            let back = Request::decode(again, &limits);
                            assert_eq!(back.as_ref(), Ok(&req), "request round trip");
                        }
                        _ => panic!("a decoded request re-encodes to a bad frame: {req:?}"),
                    }
                }
                let _ = Response::decode(f, &limits);
                rest = &rest[f.consumed..];
            }
        }
    }
}

/// Recomputes the checksum of each record of a log in the WAL and
/// manifest framing (`crc32 | len u32 LE | rest of header | payload`, the
/// crc over everything after itself), so that mutated payloads get past
/// the checksum to the decoders behind it.
fn with_fixed_crcs(data: &[u8], header_len: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut off = 0usize;
    while let Some(len) = out.get(off + 4..off + 8) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(end) = (off + header_len)
            .checked_add(len)
            .filter(|&e| e <= out.len())
        else {
            break;
        };
        let crc = crc32fast::hash(&out[off + 4..end]);
        out[off..off + 4].copy_from_slice(&crc.to_le_bytes());
        if end == off {
            break;
        }
        off = end;
    }
    out
}

/// WAL record reader: a segment image replays to an end offset inside the
/// image, applying batches with dense sequence numbers, or fails with an
/// error; so does the image with every record's checksum made to match.
pub fn wal(data: &[u8]) {
    wal_replay(data);
    wal_replay(&with_fixed_crcs(data, cityhall::wal::format::HEADER_LEN));
}

fn wal_replay(data: &[u8]) {
    let path = Path::new("/fuzz/000001.log");
    let mut expected = 1u64;
    let mut dense = true;
    let result = replay_segment(path, data, 1, 0, |seq, batch| {
        dense &= seq == expected;
        expected = seq + batch.len().max(1) as u64;
        Ok(())
    });
    if let Ok((end, _last)) = result {
        assert!(end.offset() as usize <= data.len(), "end past the data");
        assert!(dense, "replay skipped sequence numbers");
    }
}

/// Block decoder: a decoded block iterates in order without panicking and
/// seeks to any key.
pub fn block(data: &[u8]) {
    let path: Arc<Path> = Arc::from(Path::new("/fuzz/block"));
    let Ok(block) = Block::decode(data.to_vec(), path, 0) else {
        return;
    };
    let block = Arc::new(block);
    let mut it = block.iter();
    let mut keys = Vec::new();
    if it.seek_to_first().is_ok() {
        while it.valid() && keys.len() < WALK_MAX {
            keys.push(it.key().to_vec());
            let _ = it.value();
            if it.next().is_err() {
                break;
            }
        }
    }
    for k in keys.iter().take(16) {
        let mut s = block.iter();
        let _ = s.seek(k);
    }
    let mut s = block.iter();
    let _ = s.seek(b"");
    let _ = s.seek(&[0xff; 24]);
}

/// Table open: bytes as a table file open or fail with an error; an open
/// table iterates, answers point reads and verifies without panicking.
pub fn table(data: &[u8]) {
    let fs = SimFs::new(0);
    let path = Path::new("/fuzz/000001.sst");
    let Ok(f) = fs.open(path, OpenOptions::write_create()) else {
        return;
    };
    if f.write_at(data, 0).is_err() {
        return;
    }
    let cache = Arc::new(BlockCache::new(1 << 20));
    let Ok(table) = Table::open(f, 1, cache) else {
        return;
    };
    let mut it = table.iter();
    let mut keys = Vec::new();
    if it.seek_to_first().is_ok() {
        while it.valid() && keys.len() < WALK_MAX {
            keys.push(it.key().to_vec());
            if it.next().is_err() {
                break;
            }
        }
    }
    for k in keys.iter().take(16) {
        let user = &k[..k.len().saturating_sub(8)];
        let _ = table.get(user, u64::MAX >> 8);
        let _ = table.iter().seek(k);
    }
    let _ = table.get(b"absent", 1);
    let _ = table.verify();
}

/// Manifest replay: a manifest image replays to a state or fails with an
/// error naming the manifest (also with every record's checksum made to
/// match); a decoded edit re-encodes to itself.
pub fn manifest(data: &[u8]) {
    manifest_replay(data);
    manifest_replay(&with_fixed_crcs(data, 8));
}

fn manifest_replay(data: &[u8]) {
    if let Ok(edit) = VersionEdit::decode(data) {
        let mut out = Vec::new();
        edit.encode(&mut out);
        assert_eq!(VersionEdit::decode(&out), Ok(edit), "edit round trip");
    }
    let fs = SimFs::new(0);
    let dir = Path::new("/fuzz");
    let path = dir.join("MANIFEST-000001");
    let Ok(f) = fs.open(&path, OpenOptions::write_create()) else {
        return;
    };
    if f.write_at(data, 0).is_err() {
        return;
    }
    if let Err(e) = recover(&fs, dir, 1) {
        assert!(
            e.to_string().contains("MANIFEST-000001"),
            "error does not name the manifest: {e}"
        );
    }
}

/// Time-series chunk decoder: a chunk decodes to points or an error; the
/// points re-encode to a chunk that decodes to the same points.
pub fn ts_chunk(data: &[u8]) {
    let Ok(points) = chunk::decode(data) else {
        return;
    };
    let mut out = Vec::new();
    if chunk::encode(&points, &mut out).is_ok() {
        let back = chunk::decode(&out).map_err(|e| e.to_string());
        let same = back.as_ref().is_ok_and(|b| {
            b.len() == points.len()
                && b.iter()
                    .zip(&points)
                    .all(|(x, y)| x.ts == y.ts && x.value.to_bits() == y.value.to_bits())
        });
        assert!(same, "chunk round trip: {points:?} -> {back:?}");
    }
}

// ------------------------------------------------------------ valid inputs

fn bytes(rng: &mut SimRng, max: u64) -> Vec<u8> {
    let n = rng.below(max + 1) as usize;
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn ascii(rng: &mut SimRng, max: u64) -> Vec<u8> {
    let n = 1 + rng.below(max) as usize;
    (0..n).map(|_| b'a' + (rng.below(26) as u8)).collect()
}

/// A stream of well-formed request frames.
pub fn valid_protocol(seed: u64) -> Vec<u8> {
    let mut rng = SimRng::new(seed);
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(6) {
        let k = ascii(&mut rng, 20);
        let v = bytes(&mut rng, 100);
        let mut b = WriteBatch::new();
        b.put(k.clone(), v.clone()).delete(ascii(&mut rng, 8));
        let req = match rng.below(6) {
            0 => Request::Put { key: &k, value: &v },
            1 => Request::Get { key: &k },
            2 => Request::Delete { key: &k },
            3 => Request::WriteBatch(std::borrow::Cow::Owned(b)),
            4 => Request::MGet { keys: vec![&k, &v] },
            _ => Request::Ping,
        };
        req.encode(&mut out);
    }
    out
}

/// A WAL segment image (segment 1) of a few batches from sequence 1,
/// followed by the zeroes of a preallocated segment.
pub fn valid_wal(seed: u64) -> Vec<u8> {
    let mut rng = SimRng::new(seed);
    let mut out = Vec::new();
    let mut seq = 1u64;
    for _ in 0..1 + rng.below(5) {
        let mut b = WriteBatch::new();
        for _ in 0..1 + rng.below(4) {
            if rng.below(4) == 0 {
                b.delete(ascii(&mut rng, 10));
            } else {
                b.put(ascii(&mut rng, 10), bytes(&mut rng, 60));
            }
        }
        let mut payload = Vec::new();
        b.encode(seq, &mut payload);
        seq += b.len() as u64;
        let group = out.len() as u32;
        encode_record(&mut out, 1, group, &payload);
    }
    out.resize(out.len() + rng.below(64) as usize, 0);
    out
}

fn sorted_entries(rng: &mut SimRng, n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut keys: Vec<Vec<u8>> = (0..n).map(|_| ascii(rng, 12)).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .enumerate()
        .map(|(i, k)| {
            let del = rng.below(5) == 0;
            let kind = if del {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let v = if del { Vec::new() } else { bytes(rng, 40) };
            (internal_key(&k, 100 + i as u64, kind), v)
        })
        .collect()
}

/// A data block's payload.
pub fn valid_block(seed: u64) -> Vec<u8> {
    let mut rng = SimRng::new(seed);
    let mut b = BlockBuilder::new(1 + rng.below(8) as usize);
    let n = 1 + rng.below(40);
    for (k, v) in sorted_entries(&mut rng, n) {
        if b.add(&k, &v).is_err() {
            break;
        }
    }
    b.finish().to_vec()
}

/// A whole table file with small blocks.
pub fn valid_table(seed: u64) -> Vec<u8> {
    let mut rng = SimRng::new(seed);
    let fs = SimFs::new(seed);
    let path = Path::new("/fuzz/000001.sst");
    let Ok(f) = fs.open(path, OpenOptions::write_create()) else {
        return Vec::new();
    };
    let opts = TableOptions {
        block_size_bytes: 128 + rng.below(512) as usize,
        restart_interval: 1 + rng.below(8) as usize,
        write_buffer_bytes: 4096,
        compression: rng.below(2) == 0,
    };
    let mut builder = TableBuilder::new(f, opts);
    let n = 1 + rng.below(80);
    for (k, v) in sorted_entries(&mut rng, n) {
        if builder.add(&k, &v).is_err() {
            return Vec::new();
        }
    }
    if builder.finish().is_err() {
        return Vec::new();
    }
    fs.read_file(path).unwrap_or_default()
}

/// A manifest image: a snapshot edit and a few more.
pub fn valid_manifest(seed: u64) -> Vec<u8> {
    let mut rng = SimRng::new(seed);
    let fs = SimFs::new(seed);
    let dir = Path::new("/fuzz");
    let state = ManifestState {
        log_number: 1 + rng.below(10),
        next_file_number: 20,
        last_sequence: rng.below(1000),
        ..ManifestState::default()
    };
    let Ok(mut w) = ManifestWriter::create(Arc::new(fs.clone()), dir, 1, &state) else {
        return Vec::new();
    };
    for i in 0..rng.below(5) {
        let edit = VersionEdit {
            log_number: Some(2 + i),
            next_file_number: Some(21 + i),
            last_sequence: Some(1000 + i),
            new_tables: vec![TableEntry {
                level: rng.below(3) as u32,
                number: 5 + i,
                size: rng.below(1 << 20),
                smallest: internal_key(b"a", 1, ValueKind::Put),
                largest: internal_key(b"z", 9, ValueKind::Put),
            }],
            deleted_tables: if i > 0 { vec![(0, 4 + i)] } else { Vec::new() },
        };
        if w.append(&edit).is_err() {
            break;
        }
    }
    fs.read_file(&dir.join("MANIFEST-000001"))
        .unwrap_or_default()
}

/// A time-series chunk of regular and irregular points.
pub fn valid_ts_chunk(seed: u64) -> Vec<u8> {
    let mut rng = SimRng::new(seed);
    let mut ts = 1_700_000_000_000i64 + rng.below(1 << 30) as i64;
    let mut value = rng.below(1000) as f64 / 8.0;
    let points: Vec<Point> = (0..1 + rng.below(120))
        .map(|_| {
            ts += match rng.below(4) {
                0 => 1 + rng.below(100_000) as i64,
                _ => 10_000,
            };
            value += match rng.below(3) {
                0 => 0.0,
                1 => 1.0,
                _ => (rng.below(1 << 20) as f64 - 5e5) / 3.0,
            };
            Point { ts, value }
        })
        .collect();
    let mut out = Vec::new();
    if chunk::encode(&points, &mut out).is_err() {
        out.clear();
    }
    out
}
