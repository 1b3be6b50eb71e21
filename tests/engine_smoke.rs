#![allow(clippy::unwrap_used)]
use cityhall::{Db, Options};

#[test]
fn put_get_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        wal_segment_size_bytes: 1 << 20,
        ..Options::default()
    };
    {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        for i in 0..2000u32 {
            db.put(format!("k{i}").as_bytes(), &[7u8; 100]).unwrap();
        }
        db.delete(b"k5").unwrap();
        assert_eq!(db.get(b"k1").unwrap(), Some(vec![7u8; 100]));
        assert_eq!(db.get(b"k5").unwrap(), None);
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(db.get(b"k1999").unwrap(), Some(vec![7u8; 100]));
    assert_eq!(db.get(b"k5").unwrap(), None);
    assert_eq!(db.last_sequence(), 2001);
}

#[test]
fn flushes_to_tables_and_reads_them_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        wal_segment_size_bytes: 256 << 10,
        memtable_size_bytes_max: 64 << 10,
        ..Options::default()
    };
    let n = 5000u32;
    {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        let mut batch = cityhall::WriteBatch::new();
        for i in 0..n {
            batch.put(
                format!("key{i:06}").into_bytes(),
                vec![(i % 251) as u8; 100],
            );
            if batch.len() == 50 {
                db.write(std::mem::take(&mut batch)).unwrap();
            }
        }
        for i in (0..n).step_by(7) {
            db.delete(format!("key{i:06}").as_bytes()).unwrap();
        }
        let m = db.metrics();
        match m.get("flush.count") {
            Some(cityhall::metrics::MetricValue::Counter(c)) => assert!(*c > 0, "no flush ran"),
            other => panic!("flush.count missing: {other:?}"),
        }
        assert_eq!(db.get(b"key000001").unwrap(), Some(vec![1u8; 100]));
        db.close().unwrap();
    }
    let logs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(logs < 10, "flushed segments were not released: {logs} left");
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..n {
        let want = (i % 7 != 0).then(|| vec![(i % 251) as u8; 100]);
        assert_eq!(
            db.get(format!("key{i:06}").as_bytes()).unwrap(),
            want,
            "key{i:06}"
        );
    }
    let all = db.scan(b"", None, usize::MAX).unwrap();
    assert_eq!(all.len(), (0..n).filter(|i| i % 7 != 0).count());
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    let page = db.scan_prefix(b"key0001", 5).unwrap();
    assert_eq!(page[0].0, b"key000100".to_vec());
    assert_eq!(page.len(), 5);
}

/// After an open the log sits in a small idle segment, and the segments
/// after it grow toward full ones; a first write larger than the next one
/// rolls on until a segment holds it, and is durable like any other.
#[test]
fn a_first_write_larger_than_the_growing_segments_rolls_on_to_one_that_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default();
    let big = vec![9u8; 12 << 20];
    {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        let mut batch = cityhall::WriteBatch::new();
        batch.put(b"big".to_vec(), big.clone());
        batch.put(b"small".to_vec(), b"v".to_vec());
        db.write(batch).unwrap();
        db.put(b"after", b"w").unwrap();
        assert_eq!(db.get(b"big").unwrap().as_deref(), Some(&big[..]));
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(db.get(b"big").unwrap().as_deref(), Some(&big[..]));
    assert_eq!(db.get(b"small").unwrap(), Some(b"v".to_vec()));
    assert_eq!(db.get(b"after").unwrap(), Some(b"w".to_vec()));
    db.put(b"later", b"x").unwrap();
    assert_eq!(db.get(b"later").unwrap(), Some(b"x".to_vec()));
}
