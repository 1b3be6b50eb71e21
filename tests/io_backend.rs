#![allow(clippy::unwrap_used)]
//! The IO backends on the real file system: io_uring is chosen when the
//! kernel allows it, and both the io_uring and the pread/pwrite
//! implementations pass one round trip of every file and directory
//! operation and carry a database end to end.

use std::path::Path;
use std::sync::Arc;

use cityhall::io::plain::PlainFs;
use cityhall::io::uring::UringFs;
use cityhall::io::{self, AlignedBuf, Backend, FileHandle, Fs, OpenOptions, BLOCK_SIZE};
use cityhall::{Db, Error, Options, WriteBatch};

/// Whether this machine lets a process use io_uring: the sysctl does not
/// forbid it and `io_uring_setup` succeeds. Asked of the kernel directly,
/// not of the code under test.
fn io_uring_available() -> bool {
    match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(s) if s.trim() != "0" => return false,
        _ => {}
    }
    // struct io_uring_params is 120 bytes; zeroed asks for the defaults.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup(entries, params) writes at most
    // sizeof(struct io_uring_params) bytes into `params`.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return false;
    }
    // SAFETY: closing the descriptor io_uring_setup just returned.
    unsafe { libc::close(fd as i32) };
    true
}

/// The default file system (and so a database opened with default options)
/// uses io_uring exactly when the kernel allows it.
#[test]
fn io_uring_is_the_default_when_available() {
    let available = io_uring_available();
    let want = if available {
        Backend::Uring
    } else {
        Backend::Plain
    };
    eprintln!("io_uring available: {available}");
    assert_eq!(io::default_fs().backend(), want);
    assert_eq!(UringFs::new().is_ok(), available);

    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            wal_segment_size_bytes: 1 << 20,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(db.backend(), want);
    db.put(b"k", b"v").unwrap();
    assert_eq!(db.get(b"k").unwrap(), Some(b"v".to_vec()));
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ salt)
        .collect()
}

fn read_vec(f: &dyn FileHandle, len: usize, offset: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let n = f.read_at(&mut buf, offset).unwrap();
    buf.truncate(n);
    buf
}

/// Reads through a (possibly `O_DIRECT`) handle into a block-aligned
/// buffer; `len` and `offset` are multiples of the block size.
fn read_aligned(f: &dyn FileHandle, len: usize, offset: u64) -> Vec<u8> {
    let mut backing = vec![0u8; len + BLOCK_SIZE];
    let skip = backing.as_ptr().align_offset(BLOCK_SIZE);
    let buf = &mut backing[skip..skip + len];
    let n = f.read_at(buf, offset).unwrap();
    buf[..n].to_vec()
}

/// Every operation of the `Fs` / `FileHandle` interface, checked against
/// what was written, on `fs` in a fresh directory.
fn round_trip(fs: &dyn Fs, backend: Backend) {
    assert_eq!(fs.backend(), backend);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sub/dir");
    fs.create_dir_all(&dir).unwrap();
    let a = dir.join("a.dat");
    let b = dir.join("b.dat");
    assert!(!fs.exists(&a));

    // An aligned direct write of two blocks.
    let f = fs
        .open(&a, OpenOptions::create_new().with_direct())
        .unwrap();
    assert_eq!(f.path(), a.as_path());
    let mut buf = AlignedBuf::with_capacity(2 * BLOCK_SIZE);
    buf.extend_from_slice(&pattern(2 * BLOCK_SIZE, 1));
    assert_eq!(buf.as_slice().as_ptr() as usize % BLOCK_SIZE, 0);
    f.write_at(buf.as_padded(), 0).unwrap();
    assert!(fs.exists(&a));
    assert_eq!(f.len().unwrap(), 2 * BLOCK_SIZE as u64);
    // O_DIRECT reads need an aligned buffer too.
    assert_eq!(
        read_aligned(&*f, 2 * BLOCK_SIZE, 0),
        pattern(2 * BLOCK_SIZE, 1)
    );
    // Buffered reads: an unaligned one inside, one across the end, one past it.
    let r = fs.open(&a, OpenOptions::read()).unwrap();
    assert_eq!(
        read_vec(&*r, 100, 4000),
        pattern(2 * BLOCK_SIZE, 1)[4000..4100]
    );
    assert_eq!(read_vec(&*r, 1000, 2 * BLOCK_SIZE as u64 - 10).len(), 10);
    assert!(read_vec(&*r, 10, 10 * BLOCK_SIZE as u64).is_empty());
    let mut short = [0u8; 20];
    assert!(io::read_exact_at(&*r, &mut short, 2 * BLOCK_SIZE as u64 - 10).is_err());

    // A linked write + data sync of a third block.
    let mut third = AlignedBuf::with_capacity(BLOCK_SIZE);
    third.extend_from_slice(&pattern(BLOCK_SIZE, 2));
    f.write_at_sync(third.as_padded(), 2 * BLOCK_SIZE as u64)
        .unwrap();
    assert_eq!(f.len().unwrap(), 3 * BLOCK_SIZE as u64);
    assert_eq!(
        read_aligned(&*f, BLOCK_SIZE, 2 * BLOCK_SIZE as u64),
        pattern(BLOCK_SIZE, 2)
    );
    assert_eq!(
        read_vec(&*r, BLOCK_SIZE, 2 * BLOCK_SIZE as u64),
        pattern(BLOCK_SIZE, 2)
    );
    f.sync_data().unwrap();
    f.sync_all().unwrap();

    // Truncate, extend, map.
    f.set_len(5000).unwrap();
    assert_eq!(f.len().unwrap(), 5000);
    let mapped = f.map().unwrap();
    assert_eq!(&mapped[..], &pattern(2 * BLOCK_SIZE, 1)[..5000]);
    drop(mapped);
    f.set_len(6000).unwrap();
    let whole = io::read_all(&*r).unwrap();
    assert_eq!(whole.len(), 6000);
    assert_eq!(whole[..5000], pattern(2 * BLOCK_SIZE, 1)[..5000]);
    assert!(whole[5000..].iter().all(|&x| x == 0), "extension is zeros");
    drop((f, r));

    // create_new refuses an existing file; a missing file fails to open.
    assert!(fs.open(&a, OpenOptions::create_new()).is_err());
    match fs.open(&dir.join("missing"), OpenOptions::read()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("missing"), "{path}"),
        other => panic!("opening a missing file: {other:?}"),
    }

    // Buffered, unaligned writes on a non-direct handle.
    let g = fs.open(&a, OpenOptions::write_create()).unwrap();
    g.write_at(b"hello", 3).unwrap();
    g.write_at_sync(b"!", 6000).unwrap();
    assert_eq!(read_vec(&*g, 8, 0)[3..8], *b"hello");
    assert_eq!(g.len().unwrap(), 6001);
    drop(g);

    // Rename, list, directory sync, reopen read-only, remove.
    fs.rename(&a, &b).unwrap();
    fs.sync_dir(&dir).unwrap();
    assert!(!fs.exists(&a));
    assert!(fs.exists(&b));
    let empty = dir.join("empty");
    drop(fs.open(&empty, OpenOptions::write_create()).unwrap());
    assert_eq!(
        fs.list(&dir).unwrap(),
        vec!["b.dat".to_string(), "empty".to_string()]
    );
    let r = fs.open(&b, OpenOptions::read()).unwrap();
    assert_eq!(read_vec(&*r, 3, 3), b"hel");
    assert!(r.write_at(b"x", 0).is_err(), "a read-only handle wrote");
    let e = fs.open(&empty, OpenOptions::read()).unwrap();
    assert!(e.is_empty().unwrap());
    assert!(e.map().unwrap().is_empty());
    fs.remove(&b).unwrap();
    fs.remove(&empty).unwrap();
    fs.sync_dir(&dir).unwrap();
    assert!(fs.list(&dir).unwrap().is_empty());
    assert!(fs.remove(&b).is_err());

    // The directory lock is exclusive and released on drop.
    let lock_path = dir.join("LOCK");
    let l = fs.lock(&lock_path).unwrap();
    assert!(matches!(fs.lock(&lock_path), Err(Error::Locked(_))));
    drop(l);
    drop(fs.lock(&lock_path).unwrap());
}

#[test]
fn plain_fs_round_trip() {
    round_trip(&PlainFs::new(), Backend::Plain);
}

#[test]
fn uring_fs_round_trip() {
    if !io_uring_available() {
        eprintln!("io_uring unavailable here; skipped");
        return;
    }
    round_trip(&UringFs::new().unwrap(), Backend::Uring);
}

/// A file written through one backend reads back the same through the
/// other.
#[test]
fn backends_agree_on_file_contents() {
    if !io_uring_available() {
        eprintln!("io_uring unavailable here; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x");
    let (plain, uring) = (PlainFs::new(), UringFs::new().unwrap());
    let data = pattern(3 * BLOCK_SIZE + 17, 9);
    let w = uring.open(&p, OpenOptions::create_new()).unwrap();
    w.write_at_sync(&data, 0).unwrap();
    let r = plain.open(&p, OpenOptions::read()).unwrap();
    assert_eq!(io::read_all(&*r).unwrap(), data);
    let w2 = plain.open(&p, OpenOptions::write_create()).unwrap();
    w2.write_at(b"plain", 100).unwrap();
    w2.sync_data().unwrap();
    assert_eq!(read_vec(&*w, 5, 100), b"plain");
}

/// A database on the given file system: puts, a delete, a batch, values
/// that roll segments, close, reopen, everything there.
fn db_end_to_end(fs: Arc<dyn Fs>, backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        fs: Some(fs),
        wal_segment_size_bytes: 256 << 10,
        ..Options::default()
    };
    let db = Db::open(tmp.path(), opts.clone()).unwrap();
    assert_eq!(db.backend(), backend);
    for i in 0..200u32 {
        db.put(
            format!("k{i}").as_bytes(),
            &vec![i as u8; 100 + (i as usize % 7) * 3000],
        )
        .unwrap();
    }
    db.delete(b"k7").unwrap();
    let mut b = WriteBatch::new();
    b.put(b"batch1".to_vec(), b"one".to_vec())
        .put(b"batch2".to_vec(), b"two".to_vec())
        .delete(b"k8".to_vec());
    db.write(b).unwrap();
    assert!(
        matches!(db.metrics().get("wal.segments_rolled"), Some(cityhall::metrics::MetricValue::Counter(n)) if *n > 0),
        "no segment roll-over exercised"
    );
    db.close().unwrap();
    drop(db);
    let names = std::fs::read_dir(tmp.path()).unwrap().count();
    assert!(names >= 3, "expected database files on disk");

    let db = Db::open(tmp.path(), opts).unwrap();
    for i in 0..200u32 {
        let got = db.get(format!("k{i}").as_bytes()).unwrap();
        if i == 7 || i == 8 {
            assert_eq!(got, None, "k{i} deleted");
        } else {
            assert_eq!(
                got,
                Some(vec![i as u8; 100 + (i as usize % 7) * 3000]),
                "k{i}"
            );
        }
    }
    assert_eq!(db.get(b"batch2").unwrap(), Some(b"two".to_vec()));
    // 200 puts, a delete, a batch of three.
    assert_eq!(db.last_sequence(), 204);
}

#[test]
fn db_end_to_end_on_plain_fs() {
    db_end_to_end(Arc::new(PlainFs::new()), Backend::Plain);
}

#[test]
fn db_end_to_end_on_uring_fs() {
    if !io_uring_available() {
        eprintln!("io_uring unavailable here; skipped");
        return;
    }
    db_end_to_end(Arc::new(UringFs::new().unwrap()), Backend::Uring);
}

/// Sanity of the helper itself: the path it probes exists on Linux.
#[test]
fn io_uring_probe_reads_the_sysctl() {
    let sysctl = Path::new("/proc/sys/kernel/io_uring_disabled");
    if sysctl.exists() {
        let v = std::fs::read_to_string(sysctl).unwrap();
        assert!(
            ["0", "1", "2"].contains(&v.trim()),
            "unexpected sysctl value {v:?}"
        );
    }
}
