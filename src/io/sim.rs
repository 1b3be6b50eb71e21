//! A simulated file system for tests.
//!
//! Every file keeps two images: `live` (what reads see) and `durable` (what
//! survives a crash). A data sync copies live to durable; a directory sync
//! makes the directory's entries durable. [`SimFs::crash`] throws away
//! everything not durable (optionally keeping a torn or random part of the
//! unsynced writes), invalidates every open handle, and leaves a file
//! system to reopen the database on. Faults are injected on cue: the n-th
//! operation of a kind fails with EIO, disk space runs out (ENOSPC), or
//! durability freezes after n syncs (syncs then report success but make
//! nothing durable, as when power is lost while the process runs on).
//!
//! All randomness comes from the seed given to [`SimFs::new`], so a failing
//! run reproduces from its printed seed.
//!
//! To check every sync point of a long run without running it once per
//! point, a test installs a hook ([`SimFs::set_sync_hook`]) that is called
//! at the start of every sync, with the world stopped, and can take crash
//! images ([`SyncPoint::crash_image`]): independent file systems holding
//! what a power loss at that moment would leave, in any [`CrashMode`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Backend, FileHandle, Fs, LockGuard, Mapping, OpenOptions};
use crate::error::{Error, Result};

/// A small deterministic PRNG (splitmix64), enough for fault schedules.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// The kinds of operation a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Opening or creating a file.
    Open,
    /// Reading.
    Read,
    /// Writing (including set_len).
    Write,
    /// fdatasync / fsync of a file.
    Sync,
    /// fsync of a directory.
    SyncDir,
    /// Renaming.
    Rename,
    /// Removing.
    Remove,
}

/// What a crash keeps of the writes that were not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Nothing: every file reverts to its durable image.
    DropUnsynced,
    /// All unsynced writes but the last reach the disk; the last one only
    /// partly (a random prefix, cut at a 512-byte sector).
    TearLastWrite,
    /// Each unsynced write independently vanishes, lands, or lands torn.
    Random,
    /// Reordering as ALICE models a journaling file system: unsynced data
    /// writes reach the disk in any order and any subset (each one lands
    /// or vanishes independently; overlapping ones land in a random
    /// order), while directory operations (create, rename, remove) reach
    /// it in the order they were made, up to a random point. A rename is
    /// atomic, but may reach the disk before the data of the file renamed.
    Reorder,
}

/// A directory operation not yet made durable by a directory sync, kept
/// in order for [`CrashMode::Reorder`].
#[derive(Clone, Debug)]
enum NsOp {
    /// `path` now names inode `ino` (created, or the target of a rename
    /// whose source was `from`).
    Link {
        path: PathBuf,
        ino: u64,
        from: Option<PathBuf>,
    },
    /// `path` was removed.
    Unlink { path: PathBuf },
}

impl NsOp {
    fn in_dir(&self, dir: &Path) -> bool {
        match self {
            NsOp::Link { path, from, .. } => {
                path.parent() == Some(dir) || from.as_deref().and_then(Path::parent) == Some(dir)
            }
            NsOp::Unlink { path } => path.parent() == Some(dir),
        }
    }
}

/// Called at the start of every file or directory sync, with the number of
/// syncs before it and the world stopped (see [`SimFs::set_sync_hook`]).
pub type SyncHook = Arc<dyn Fn(u64, &mut SyncPoint<'_>) + Send + Sync>;

/// The file system at a sync point, as a [`SyncHook`] sees it.
pub struct SyncPoint<'a> {
    state: &'a mut State,
    seed: u64,
}

impl SyncPoint<'_> {
    /// An independent file system holding what a power loss right now
    /// (before this sync takes effect) would leave, under `mode`. The
    /// original is not changed.
    pub fn crash_image(&mut self, mode: CrashMode) -> SimFs {
        let (nodes, names) = crash_images(self.state, mode);
        let mut state = State::empty(self.state.rng.next_u64());
        state.next_inode = self.state.next_inode;
        state.nodes = nodes;
        state.live = names.clone();
        state.durable = names;
        SimFs {
            state: Arc::new(Mutex::new(state)),
            seed: self.seed,
            epoch: None,
        }
    }
}

impl std::fmt::Debug for SyncPoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncPoint")
            .field("syncs", &self.state.syncs)
            .finish()
    }
}

#[derive(Debug, Default)]
struct Node {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync, in order: (offset, bytes).
    pending: Vec<(u64, Vec<u8>)>,
}

#[derive(Debug)]
struct Fault {
    op: Op,
    /// Matching operations still to let through before failing.
    skip: u64,
    /// Keep failing after the first hit.
    persistent: bool,
}

struct State {
    epoch: u64,
    nodes: HashMap<u64, Node>,
    next_inode: u64,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    locks: HashSet<PathBuf>,
    rng: SimRng,
    faults: Vec<Fault>,
    syncs: u64,
    syncs_durable_max: Option<u64>,
    space_bytes_max: Option<u64>,
    /// Directory operations since the last directory sync, in order.
    ns_log: Vec<NsOp>,
    sync_hook: Option<SyncHook>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("epoch", &self.epoch)
            .field("files", &self.live.len())
            .field("syncs", &self.syncs)
            .finish()
    }
}

impl State {
    fn empty(seed: u64) -> State {
        State {
            epoch: 0,
            nodes: HashMap::new(),
            next_inode: 1,
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            locks: HashSet::new(),
            rng: SimRng::new(seed),
            faults: Vec::new(),
            syncs: 0,
            syncs_durable_max: None,
            space_bytes_max: None,
            ns_log: Vec::new(),
            sync_hook: None,
        }
    }

    /// Whether power is already gone (durability frozen and spent): then
    /// nothing more can reach the disk.
    fn after_power_loss(&self) -> bool {
        self.syncs_durable_max.is_some_and(|max| self.syncs >= max)
    }

    fn log_ns(&mut self, op: NsOp) {
        if !self.after_power_loss() {
            self.ns_log.push(op);
        }
    }

    /// Runs the sync hook, if any, before the sync it announces.
    fn run_sync_hook(&mut self, seed: u64) {
        if let Some(hook) = self.sync_hook.clone() {
            let n = self.syncs;
            hook(n, &mut SyncPoint { state: self, seed });
        }
    }
}

/// The simulated file system. Clones share one state.
#[derive(Clone, Debug)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
    seed: u64,
    /// Set on the instance a database opened with (see
    /// [`Fs::for_new_process`]): after a crash its every operation fails,
    /// as the process that used it would be dead.
    epoch: Option<u64>,
}

fn eio(what: &str) -> std::io::Error {
    std::io::Error::other(format!("simulated EIO ({what})"))
}

impl SimFs {
    /// An empty file system whose random choices follow `seed`.
    pub fn new(seed: u64) -> Self {
        SimFs {
            state: Arc::new(Mutex::new(State::empty(seed))),
            seed,
            epoch: None,
        }
    }

    fn check_epoch(&self, s: &State, op: &'static str, path: &Path) -> Result<()> {
        match self.epoch {
            Some(e) if e != s.epoch => Err(Error::io(
                op,
                path,
                std::io::Error::other("simulated crash: file system used by a process that died"),
            )),
            _ => Ok(()),
        }
    }

    /// The seed this file system was made with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails the `n`-th next operation of kind `op` (0 = the next one) once.
    pub fn fail_nth(&self, op: Op, n: u64) {
        self.lock_state().faults.push(Fault {
            op,
            skip: n,
            persistent: false,
        });
    }

    /// Fails every operation of kind `op` from now on.
    pub fn fail_always(&self, op: Op) {
        self.lock_state().faults.push(Fault {
            op,
            skip: 0,
            persistent: true,
        });
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.lock_state().faults.clear();
    }

    /// Limits the total live size of all files; writes past it get ENOSPC.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.lock_state().space_bytes_max = bytes;
    }

    /// After `n` more successful syncs, later syncs still succeed but make
    /// nothing durable, and later writes can never reach the disk, whatever
    /// the crash mode (power is lost at that point; the process goes on).
    pub fn freeze_durability_after(&self, n: u64) {
        let mut s = self.lock_state();
        s.syncs_durable_max = Some(s.syncs + n);
    }

    /// Installs (or with `None` removes) a hook called at the start of
    /// every sync with the number of syncs before it. It runs with the file
    /// system locked, so every other thread's file operations wait: the
    /// hook sees one consistent moment and may take crash images of it,
    /// but must not use this file system itself.
    pub fn set_sync_hook(&self, hook: Option<SyncHook>) {
        self.lock_state().sync_hook = hook;
    }

    /// Syncs performed so far (file and directory).
    pub fn sync_count(&self) -> u64 {
        self.lock_state().syncs
    }

    /// Simulates power loss: every open handle becomes invalid, every file
    /// reverts to its durable image (plus what `mode` keeps of unsynced
    /// writes), and only durable directory entries remain.
    pub fn crash(&self, mode: CrashMode) {
        let mut guard = self.lock_state();
        let s = &mut *guard;
        let (nodes, names) = crash_images(s, mode);
        s.epoch += 1;
        s.locks.clear();
        s.faults.clear();
        s.syncs_durable_max = None;
        s.ns_log.clear();
        s.nodes = nodes;
        s.live = names.clone();
        s.durable = names;
    }

    /// The live bytes of a file, for tests that damage files on purpose.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock_state();
        let ino = s.live.get(path)?;
        s.nodes.get(ino).map(|n| n.live.clone())
    }

    /// Replaces a file's bytes, live and durable, as a disk fault would.
    pub fn write_file_durable(&self, path: &Path, data: &[u8]) -> bool {
        let mut s = self.lock_state();
        let Some(&ino) = s.live.get(path) else {
            return false;
        };
        match s.nodes.get_mut(&ino) {
            Some(node) => {
                node.live = data.to_vec();
                node.durable = data.to_vec();
                node.pending.clear();
                true
            }
            None => false,
        }
    }
}

/// What a power loss leaves of `s` under `mode`: the file images by inode
/// and the names that reach them. `s` itself is not changed (but for its
/// random generator).
fn crash_images(s: &mut State, mode: CrashMode) -> (HashMap<u64, Node>, BTreeMap<PathBuf, u64>) {
    let mut names = s.durable.clone();
    if mode == CrashMode::Reorder {
        let keep = s.rng.below(s.ns_log.len() as u64 + 1) as usize;
        for op in &s.ns_log[..keep] {
            match op {
                NsOp::Link { path, ino, from } => {
                    if let Some(from) = from {
                        names.remove(from);
                    }
                    names.insert(path.clone(), *ino);
                }
                NsOp::Unlink { path } => {
                    names.remove(path);
                }
            }
        }
    }
    let reachable: HashSet<u64> = names.values().copied().collect();
    let mut inodes: Vec<u64> = s
        .nodes
        .keys()
        .copied()
        .filter(|i| reachable.contains(i))
        .collect();
    inodes.sort_unstable();
    let mut out = HashMap::new();
    for ino in inodes {
        let Some(node) = s.nodes.get(&ino) else {
            continue;
        };
        let mut image = node.durable.clone();
        let count = node.pending.len();
        let mut order: Vec<usize> = (0..count).collect();
        if mode == CrashMode::Reorder {
            for i in (1..count).rev() {
                order.swap(i, s.rng.below(i as u64 + 1) as usize);
            }
        }
        for i in order {
            let (off, data) = &node.pending[i];
            let keep = match mode {
                CrashMode::DropUnsynced => 0,
                CrashMode::TearLastWrite if i + 1 < count => data.len(),
                CrashMode::TearLastWrite => torn_len(&mut s.rng, data.len()),
                CrashMode::Random => match s.rng.below(3) {
                    0 => 0,
                    1 => data.len(),
                    _ => torn_len(&mut s.rng, data.len()),
                },
                CrashMode::Reorder => match s.rng.below(2) {
                    0 => 0,
                    _ => data.len(),
                },
            };
            if keep > 0 {
                apply_write(&mut image, *off, &data[..keep]);
            }
        }
        out.insert(
            ino,
            Node {
                live: image.clone(),
                durable: image,
                pending: Vec::new(),
            },
        );
    }
    (out, names)
}

fn torn_len(rng: &mut SimRng, len: usize) -> usize {
    let sectors = len.div_ceil(512) as u64;
    let keep = rng.below(sectors) as usize * 512;
    keep.min(len)
}

fn apply_write(image: &mut Vec<u8>, off: u64, data: &[u8]) {
    let off = off as usize;
    if image.len() < off + data.len() {
        image.resize(off + data.len(), 0);
    }
    image[off..off + data.len()].copy_from_slice(data);
}

impl State {
    /// Checks faults for `op`; consumes one-shot faults that fire.
    fn check(&mut self, op: Op, path: &Path) -> Result<()> {
        let mut hit = None;
        for (i, f) in self.faults.iter_mut().enumerate() {
            if f.op != op {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
                continue;
            }
            hit = Some(i);
            break;
        }
        if let Some(i) = hit {
            if !self.faults[i].persistent {
                self.faults.remove(i);
            }
            let name = match op {
                Op::Open => "open",
                Op::Read => "read",
                Op::Write => "write",
                Op::Sync => "fdatasync",
                Op::SyncDir => "fsync directory",
                Op::Rename => "rename",
                Op::Remove => "remove",
            };
            return Err(Error::io(name, path, eio("injected fault")));
        }
        Ok(())
    }

    fn durable_allowed(&mut self) -> bool {
        self.syncs += 1;
        match self.syncs_durable_max {
            Some(max) => self.syncs <= max,
            None => true,
        }
    }

    fn total_live(&self) -> u64 {
        self.nodes.values().map(|n| n.live.len() as u64).sum()
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, opts: OpenOptions) -> Result<Arc<dyn FileHandle>> {
        let mut s = self.lock_state();
        self.check_epoch(&s, "open", path)?;
        s.check(Op::Open, path)?;
        let exists = s.live.contains_key(path);
        if opts.create_new && exists {
            return Err(Error::io(
                "open",
                path,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        let ino = match s.live.get(path) {
            Some(&ino) => ino,
            None if opts.create || opts.create_new => {
                let ino = s.next_inode;
                s.next_inode += 1;
                s.nodes.insert(ino, Node::default());
                s.live.insert(path.to_path_buf(), ino);
                s.log_ns(NsOp::Link {
                    path: path.to_path_buf(),
                    ino,
                    from: None,
                });
                ino
            }
            None => {
                return Err(Error::io(
                    "open",
                    path,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ))
            }
        };
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            ino,
            path: path.to_path_buf(),
            epoch: s.epoch,
            direct: opts.direct,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut s = self.lock_state();
        self.check_epoch(&s, "rename", from)?;
        s.check(Op::Rename, from)?;
        let Some(ino) = s.live.remove(from) else {
            return Err(Error::io(
                "rename",
                from,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        };
        s.live.insert(to.to_path_buf(), ino);
        s.log_ns(NsOp::Link {
            path: to.to_path_buf(),
            ino,
            from: Some(from.to_path_buf()),
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut s = self.lock_state();
        self.check_epoch(&s, "remove", path)?;
        s.check(Op::Remove, path)?;
        if s.live.remove(path).is_none() {
            return Err(Error::io(
                "remove",
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        s.log_ns(NsOp::Unlink {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut s = self.lock_state();
        self.check_epoch(&s, "fsync directory", dir)?;
        s.check(Op::SyncDir, dir)?;
        s.run_sync_hook(self.seed);
        if !s.durable_allowed() {
            return Ok(());
        }
        s.ns_log.retain(|op| !op.in_dir(dir));
        let in_dir = |p: &Path| p.parent() == Some(dir);
        s.durable.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, u64)> = s
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        s.durable.extend(entries);
        Ok(())
    }

    fn create_dir_all(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let s = self.lock_state();
        self.check_epoch(&s, "read directory", dir)?;
        let mut names: Vec<String> = s
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        self.lock_state().live.contains_key(path)
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let mut s = self.lock_state();
        self.check_epoch(&s, "lock", path)?;
        if !s.locks.insert(path.to_path_buf()) {
            return Err(Error::Locked(
                path.parent().unwrap_or(path).display().to_string(),
            ));
        }
        Ok(Box::new(SimLock {
            fs: self.clone(),
            path: path.to_path_buf(),
            epoch: s.epoch,
        }))
    }

    fn backend(&self) -> Backend {
        Backend::Sim
    }

    fn for_new_process(&self) -> Option<Arc<dyn Fs>> {
        let epoch = self.lock_state().epoch;
        Some(Arc::new(SimFs {
            state: Arc::clone(&self.state),
            seed: self.seed,
            epoch: Some(epoch),
        }))
    }
}

#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    path: PathBuf,
    epoch: u64,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.fs.lock_state();
        if s.epoch == self.epoch {
            s.locks.remove(&self.path);
        }
    }
}

/// A handle on a simulated file.
#[derive(Debug)]
pub struct SimFile {
    fs: SimFs,
    ino: u64,
    path: PathBuf,
    epoch: u64,
    direct: bool,
}

impl SimFile {
    fn with_node<T>(&self, op: Op, f: impl FnOnce(&mut State, u64) -> Result<T>) -> Result<T> {
        let mut s = self.fs.lock_state();
        if s.epoch != self.epoch {
            return Err(Error::io(
                "use handle",
                &self.path,
                std::io::Error::other("simulated crash: handle opened before the crash"),
            ));
        }
        s.check(op, &self.path)?;
        if !s.nodes.contains_key(&self.ino) {
            return Err(Error::io(
                "use handle",
                &self.path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        f(&mut s, self.ino)
    }
}

fn node(s: &mut State, ino: u64) -> &mut Node {
    s.nodes.entry(ino).or_default()
}

impl FileHandle for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.with_node(Op::Read, |s, ino| {
            let n = node(s, ino);
            let off = offset as usize;
            if off >= n.live.len() {
                return Ok(0);
            }
            let len = buf.len().min(n.live.len() - off);
            buf[..len].copy_from_slice(&n.live[off..off + len]);
            Ok(len)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let path = self.path.clone();
        self.with_node(Op::Write, |s, ino| {
            if let Some(max) = s.space_bytes_max {
                let cur = node(s, ino).live.len() as u64;
                let grow = (offset + buf.len() as u64).saturating_sub(cur);
                if s.total_live() + grow > max {
                    return Err(Error::io(
                        "write",
                        &path,
                        std::io::Error::from_raw_os_error(libc::ENOSPC),
                    ));
                }
            }
            // Once durability is frozen, power is gone: a later write can
            // never reach the disk, whatever the crash mode keeps.
            let after_power_loss = s.after_power_loss();
            let n = node(s, ino);
            apply_write(&mut n.live, offset, buf);
            if !after_power_loss {
                n.pending.push((offset, buf.to_vec()));
            }
            Ok(())
        })
    }

    fn sync_data(&self) -> Result<()> {
        let seed = self.fs.seed;
        self.with_node(Op::Sync, |s, ino| {
            s.run_sync_hook(seed);
            if s.durable_allowed() {
                let n = node(s, ino);
                n.durable = n.live.clone();
                n.pending.clear();
            }
            Ok(())
        })
    }

    fn sync_all(&self) -> Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.with_node(Op::Write, |s, ino| {
            let n = node(s, ino);
            n.live.resize(len as usize, 0);
            // A length change is not a byte write a crash could tear; it
            // becomes durable with the next sync like the data.
            Ok(())
        })
    }

    fn len(&self) -> Result<u64> {
        self.with_node(Op::Read, |s, ino| Ok(node(s, ino).live.len() as u64))
    }

    fn map(&self) -> Result<Mapping> {
        self.with_node(Op::Read, |s, ino| {
            Ok(Mapping::Bytes(node(s, ino).live.clone()))
        })
    }

    fn is_direct(&self) -> bool {
        self.direct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_bytes_and_entries_vanish_on_crash() {
        let fs = SimFs::new(1);
        let dir = Path::new("/db");
        let a = dir.join("a");
        let f = fs.open(&a, OpenOptions::write_create()).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        f.write_at(b" world", 5).unwrap();
        let b = dir.join("b");
        fs.open(&b, OpenOptions::write_create()).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert!(f.read_at(&mut [0u8; 4], 0).is_err(), "old handles die");
        assert!(!fs.exists(&b));
        let f = fs.open(&a, OpenOptions::read()).unwrap();
        let mut buf = [0u8; 16];
        let n = f.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"hello");
    }

    #[test]
    fn faults_fire_on_cue() {
        let fs = SimFs::new(2);
        let f = fs
            .open(Path::new("/x"), OpenOptions::write_create())
            .unwrap();
        fs.fail_nth(Op::Sync, 1);
        f.sync_data().unwrap();
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap();
        fs.set_space_limit(Some(10));
        assert!(f.write_at(&[0u8; 11], 0).unwrap_err().is_disk_full());
    }

    #[test]
    fn frozen_durability_keeps_the_old_image() {
        let fs = SimFs::new(3);
        let p = Path::new("/d/f");
        let f = fs.open(p, OpenOptions::write_create()).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        f.write_at(b"one", 0).unwrap();
        fs.freeze_durability_after(1);
        f.sync_data().unwrap();
        f.write_at(b"two", 0).unwrap();
        f.sync_data().unwrap();
        fs.crash(CrashMode::DropUnsynced);
        let f = fs.open(p, OpenOptions::read()).unwrap();
        let mut buf = [0u8; 3];
        f.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"one");
    }
}
