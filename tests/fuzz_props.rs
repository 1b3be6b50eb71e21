//! The fuzz targets of `tools/fuzz` as property tests on stable Rust: the
//! protocol decoder, the WAL record reader, the block decoder, table open,
//! manifest replay and the time-series chunk decoder, each fed arbitrary
//! bytes and mutated valid inputs (bit flips, overwritten bytes,
//! truncation, insertion). Every input must give an error or a valid
//! value, never a panic; the target bodies (tools/fuzz/src/targets.rs) are
//! shared with the libFuzzer targets rather than written twice.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../tools/fuzz/src/targets.rs"]
mod targets;

use proptest::prelude::*;

/// One damage to a valid input.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    SetByte { at: usize, byte: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn mutate(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = data.len();
        match m {
            Mutation::FlipBit { at, bit } if n > 0 => data[at % n] ^= 1 << bit,
            Mutation::SetByte { at, byte } if n > 0 => data[at % n] = *byte,
            Mutation::Truncate { at } => data.truncate(at % (n + 1)),
            Mutation::Insert { at, bytes } => {
                let at = at % (n + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove { at, len } if n > 0 => {
                let at = at % n;
                data.drain(at..(at + len).min(n));
            }
            _ => {}
        }
    }
    data
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Declares, for one target, a test over arbitrary bytes and one over
/// mutated valid inputs.
macro_rules! fuzz_props {
    ($target:ident, $valid:ident, $arbitrary:ident, $mutated:ident, $unmutated:ident) => {
        proptest! {
            #![proptest_config(config())]

            #[test]
            fn $arbitrary(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
                targets::$target(&data);
            }

            #[test]
            fn $mutated(
                seed in any::<u64>(),
                muts in proptest::collection::vec(mutation(), 1..4),
            ) {
                targets::$target(&mutate(targets::$valid(seed), &muts));
            }
        }

        /// The valid inputs the mutations start from are valid (otherwise
        /// the mutated half would test the error path only).
        #[test]
        fn $unmutated() {
            for seed in 0..32 {
                let data = targets::$valid(seed);
                assert!(!data.is_empty(), "seed {seed}: no valid input was built");
                targets::$target(&data);
            }
        }
    };
}

fuzz_props!(
    protocol,
    valid_protocol,
    protocol_arbitrary_bytes,
    protocol_mutated_frames,
    protocol_valid_frames
);
fuzz_props!(
    wal,
    valid_wal,
    wal_arbitrary_bytes,
    wal_mutated_segments,
    wal_valid_segments
);
fuzz_props!(
    block,
    valid_block,
    block_arbitrary_bytes,
    block_mutated_blocks,
    block_valid_blocks
);
fuzz_props!(
    table,
    valid_table,
    table_arbitrary_bytes,
    table_mutated_files,
    table_valid_files
);
fuzz_props!(
    manifest,
    valid_manifest,
    manifest_arbitrary_bytes,
    manifest_mutated_images,
    manifest_valid_images
);
fuzz_props!(
    ts_chunk,
    valid_ts_chunk,
    ts_chunk_arbitrary_bytes,
    ts_chunk_mutated_chunks,
    ts_chunk_valid_chunks
);

/// The valid inputs decode to what they hold, so the targets' happy paths
/// are reached: the WAL replays every batch, the manifest recovers, the
/// table and the chunk read back.
#[test]
fn valid_inputs_decode() {
    use cityhall::io::sim::SimFs;
    use cityhall::io::{Fs, OpenOptions};
    use std::path::Path;
    use std::sync::Arc;
    for seed in 0..16 {
        let wal = targets::valid_wal(seed);
        let mut batches = 0;
        let (_, last) = cityhall::wal::reader::replay_segment(
            Path::new("/w/000001.log"),
            &wal,
            1,
            0,
            |_, _| {
                batches += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!(batches > 0 && last > 0, "seed {seed}: WAL replayed nothing");

        let fs = SimFs::new(seed);
        let f = fs
            .open(Path::new("/t/000001.sst"), OpenOptions::write_create())
            .unwrap();
        f.write_at(&targets::valid_table(seed), 0).unwrap();
        let t = cityhall::sstable::Table::open(
            f,
            1,
            Arc::new(cityhall::sstable::BlockCache::new(1 << 20)),
        )
        .unwrap();
        assert!(t.entries() > 0);
        t.verify().unwrap();

        let m = fs
            .open(Path::new("/m/MANIFEST-000001"), OpenOptions::write_create())
            .unwrap();
        m.write_at(&targets::valid_manifest(seed), 0).unwrap();
        cityhall::manifest::recover(&fs, Path::new("/m"), 1).unwrap();

        assert!(!cityhall::ts::chunk::decode(&targets::valid_ts_chunk(seed))
            .unwrap()
            .is_empty());
    }
}

/// Writes 64 valid inputs of every target into `tools/fuzz/corpus/<target>/`
/// (or `$CITYHALL_FUZZ_CORPUS/<target>/`): the seeds libFuzzer mutates from.
#[test]
#[ignore = "writes files: run by hand before fuzzing"]
fn write_seed_corpus() {
    type Maker = fn(u64) -> Vec<u8>;
    let root = std::env::var_os("CITYHALL_FUZZ_CORPUS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fuzz/corpus"),
        std::path::PathBuf::from,
    );
    let makers: [(&str, Maker); 6] = [
        ("protocol", targets::valid_protocol),
        ("wal", targets::valid_wal),
        ("block", targets::valid_block),
        ("table", targets::valid_table),
        ("manifest", targets::valid_manifest),
        ("ts_chunk", targets::valid_ts_chunk),
    ];
    for (name, make) in makers {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for seed in 0..64u64 {
            std::fs::write(dir.join(format!("seed-{seed:02}")), make(seed)).unwrap();
        }
    }
    eprintln!("seed corpora written under {}", root.display());
}
