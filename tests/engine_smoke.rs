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
