//! Writes valid inputs of every target into `corpus/<target>/`, the seeds
//! libFuzzer mutates from: `cargo +nightly run --release --example seed_corpus [DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use cityhall_fuzz::targets;

type Maker = fn(u64) -> Vec<u8>;

fn main() -> ExitCode {
    let root = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("corpus"), PathBuf::from);
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
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("seed_corpus: create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        for seed in 0..64u64 {
            let path = dir.join(format!("seed-{seed:02}"));
            if let Err(e) = std::fs::write(&path, make(seed)) {
                eprintln!("seed_corpus: write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("seed corpora written under {}", root.display());
    ExitCode::SUCCESS
}
