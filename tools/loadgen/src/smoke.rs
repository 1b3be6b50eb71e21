//! The `smoke` workload: a short run of every operation whose answers are
//! checked, so the tool, the client codec and the server (or engine) are
//! known to agree before any number is believed.
//!
//! Each connection owns a key range no other connection and no other
//! workload touches: keys are `smoke-<seed, 16 hex digits>/<index, 12
//! decimal digits>`, connection `t` using indexes
//! `[t * KEYS_PER_CONNECTION, (t + 1) * KEYS_PER_CONNECTION)`. It
//!
//! 1. deletes whatever an earlier run with the same seed left there;
//! 2. sends random puts (values of random length up to `--value-size`,
//!    naming their key and generation), gets, deletes and range scans,
//!    `--pipeline` at a time, and checks every answer against a
//!    `BTreeMap` model updated in send order (a connection reads its own
//!    writes in order, in the server as in the engine);
//! 3. reads every key it touched back — a key put must return its last
//!    value, a deleted key NOT_FOUND — and scans its whole range against
//!    the model.
//!
//! Any difference is a mismatch: counted, the first few described, and
//! the tool exits 1.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::recorder::Recorder;
use crate::rng::Rng;
use crate::runner::{Context, ThreadOutcome};
use crate::session::{Outcome, Req, Session};
use crate::workload::OpKind;

/// Keys each connection works on: few enough that puts, gets and deletes
/// keep meeting the same keys in a run of a few seconds.
const KEYS_PER_CONNECTION: u64 = 1000;
/// Most pairs one random scan asks for.
const SCAN_PAIRS_MAX: u64 = 20;
/// Pairs per page when cleaning up and verifying a whole range.
const RANGE_PAGE_PAIRS: u32 = 100;
/// Mismatches described in full per run; the rest are only counted.
const NOTES_MAX: usize = 20;

/// Key-value pairs in key order.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The verdict of a smoke run.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Answers compared with the model during the run.
    pub answers_checked: u64,
    /// Keys read back at the end.
    pub keys_verified: u64,
    /// Answers that differed from the model.
    pub mismatches: u64,
    /// The first mismatches, described.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// Adds another connection's verdict.
    pub fn merge(&mut self, other: CheckReport) {
        self.answers_checked += other.answers_checked;
        self.keys_verified += other.keys_verified;
        self.mismatches += other.mismatches;
        let room = NOTES_MAX.saturating_sub(self.notes.len());
        self.notes.extend(other.notes.into_iter().take(room));
    }
}

/// The answer the model predicts.
#[derive(Debug)]
enum Expect {
    Done,
    Value(Option<Vec<u8>>),
    Pairs(Pairs),
}

/// A request sent and what it should get.
struct Sent {
    what: String,
    kind: OpKind,
    expect: Expect,
    start: Instant,
}

/// One connection's smoke run.
pub fn connection(
    ctx: &Context<'_>,
    t: usize,
    session: Box<dyn Session>,
    rng: Rng,
) -> Result<ThreadOutcome, String> {
    let base = t as u64 * KEYS_PER_CONNECTION;
    let mut s = Smoke {
        ctx,
        t,
        session,
        prefix: format!("smoke-{:016x}/", ctx.cfg.seed).into_bytes(),
        base,
        model: BTreeMap::new(),
        generation: 0,
        rng,
        rec: Recorder::default(),
        report: CheckReport::default(),
    };
    s.clean_range()?;
    s.random_ops()?;
    let finished = Instant::now();
    s.verify()?;
    Ok(ThreadOutcome {
        rec: s.rec,
        check: Some(s.report),
        finished,
    })
}

struct Smoke<'a> {
    ctx: &'a Context<'a>,
    t: usize,
    session: Box<dyn Session>,
    prefix: Vec<u8>,
    base: u64,
    /// Index -> value (`None`: deleted). Keys never touched are absent.
    model: BTreeMap<u64, Option<Vec<u8>>>,
    generation: u64,
    rng: Rng,
    rec: Recorder,
    report: CheckReport,
}

impl Smoke<'_> {
    fn key(&self, index: u64) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(format!("{index:012}").as_bytes());
        k
    }

    fn range_end(&self) -> Vec<u8> {
        self.key(self.base + KEYS_PER_CONNECTION)
    }

    /// Deletes every key of this connection's range.
    fn clean_range(&mut self) -> Result<(), String> {
        let (start, end) = (self.key(self.base), self.range_end());
        // Each round deletes a page; a range holds at most
        // KEYS_PER_CONNECTION keys, so more rounds mean deletes are lost.
        for _ in 0..=KEYS_PER_CONNECTION / u64::from(RANGE_PAGE_PAIRS) + 1 {
            let (pairs, _) = self.scan_page(&start, &end, RANGE_PAGE_PAIRS)?;
            if pairs.is_empty() {
                return Ok(());
            }
            for (k, _) in &pairs {
                self.session.send(Req::Delete { key: k })?;
            }
            self.session.flush()?;
            for _ in &pairs {
                match self.session.recv()? {
                    Outcome::Done => {}
                    other => return Err(format!("DELETE answered {}", describe(&other))),
                }
            }
        }
        Err(format!(
            "connection {}: deleting the keys an earlier run left in its range did not \
             empty it",
            self.t
        ))
    }

    /// One page of a range, outside the measured operations.
    fn scan_page(&mut self, start: &[u8], end: &[u8], limit: u32) -> Result<(Pairs, bool), String> {
        self.session.send(Req::Scan {
            start,
            end: Some(end),
            limit,
        })?;
        self.session.flush()?;
        match self.session.recv()? {
            Outcome::Pairs { pairs, more } => Ok((pairs, more)),
            other => Err(format!("SCAN answered {}", describe(&other))),
        }
    }

    /// Random operations in batches of `--pipeline` until the budget ends.
    fn random_ops(&mut self) -> Result<(), String> {
        let depth = self.ctx.cfg.pipeline;
        let mut batch: Vec<Sent> = Vec::with_capacity(depth);
        loop {
            let now = Instant::now();
            while batch.len() < depth {
                if self.ctx.shared.budget.claim().is_none() {
                    break;
                }
                let sent = self.send_random(now)?;
                batch.push(sent);
            }
            if batch.is_empty() {
                return Ok(());
            }
            self.session.flush()?;
            for sent in batch.drain(..) {
                let got = self.session.recv()?;
                self.rec.record(sent.kind, sent.start.elapsed());
                self.ctx
                    .shared
                    .completed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.check(&sent, &got);
            }
        }
    }

    /// Sends one random operation and updates the model as it will apply.
    fn send_random(&mut self, start: Instant) -> Result<Sent, String> {
        let index = self.base + self.rng.below(KEYS_PER_CONNECTION);
        let key = self.key(index);
        let name = String::from_utf8_lossy(&key).into_owned();
        let dice = self.rng.below(100);
        let (what, kind, expect) = if dice < 40 {
            let value = self.value(index);
            self.session.send(Req::Put {
                key: &key,
                value: &value,
            })?;
            self.model.insert(index, Some(value));
            (format!("PUT {name}"), OpKind::Write, Expect::Done)
        } else if dice < 70 {
            self.session.send(Req::Get { key: &key })?;
            let v = self.model.get(&index).cloned().flatten();
            (format!("GET {name}"), OpKind::Read, Expect::Value(v))
        } else if dice < 85 {
            self.session.send(Req::Delete { key: &key })?;
            self.model.insert(index, None);
            (format!("DELETE {name}"), OpKind::Delete, Expect::Done)
        } else {
            let limit = 1 + self.rng.below(SCAN_PAIRS_MAX);
            let end = self.range_end();
            self.session.send(Req::Scan {
                start: &key,
                end: Some(&end),
                limit: limit as u32,
            })?;
            let pairs = self.live_from(index, limit as usize);
            (
                format!("SCAN {name} limit {limit}"),
                OpKind::Scan,
                Expect::Pairs(pairs),
            )
        };
        Ok(Sent {
            what,
            kind,
            expect,
            start,
        })
    }

    /// A value naming its key and generation, of random length.
    fn value(&mut self, index: u64) -> Vec<u8> {
        self.generation += 1;
        let mut v = format!("{index}:{}:{}:", self.t, self.generation).into_bytes();
        let want = self.rng.below(self.ctx.cfg.value_size as u64 + 1) as usize;
        let fill = want.saturating_sub(v.len());
        v.extend_from_slice(self.ctx.pool.value(&mut self.rng, fill));
        v
    }

    /// Up to `limit` live pairs of the model from `index` on.
    fn live_from(&self, index: u64, limit: usize) -> Pairs {
        self.model
            .range(index..)
            .filter_map(|(i, v)| v.as_ref().map(|v| (self.key(*i), v.clone())))
            .take(limit)
            .collect()
    }

    /// Compares an answer with the model's prediction.
    fn check(&mut self, sent: &Sent, got: &Outcome) {
        self.report.answers_checked += 1;
        let ok = match (&sent.expect, got) {
            (Expect::Done, Outcome::Done) => true,
            (Expect::Value(Some(want)), Outcome::Found(v)) => want == v,
            (Expect::Value(None), Outcome::NotFound) => true,
            (Expect::Pairs(want), Outcome::Pairs { pairs, more }) => {
                // A page may stop early (size bounds) but must say so.
                pairs.len() <= want.len()
                    && pairs[..] == want[..pairs.len()]
                    && (pairs.len() == want.len() || *more)
            }
            _ => false,
        };
        if !ok {
            let note = format!(
                "connection {}: {}: expected {}, got {}",
                self.t,
                sent.what,
                describe_expect(&sent.expect),
                describe(got)
            );
            self.mismatch(note);
        }
    }

    fn mismatch(&mut self, note: String) {
        self.report.mismatches += 1;
        if self.report.notes.len() < NOTES_MAX {
            self.report.notes.push(note);
        }
    }

    /// Reads back every key touched, then scans the whole range.
    fn verify(&mut self) -> Result<(), String> {
        let depth = self.ctx.cfg.pipeline;
        let touched: Vec<(u64, Option<Vec<u8>>)> =
            self.model.iter().map(|(i, v)| (*i, v.clone())).collect();
        for chunk in touched.chunks(depth) {
            let now = Instant::now();
            let mut sent = Vec::with_capacity(chunk.len());
            for (index, v) in chunk {
                let key = self.key(*index);
                self.session.send(Req::Get { key: &key })?;
                sent.push(Sent {
                    what: format!("final GET {}", String::from_utf8_lossy(&key)),
                    kind: OpKind::Read,
                    expect: Expect::Value(v.clone()),
                    start: now,
                });
            }
            self.session.flush()?;
            for s in &sent {
                let got = self.session.recv()?;
                self.check(s, &got);
                self.report.keys_verified += 1;
            }
        }
        self.verify_range()
    }

    /// Scans the connection's range page by page against the model.
    fn verify_range(&mut self) -> Result<(), String> {
        let want = self.live_from(self.base, usize::MAX);
        let end = self.range_end();
        let mut got: Pairs = Vec::new();
        let mut start = self.key(self.base);
        loop {
            let (pairs, more) = self.scan_page(&start, &end, RANGE_PAGE_PAIRS)?;
            let last = pairs.last().map(|(k, _)| k.clone());
            got.extend(pairs);
            match last {
                Some(mut k) if more => {
                    k.push(0);
                    start = k;
                }
                _ => break,
            }
            if got.len() > want.len() + RANGE_PAGE_PAIRS as usize {
                break;
            }
        }
        self.report.answers_checked += 1;
        if got != want {
            let first_diff = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            let note = format!(
                "connection {}: final scan of its range returned {} pairs, the model has {}; \
                 first difference at pair {first_diff}",
                self.t,
                got.len(),
                want.len()
            );
            self.mismatch(note);
        }
        Ok(())
    }
}

/// A short description of an answer.
fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Done => "OK".into(),
        Outcome::Found(v) => format!("VALUE {}", preview(v)),
        Outcome::NotFound => "NOT_FOUND".into(),
        Outcome::Pairs { pairs, more } => format!(
            "{} pairs{}{}",
            pairs.len(),
            if *more { " (more)" } else { "" },
            pairs
                .first()
                .map(|(k, _)| format!(" from {}", String::from_utf8_lossy(k)))
                .unwrap_or_default()
        ),
    }
}

fn describe_expect(e: &Expect) -> String {
    match e {
        Expect::Done => "OK".into(),
        Expect::Value(Some(v)) => format!("VALUE {}", preview(v)),
        Expect::Value(None) => "NOT_FOUND".into(),
        Expect::Pairs(p) => format!(
            "{} pairs{}",
            p.len(),
            p.first()
                .map(|(k, _)| format!(" from {}", String::from_utf8_lossy(k)))
                .unwrap_or_default()
        ),
    }
}

/// The length and first bytes of a value.
fn preview(v: &[u8]) -> String {
    let head = &v[..v.len().min(24)];
    format!(
        "of {} bytes {:?}{}",
        v.len(),
        String::from_utf8_lossy(head),
        if v.len() > head.len() { "..." } else { "" }
    )
}
