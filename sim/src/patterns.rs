//! Pair patterns: the coverage measure of `roomsim explore` (issue #13, item 3).
//!
//! WHAT: for every pair of bookings that competed for the same room (both checked or
//! inserted into that room for overlapping times), the relative order of their KEY
//! statements — the snapshot read of the day's appointments (`read`), the room's lock
//! (`lock`: `FOR NO KEY UPDATE` or `pg_advisory_xact_lock` of the room's key), the
//! in-transaction check (`check`), the INSERT (`insert`), `commit` and `rollback` — written
//! as one line, e.g. `A.read B.read A.insert A.commit B.insert B.rollback`. A statement that
//! failed carries `!` (`B.commit!`: a 40001 at COMMIT); a statement that had to wait for a
//! lock shows twice: `B.lock~` where it started waiting and `B.lock` where it completed. A booking here is one pooled-connection lease (one HTTP
//! request on the backend; a client's retry is another booking).
//!
//! EPISODES: only what concerns the room is kept, and only the transaction attempts that
//! decided it: the winner's committing attempt, the loser's attempts still open when that one
//! began, and the loser's first attempt after it committed (earlier and later retries met
//! other bookings). Per booking: the last snapshot read before its first kept step, its
//! steps on the room, and the end of each kept attempt (`commit` when the attempt's last INSERT went into the room, else
//! `rollback`: the booking gave the room up, even if it committed another room). A wait is
//! kept only while the OTHER booking holds the room (locked it, or inserted into it, in a
//! transaction still open): a wait for a third booking is not part of the pair's order.
//!
//! DOCTORS AND PATIENTS: the same, for a pair whose INSERTs (or participant checks, the
//! `busy_participant` query after an INSERT that conflicted) name one doctor or one patient
//! at overlapping visit times; the pattern text starts `doctor: ` or `patient: `. No lock is
//! taken for a person: the INSERT is the look (it waits on the other's uncommitted row under
//! the exclusion constraint). Every INSERT names the person whichever room it tries, and a
//! booking that finds rooms taken tries several, so per attempt only the last INSERT (with its
//! wait, and the check after it) is kept.
//!
//! CONTESTED: a pair counts only when it decided the room between them: both took it (a
//! double booking), or one took it and the other's last look at the room (lock, check or
//! INSERT) came after the winner's INSERT into it. A pair that both lost the room to a third
//! booking, or whose loser gave up before the winner inserted, competed with someone else.
//!
//! CANONICAL FORM: two orders that differ only by swapping independent statements are one
//! pattern. Independence is `roomsim check`'s (`check/scheduler.rs`, `Effect`): a pure read
//! (the snapshot read outside a transaction, or the check inside a READ COMMITTED one)
//! commutes with any statement of the other booking except its COMMIT. The pattern is the
//! lexicographically smallest order of the pair's key statements that keeps every dependent
//! pair in place, under both ways of naming the two bookings A and B (the smaller text wins),
//! with a booking's consecutive equal steps merged. This is what makes `check`'s reduced
//! search (sleep sets: one order per class of equivalent orders) enumerate every pattern.
//!
//! POSSIBLE patterns of a strategy come from `check`'s exhaustive search of the 2-booking,
//! 1-room, same-slot scope, and for workloads with random participants also of 2 bookings of
//! one doctor, then of one patient, in 2 rooms ([`possible`]): every schedule's pattern.
//! Computed once per strategy per process (a few seconds; see sim/README.md).
//!
//! COVERAGE over seeds ([`Coverage`]): per pattern the seeds it was seen in and the first k of
//! them (mergeable across shards), the seeds needed until every seen pattern was seen in at
//! least k seeds, and until every possible pattern was seen; patterns possible but never seen
//! and patterns seen but NOT possible (a bug in a strategy, the model or this extraction).
//!
//! NOT MODELLED: the effect of a third booking on a pair (a pattern of three or more is not
//! abstracted; the 2-booking possible set does not contain what only a third booking can
//! cause: e.g. under exclusion, B's INSERT finds a third booking's row in its room, inserts
//! nothing without waiting for A, and B's participant check then finds A committed), and
//! whether an INSERT inserted a row (`INSERT 0 0` is not marked).
//!
//! Deterministic: BTreeMap/BTreeSet only, no clocks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use backend_core::booking::transaction::room_lock_key;
use backend_core::db::SqlValue;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::check::{CheckConfig, Shape, run_check};
use crate::error::SimError;

/// `--pattern-k` when not given.
pub const PATTERN_K_DEFAULT: u32 = 3;

/// What a statement is, for the patterns. Times are µs since the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// `BEGIN …`; `read_committed` from its isolation level.
    Begin {
        read_committed: bool,
    },
    Commit,
    Rollback,
    /// The snapshot's SELECT of the day's appointments.
    Read,
    /// A room's row lock.
    LockRoom(Uuid),
    /// A transaction-scoped advisory lock (`pg_advisory_xact_lock`, not the idempotency key's
    /// `pg_try_advisory_xact_lock`): a room's key.
    LockKey(i64),
    /// The room check: the room and the blocked interval `[from, until)` it asks about.
    Check {
        room: Uuid,
        from: i64,
        until: i64,
    },
    /// INSERT INTO appointments; `room` `None` for `room_pending`; `people` its doctor and
    /// patient (`None` when the parameters do not say).
    Insert {
        room: Option<(Uuid, i64, i64)>,
        people: Option<People>,
    },
    /// Which of its doctor and patient is busy, asked after an INSERT that conflicted
    /// (`busy_participant`): a look at both.
    PeopleCheck(People),
    /// Anything else (policy and clinic reads, idempotency, the participant query).
    Other,
}

impl Statement {
    /// The doctor and patient an INSERT or a participant check is about.
    fn people(&self) -> Option<People> {
        match self {
            Statement::Insert { people, .. } => *people,
            Statement::PeopleCheck(p) => Some(*p),
            _ => None,
        }
    }
}

/// Who an appointment occupies, and when: its doctor and patient over `[from, until)` (the
/// visit, without the room's turnover).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct People {
    pub doctor: Uuid,
    pub patient: Uuid,
    pub from: i64,
    pub until: i64,
}

/// What two bookings compete for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Resource {
    Room(Uuid),
    Doctor(Uuid),
    Patient(Uuid),
}

impl Resource {
    /// What a pattern of this resource starts with: nothing for a room (the patterns kept
    /// their text when doctors and patients were added), `doctor: ` or `patient: `.
    fn prefix(self) -> &'static str {
        match self {
            Resource::Room(_) => "",
            Resource::Doctor(_) => "doctor: ",
            Resource::Patient(_) => "patient: ",
        }
    }
}

/// The kinds of key statement, in the order their names sort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Check,
    Commit,
    Insert,
    Lock,
    Read,
    Rollback,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Check => "check",
            Kind::Commit => "commit",
            Kind::Insert => "insert",
            Kind::Lock => "lock",
            Kind::Read => "read",
            Kind::Rollback => "rollback",
        }
    }
}

/// What backend-core's booking statements are (`booking/snapshot.rs`, `booking/transaction.rs`).
pub fn classify(sql: &str, params: &[SqlValue]) -> Statement {
    let sql = sql.trim_start();
    let upper_start: String = sql.chars().take(12).collect::<String>().to_ascii_uppercase();
    if upper_start.starts_with("BEGIN") {
        let read_committed = !sql.to_ascii_uppercase().contains("ISOLATION LEVEL")
            || sql.to_ascii_uppercase().contains("READ COMMITTED");
        return Statement::Begin { read_committed };
    }
    if upper_start.starts_with("COMMIT") {
        return Statement::Commit;
    }
    if upper_start.starts_with("ROLLBACK") {
        return Statement::Rollback;
    }
    let uuid = |i: usize| match params.get(i) {
        Some(SqlValue::Uuid(u)) => Some(*u),
        _ => None,
    };
    let time = |i: usize| match params.get(i) {
        Some(SqlValue::Timestamp(t)) => Some(t.timestamp_micros()),
        _ => None,
    };
    if sql.starts_with("SELECT id, clinic_id, room_id") && sql.contains("FROM appointments") {
        return Statement::Read;
    }
    if sql.starts_with("SELECT id FROM rooms") && sql.contains("FOR NO KEY UPDATE") {
        return uuid(0).map_or(Statement::Other, Statement::LockRoom);
    }
    if sql.starts_with("SELECT pg_advisory_xact_lock(") {
        return match params.first() {
            Some(SqlValue::Int(key)) => Statement::LockKey(*key),
            _ => Statement::Other,
        };
    }
    if sql.starts_with("SELECT count(*) AS overlapping FROM appointments") {
        return match (uuid(0), time(2), time(1)) {
            (Some(room), Some(from), Some(until)) => Statement::Check { room, from, until },
            _ => Statement::Other,
        };
    }
    let people = |doctor: usize, patient: usize, from: usize, until: usize| match (
        uuid(doctor),
        uuid(patient),
        time(from),
        time(until),
    ) {
        (Some(doctor), Some(patient), Some(from), Some(until)) => {
            Some(People { doctor, patient, from, until })
        }
        _ => None,
    };
    if sql.starts_with("SELECT doctor_id, patient_id FROM appointments") {
        // (doctor_id = $1 OR patient_id = $2) AND starts_at < $3 (its end) AND ends_at > $4.
        return people(0, 1, 3, 2).map_or(Statement::Other, Statement::PeopleCheck);
    }
    if sql.starts_with("INSERT INTO appointments") {
        if sql.contains("$2, NULL,") {
            // room_pending: ($1 id, $2 clinic, NULL, $3 doctor, $4 patient, $5 type, $6, $7).
            return Statement::Insert { room: None, people: people(2, 3, 5, 6) };
        }
        let people = people(3, 4, 6, 7);
        return match (uuid(2), time(6), time(9)) {
            (Some(room), Some(from), Some(until)) => {
                Statement::Insert { room: Some((room, from, until)), people }
            }
            _ => Statement::Other,
        };
    }
    Statement::Other
}

/// One key statement of one booking, in the order statements took effect.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    booking: u64,
    kind: Kind,
    /// The room a lock, check or insert is about (a lock by key is resolved at the end).
    room: Option<Uuid>,
    /// The doctor and patient an insert or a participant check is about.
    people: Option<(Uuid, Uuid)>,
    lock_key: Option<i64>,
    /// A pure read in `check`'s sense (commutes with all but the other's COMMIT).
    pure: bool,
    failed: bool,
    /// The statement started waiting for a lock here (it completes in a later step).
    waits: bool,
    /// The booking's transaction attempt (counted by BEGIN) the step belongs to.
    attempt: u32,
}

impl Step {
    /// Whether the step is about `resource` (reads are about everything, and kept apart).
    fn concerns(&self, resource: Resource) -> bool {
        match resource {
            Resource::Room(room) => self.room == Some(room),
            Resource::Doctor(doctor) => self.people.is_some_and(|(d, _)| d == doctor),
            Resource::Patient(patient) => self.people.is_some_and(|(_, p)| p == patient),
        }
    }
}

#[derive(Default)]
struct BookingState {
    attempt: u32,
    in_transaction: bool,
    read_committed: bool,
    /// Room → blocked intervals, doctor and patient → visits the booking checked or inserted.
    claims: BTreeMap<Resource, Vec<(i64, i64)>>,
}

/// Collects the statements of a run (or a `check` schedule) in the order they took effect,
/// and turns them into pair patterns.
#[derive(Default)]
pub struct Recorder {
    bookings: BTreeMap<u64, BookingState>,
    steps: Vec<Step>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// `booking`'s statement took effect (ran, or completed after waiting); `failed`: it
    /// answered an error.
    pub fn statement(&mut self, booking: u64, statement: &Statement, failed: bool) {
        let state = self.bookings.entry(booking).or_default();
        if matches!(statement, Statement::Begin { .. }) {
            state.attempt += 1;
        }
        let attempt = state.attempt;
        let pure_check = !state.in_transaction || state.read_committed;
        let people = statement.people();
        if let Some(p) = people {
            for who in [Resource::Doctor(p.doctor), Resource::Patient(p.patient)] {
                state.claims.entry(who).or_default().push((p.from, p.until));
            }
        }
        let people = people.map(|p| (p.doctor, p.patient));
        let mut step = |kind: Kind, room: Option<Uuid>, lock_key: Option<i64>, pure: bool| {
            let waits = false;
            let step = Step { booking, kind, room, people, lock_key, pure, failed, waits, attempt };
            self.steps.push(step);
        };
        match statement {
            Statement::Begin { read_committed } => {
                state.in_transaction = !failed;
                state.read_committed = *read_committed;
            }
            Statement::Commit => {
                state.in_transaction = false;
                step(Kind::Commit, None, None, false);
            }
            Statement::Rollback => {
                state.in_transaction = false;
                step(Kind::Rollback, None, None, false);
            }
            Statement::Read => {
                let pure = !state.in_transaction || state.read_committed;
                step(Kind::Read, None, None, pure);
            }
            Statement::LockRoom(room) => step(Kind::Lock, Some(*room), None, false),
            Statement::LockKey(key) => step(Kind::Lock, None, Some(*key), false),
            Statement::Check { room, from, until } => {
                state.claims.entry(Resource::Room(*room)).or_default().push((*from, *until));
                step(Kind::Check, Some(*room), None, pure_check);
            }
            Statement::PeopleCheck(_) => step(Kind::Check, None, None, pure_check),
            Statement::Insert { room, .. } => {
                if let Some((room, from, until)) = room {
                    state.claims.entry(Resource::Room(*room)).or_default().push((*from, *until));
                }
                let room = room.map(|(room, _, _)| room);
                if room.is_some() || people.is_some() {
                    step(Kind::Insert, room, None, false);
                }
            }
            Statement::Other => {}
        }
    }

    /// `booking`'s statement started waiting for a lock (it completes later, through
    /// [`Recorder::statement`]).
    pub fn blocked(&mut self, booking: u64, statement: &Statement) {
        let (kind, room, lock_key) = match statement {
            Statement::LockRoom(room) => (Kind::Lock, Some(*room), None),
            Statement::LockKey(key) => (Kind::Lock, None, Some(*key)),
            Statement::Check { room, .. } => (Kind::Check, Some(*room), None),
            Statement::PeopleCheck(_) => (Kind::Check, None, None),
            Statement::Insert { room, people } if room.is_some() || people.is_some() => {
                (Kind::Insert, room.map(|(room, _, _)| room), None)
            }
            Statement::Commit => (Kind::Commit, None, None),
            Statement::Rollback => (Kind::Rollback, None, None),
            _ => return,
        };
        let people = statement.people().map(|p| (p.doctor, p.patient));
        let attempt = self.bookings.entry(booking).or_default().attempt;
        let (pure, failed, waits) = (false, false, true);
        let step = Step { booking, kind, room, people, lock_key, pure, failed, waits, attempt };
        self.steps.push(step);
    }

    /// Pattern → number of (pair, room) competitions with it.
    pub fn patterns(mut self) -> BTreeMap<String, u64> {
        // A lock by key belongs to the claimed room with that key.
        for step in &mut self.steps {
            if let Some(key) = step.lock_key
                && let Some(state) = self.bookings.get(&step.booking)
            {
                step.room = state.claims.keys().find_map(|r| match r {
                    Resource::Room(room) if room_lock_key(*room) == key => Some(*room),
                    _ => None,
                });
            }
        }
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        let bookings: Vec<(&u64, &BookingState)> = self.bookings.iter().collect();
        for (i, (a, sa)) in bookings.iter().enumerate() {
            for (b, sb) in &bookings[i + 1..] {
                for (resource, ia) in &sa.claims {
                    let Some(ib) = sb.claims.get(resource) else { continue };
                    let overlap = ia.iter().any(|x| ib.iter().any(|y| x.0 < y.1 && y.0 < x.1));
                    if !overlap {
                        continue;
                    }
                    let steps = episode(&self.steps, **a, **b, *resource);
                    if !contested(&steps, **a, **b) {
                        continue;
                    }
                    let steps: Vec<&Step> = steps.iter().collect();
                    let pattern = format!("{}{}", resource.prefix(), pattern_of(&steps, **a, **b));
                    *out.entry(pattern).or_default() += 1;
                }
            }
        }
        out
    }
}

/// The pair's steps about `room`, in order (module doc, EPISODES): the attempts that decided
/// the room; per booking the last snapshot read before its first kept step, its locks,
/// checks and inserts on the room in those attempts, and their ends (`commit` only when the
/// attempt's last INSERT was into the room, else `rollback`: it gave the room up); a wait
/// only while the other booking holds the room (it locked or inserted into it in a
/// transaction still open). Empty when neither booking took the room.
fn episode(steps: &[Step], a: u64, b: u64, resource: Resource) -> Vec<Step> {
    let on_room = |s: &Step| s.concerns(resource) && s.kind != Kind::Read;
    // Per booking and attempt on the room: (first step, end step, how it ended).
    let mut attempts: BTreeMap<(u64, u32), (usize, Option<usize>, Kind)> = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        if (s.booking == a || s.booking == b) && on_room(s) {
            attempts.entry((s.booking, s.attempt)).or_insert((i, None, Kind::Rollback));
        }
    }
    for (&(booking, attempt), value) in attempts.iter_mut() {
        let mine = |s: &&Step| s.booking == booking && s.attempt == attempt && !s.waits;
        let last_insert = steps.iter().filter(mine).rfind(|s| s.kind == Kind::Insert);
        let took = last_insert.is_some_and(|s| s.concerns(resource));
        let end = steps
            .iter()
            .enumerate()
            .find(|(_, s)| mine(s) && matches!(s.kind, Kind::Commit | Kind::Rollback));
        if let Some((i, s)) = end {
            value.1 = Some(i);
            value.2 = if took && s.kind == Kind::Commit && !s.failed {
                Kind::Commit
            } else {
                Kind::Rollback
            };
        }
    }
    // The attempts that decided the room: the winner's committing attempt; the loser's
    // attempts that were still open when it began, and the first one after its commit.
    let won: Vec<(u64, u32, usize, usize)> = attempts
        .iter()
        .filter(|(_, v)| v.2 == Kind::Commit)
        .map(|(&(booking, attempt), v)| (booking, attempt, v.0, v.1.unwrap_or(usize::MAX)))
        .collect();
    let winners: BTreeSet<u64> = won.iter().map(|w| w.0).collect();
    let kept: BTreeSet<(u64, u32)> = match winners.len() {
        0 => return Vec::new(),
        2 => attempts.keys().copied().collect(),
        _ => {
            let &(winner, decisive, began, committed) = won.last().expect("one winner");
            let mut kept = BTreeSet::from([(winner, decisive)]);
            let mut after_commit = false;
            for (&(booking, attempt), v) in &attempts {
                if booking == winner || v.1.is_some_and(|end| end < began) {
                    continue;
                }
                if v.0 > committed {
                    if after_commit {
                        continue;
                    }
                    after_commit = true;
                }
                kept.insert((booking, attempt));
            }
            kept
        }
    };
    let mut keep = vec![false; steps.len()];
    for booking in [a, b] {
        let first = (0..steps.len()).find(|&i| {
            let s = &steps[i];
            s.booking == booking && kept.contains(&(booking, s.attempt)) && on_room(s)
        });
        let Some(first) = first else { continue };
        let read =
            (0..first).rev().find(|&i| steps[i].booking == booking && steps[i].kind == Kind::Read);
        if let Some(read) = read {
            keep[read] = true;
        }
        for (i, s) in steps.iter().enumerate() {
            let ends = matches!(s.kind, Kind::Commit | Kind::Rollback) && !s.waits;
            if s.booking == booking && kept.contains(&(booking, s.attempt)) && (on_room(s) || ends)
            {
                keep[i] = true;
            }
        }
    }
    if !matches!(resource, Resource::Room(_)) {
        // Every INSERT names the doctor and patient, whichever room it tries: a booking that
        // found rooms taken (by anyone) tries several. Only the attempt's last INSERT (with
        // its wait, and the participant check after it) is its look at the person.
        for &(booking, attempt) in &kept {
            let mine: Vec<usize> = (0..steps.len())
                .filter(|&i| {
                    let s = &steps[i];
                    keep[i] && s.booking == booking && s.attempt == attempt && on_room(s)
                })
                .collect();
            let decisive = |i: &&usize| !steps[**i].waits && steps[**i].kind == Kind::Insert;
            let Some(&last) = mine.iter().rfind(decisive) else { continue };
            let settled = |i: &&usize| **i < last && !steps[**i].waits;
            if let Some(&before) = mine.iter().rfind(settled) {
                for &i in mine.iter().filter(|&&i| i <= before) {
                    keep[i] = false;
                }
            }
        }
    }
    let ends: BTreeMap<(u64, u32), Kind> = attempts.iter().map(|(k, v)| (*k, v.2)).collect();
    let mut out = Vec::new();
    let mut holds: BTreeMap<u64, bool> = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        let other = if s.booking == a { b } else { a };
        let mut s = s.clone();
        match s.kind {
            Kind::Commit | Kind::Rollback => {
                holds.insert(s.booking, false);
                // A commit of another room gives this one up; a failed COMMIT stays one.
                if ends.get(&(s.booking, s.attempt)) == Some(&Kind::Rollback) && !s.failed {
                    s.kind = Kind::Rollback;
                }
            }
            Kind::Lock | Kind::Insert if !s.waits && !s.failed => {
                holds.insert(s.booking, true);
            }
            _ => {}
        }
        if s.waits && !holds.get(&other).copied().unwrap_or(false) {
            continue; // It waited for a third booking.
        }
        out.push(s);
    }
    out
}

/// Whether the pair decided the room between them (module doc, CONTESTED): both took it, or
/// one took it and the other gave it up after the winner's INSERT into it.
fn contested(steps: &[Step], a: u64, b: u64) -> bool {
    let won = |x: u64| steps.iter().any(|s| s.booking == x && s.kind == Kind::Commit && !s.failed);
    let (winner, loser) = match (won(a), won(b)) {
        (true, true) => return true,
        (false, false) => return false,
        (true, false) => (a, b),
        (false, true) => (b, a),
    };
    let last = |x: u64, kinds: &[Kind]| {
        steps.iter().rposition(|s| s.booking == x && !s.waits && kinds.contains(&s.kind))
    };
    match (last(winner, &[Kind::Insert]), last(loser, &[Kind::Lock, Kind::Check, Kind::Insert])) {
        (Some(inserted), Some(looked)) => looked > inserted,
        _ => false,
    }
}

/// Whether two steps of different bookings commute (`check`'s independence).
fn independent(x: &Step, y: &Step) -> bool {
    (x.pure && y.kind != Kind::Commit) || (y.pure && x.kind != Kind::Commit)
}

/// The canonical text of a pair's steps (module doc).
fn pattern_of(steps: &[&Step], a: u64, b: u64) -> String {
    let one = linearize(steps, a);
    let other = linearize(steps, b);
    one.min(other)
}

/// The lexicographically smallest order of `steps` keeping dependent pairs in place, with
/// `first` named A; consecutive equal labels merged.
fn linearize(steps: &[&Step], first: u64) -> String {
    let label = |s: &Step| {
        let who = if s.booking == first { "A" } else { "B" };
        let mark = if s.failed {
            "!"
        } else if s.waits {
            "~"
        } else {
            ""
        };
        format!("{who}.{}{mark}", s.kind.name())
    };
    let labels: Vec<String> = steps.iter().map(|s| label(s)).collect();
    let n = steps.len();
    // preds[j]: earlier steps j must follow.
    let mut waiting: Vec<usize> = (0..n)
        .map(|j| {
            (0..j)
                .filter(|&i| {
                    steps[i].booking == steps[j].booking || !independent(steps[i], steps[j])
                })
                .count()
        })
        .collect();
    let mut done = vec![false; n];
    let mut order: Vec<&str> = Vec::with_capacity(n);
    for _ in 0..n {
        let next = (0..n)
            .filter(|&j| !done[j] && waiting[j] == 0)
            .min_by(|&x, &y| labels[x].cmp(&labels[y]).then(x.cmp(&y)))
            .expect("a dependency order is acyclic");
        done[next] = true;
        for j in next + 1..n {
            if steps[next].booking == steps[j].booking || !independent(steps[next], steps[j]) {
                waiting[j] -= 1;
            }
        }
        if order.last() != Some(&labels[next].as_str()) {
            order.push(&labels[next]);
        }
    }
    order.join(" ")
}

/// The patterns `check` finds possible for a strategy: every schedule of 2 bookings of one
/// slot, exhaustive: 1 room with their own doctors and patients (room patterns), and, for a
/// workload whose bookings may share a doctor or patient, 2 rooms with one doctor, then with
/// one patient (doctor and patient patterns; with a second room the pair need not also contest
/// the room).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Possible {
    /// The `roomsim check` commands that enumerate them, `; `-separated.
    pub command: String,
    pub schedules: u64,
    /// Every schedule was run (no cap hit).
    pub complete: bool,
    pub seconds: f64,
    /// Pattern → schedules with it.
    pub patterns: BTreeMap<String, u64>,
}

/// Bookings and rooms of the enumerated scopes: (shape, rooms).
pub const POSSIBLE_BOOKINGS: u32 = 2;
pub const POSSIBLE_SCOPES: [(Shape, u32); 3] =
    [(Shape::SameSlot, 1), (Shape::SameDoctor, 2), (Shape::SamePatient, 2)];

/// [`Possible`] for `strategy`, with the doctor and patient scopes when `people` (the
/// workload's bookings may share one), computed once per process, strategy and `people`.
pub fn possible(strategy: &str, people: bool) -> Result<Arc<Possible>, SimError> {
    type Cache = Mutex<BTreeMap<(String, bool), Arc<Possible>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    // Held while computing: two threads asking for one strategy compute it once.
    let mut cache = cache.lock().expect("possible-pattern cache");
    let key = (strategy.to_string(), people);
    if let Some(found) = cache.get(&key) {
        return Ok(found.clone());
    }
    let mut possible = Possible {
        command: String::new(),
        schedules: 0,
        complete: true,
        seconds: 0.0,
        patterns: BTreeMap::new(),
    };
    let mut commands = Vec::new();
    let scopes = if people { &POSSIBLE_SCOPES[..] } else { &POSSIBLE_SCOPES[..1] };
    for &(shape, rooms) in scopes {
        // Patterns are properties of whole schedules: no state caching, every schedule runs
        // to its end.
        let config = CheckConfig {
            state_cache: false,
            shape,
            ..CheckConfig::new(strategy, POSSIBLE_BOOKINGS, rooms)
        };
        let report = run_check(&config)?;
        commands.push(format!(
            "roomsim check --strategy {strategy} --bookings {POSSIBLE_BOOKINGS} --rooms {rooms} \
             --shape {}",
            shape.name()
        ));
        possible.schedules += report.schedules;
        possible.complete &= report.complete;
        possible.seconds += report.seconds;
        for (pattern, schedules) in report.patterns {
            *possible.patterns.entry(pattern).or_default() += schedules;
        }
    }
    possible.command = commands.join("; ");
    possible.seconds = (possible.seconds * 10.0).round() / 10.0;
    let possible = Arc::new(possible);
    cache.insert(key, possible.clone());
    Ok(possible)
}

/// One pattern's tally over seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatternSeen {
    pub pattern: String,
    /// Seeds it was seen in.
    pub seeds: u64,
    /// Competing pairs with it, over all seeds.
    pub pairs: u64,
    /// The first (at most k) seeds it was seen in, ascending.
    pub first_seeds: Vec<u64>,
    /// Whether `check` finds it possible (`None`: no possible set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub possible: Option<bool>,
}

/// Pattern coverage of an explored seed range (the explore report's `patterns`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// A pattern counts as covered once seen in this many seeds.
    pub k: u32,
    /// Competing (pair, room) instances over all seeds.
    pub pairs: u64,
    /// Seen patterns, most seeds first (then by text).
    pub seen: Vec<PatternSeen>,
    pub possible: Option<Possible>,
    /// Seeds run until every seen pattern was seen in k seeds (`None`: some never was, or
    /// no pattern was seen).
    pub seeds_to_k: Option<u64>,
    /// Seeds run until every possible pattern was seen once (`None`: not every one was).
    pub seeds_to_saturation: Option<u64>,
    /// Possible patterns never seen.
    pub never_seen: Vec<String>,
    /// Seen patterns `check` does not find possible: a bug to investigate.
    pub not_possible: Vec<String>,
}

/// One seed's patterns (pattern → pairs) in a tally.
#[derive(Default)]
pub struct Tally {
    per_pattern: BTreeMap<String, PatternSeen>,
}

impl Tally {
    pub fn add_seed(&mut self, seed: u64, patterns: &BTreeMap<String, u64>, k: u32) {
        for (pattern, pairs) in patterns {
            let entry = self.per_pattern.entry(pattern.clone()).or_insert_with(|| PatternSeen {
                pattern: pattern.clone(),
                seeds: 0,
                pairs: 0,
                first_seeds: Vec::new(),
                possible: None,
            });
            entry.seeds += 1;
            entry.pairs += pairs;
            entry.first_seeds.push(seed);
            entry.first_seeds.sort_unstable();
            entry.first_seeds.truncate(k as usize);
        }
    }

    /// Adds a shard's seen patterns (for `merge`).
    pub fn add_seen(&mut self, seen: &[PatternSeen], k: u32) {
        for s in seen {
            let entry = self.per_pattern.entry(s.pattern.clone()).or_insert_with(|| PatternSeen {
                pattern: s.pattern.clone(),
                seeds: 0,
                pairs: 0,
                first_seeds: Vec::new(),
                possible: None,
            });
            entry.seeds += s.seeds;
            entry.pairs += s.pairs;
            entry.first_seeds.extend(&s.first_seeds);
            entry.first_seeds.sort_unstable();
            entry.first_seeds.truncate(k as usize);
        }
    }

    /// The coverage; `seeds_run` in ascending order.
    pub fn finish(self, k: u32, seeds_run: &[u64], possible: Option<Possible>) -> Coverage {
        // Seeds run up to and including `seed`.
        let run_until = |seed: u64| seeds_run.partition_point(|s| *s <= seed) as u64;
        let mut seen: Vec<PatternSeen> = self.per_pattern.into_values().collect();
        for s in &mut seen {
            s.possible = possible.as_ref().map(|p| p.patterns.contains_key(&s.pattern));
        }
        seen.sort_by(|x, y| y.seeds.cmp(&x.seeds).then_with(|| x.pattern.cmp(&y.pattern)));
        let pairs = seen.iter().map(|s| s.pairs).sum();
        let every_k = seen.iter().all(|s| s.first_seeds.len() >= k as usize);
        let seeds_to_k = if !seen.is_empty() && every_k {
            Some(seen.iter().filter_map(|s| s.first_seeds.last()).map(|&x| run_until(x)).max())
                .map(|m| m.unwrap_or(0))
        } else {
            None
        };
        let seen_set: BTreeMap<&str, &PatternSeen> =
            seen.iter().map(|s| (s.pattern.as_str(), s)).collect();
        let (never_seen, not_possible, seeds_to_saturation) = match &possible {
            None => (Vec::new(), Vec::new(), None),
            Some(p) => {
                let never: Vec<String> = p
                    .patterns
                    .keys()
                    .filter(|x| !seen_set.contains_key(x.as_str()))
                    .cloned()
                    .collect();
                let not_possible: Vec<String> = seen
                    .iter()
                    .filter(|s| !p.patterns.contains_key(&s.pattern))
                    .map(|s| s.pattern.clone())
                    .collect();
                let saturation = never.is_empty().then(|| {
                    p.patterns
                        .keys()
                        .filter_map(|x| seen_set[x.as_str()].first_seeds.first())
                        .map(|&x| run_until(x))
                        .max()
                        .unwrap_or(0)
                });
                (never, not_possible, saturation)
            }
        };
        Coverage {
            k,
            pairs,
            seen,
            possible,
            seeds_to_k,
            seeds_to_saturation,
            never_seen,
            not_possible,
        }
    }
}

/// The distinct patterns of a set (used by tests and reports).
pub fn distinct(patterns: &BTreeMap<String, u64>) -> BTreeSet<&str> {
    patterns.keys().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn room(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn at(minute: i64) -> SqlValue {
        SqlValue::Timestamp(chrono::Utc.timestamp_opt(1_772_438_400 + minute * 60, 0).unwrap())
    }

    fn check(r: u128) -> Statement {
        classify(
            "SELECT count(*) AS overlapping FROM appointments WHERE room_id = $1",
            &[SqlValue::Uuid(room(r)), at(35), at(0)],
        )
    }

    fn insert(r: u128, from: i64) -> Statement {
        let mut params = vec![SqlValue::Null; 15];
        params[2] = SqlValue::Uuid(room(r));
        params[6] = at(from);
        params[9] = at(from + 35);
        classify("INSERT INTO appointments (id, …) VALUES ($1, $2, $3, $4)", &params)
    }

    const RC: Statement = Statement::Begin { read_committed: true };

    fn run(steps: &[(u64, &Statement, bool)]) -> BTreeMap<String, u64> {
        let mut recorder = Recorder::new();
        for (booking, statement, failed) in steps {
            recorder.statement(*booking, statement, *failed);
        }
        recorder.patterns()
    }

    #[test]
    fn classifies_the_booking_statements() {
        assert_eq!(
            classify("BEGIN ISOLATION LEVEL SERIALIZABLE", &[]),
            Statement::Begin { read_committed: false }
        );
        assert_eq!(classify("BEGIN ISOLATION LEVEL READ COMMITTED", &[]), RC);
        assert_eq!(check(1), Statement::Check { room: room(1), from: at_us(0), until: at_us(35) });
        assert_eq!(
            insert(1, 0),
            Statement::Insert { room: Some((room(1), at_us(0), at_us(35))), people: None }
        );
        assert_eq!(
            classify("SELECT pg_advisory_xact_lock($1)", &[SqlValue::Int(7)]),
            Statement::LockKey(7)
        );
        assert_eq!(
            classify("SELECT pg_try_advisory_xact_lock($1) AS locked", &[SqlValue::Int(7)]),
            Statement::Other
        );
        assert_eq!(
            classify(
                "SELECT id, clinic_id, room_id, doctor_id FROM appointments WHERE clinic_id = $1",
                &[]
            ),
            Statement::Read
        );
    }

    fn at_us(minute: i64) -> i64 {
        (1_772_438_400 + minute * 60) * 1_000_000
    }

    #[test]
    fn serial_and_interleaved_pairs_differ() {
        let (i1, c1) = (insert(1, 0), Statement::Commit);
        let serial = run(&[
            (1, &Statement::Read, false),
            (1, &RC, false),
            (1, &i1, false),
            (1, &c1, false),
            (2, &Statement::Read, false),
            (2, &RC, false),
            (2, &i1, false),
            (2, &Statement::Rollback, false),
        ]);
        assert_eq!(
            distinct(&serial),
            ["A.read A.insert A.commit B.read B.insert B.rollback"].into()
        );
        let interleaved = run(&[
            (1, &Statement::Read, false),
            (2, &Statement::Read, false),
            (1, &RC, false),
            (1, &i1, false),
            (1, &c1, false),
            (2, &RC, false),
            (2, &i1, false),
            (2, &Statement::Rollback, false),
        ]);
        // B's read commutes with A's insert, not with A's commit: it moves as far as that.
        assert_eq!(
            distinct(&interleaved),
            ["A.read A.insert B.read A.commit B.insert B.rollback"].into()
        );
    }

    #[test]
    fn orders_that_swap_independent_steps_are_one_pattern_whoever_started() {
        // B's pure read before or after A's lock: one pattern; naming is canonical too.
        let lock = Statement::LockRoom(room(1));
        let one = run(&[
            (1, &RC, false),
            (1, &lock, false),
            (2, &Statement::Read, false),
            (1, &check(1), false),
            (1, &insert(1, 0), false),
            (1, &Statement::Commit, false),
        ]);
        let other = run(&[
            (7, &Statement::Read, false),
            (9, &RC, false),
            (9, &lock, false),
            (9, &check(1), false),
            (9, &insert(1, 0), false),
            (9, &Statement::Commit, false),
        ]);
        // Booking 2/7 claims no room: no pair at all.
        assert!(one.is_empty() && other.is_empty());
        let with_claims = |first: u64, second: u64, read_first: bool| {
            let mut steps: Vec<(u64, Statement, bool)> = Vec::new();
            if read_first {
                steps.push((second, Statement::Read, false));
            }
            steps.extend([
                (first, RC, false),
                (first, lock.clone(), false),
                (first, check(1), false),
            ]);
            if !read_first {
                steps.push((second, Statement::Read, false));
            }
            steps.extend([
                (first, insert(1, 0), false),
                (first, Statement::Commit, false),
                (second, RC, false),
                (second, lock.clone(), false),
                (second, check(1), false),
                (second, Statement::Rollback, false),
            ]);
            let borrowed: Vec<(u64, &Statement, bool)> =
                steps.iter().map(|(b, s, f)| (*b, s, *f)).collect();
            run(&borrowed)
        };
        let a = with_claims(1, 2, true);
        assert_eq!(a, with_claims(1, 2, false));
        assert_eq!(a, with_claims(5, 3, true));
        assert_eq!(a.len(), 1);
        // A failed statement is marked.
        let failed = run(&[
            (1, &Statement::Begin { read_committed: false }, false),
            (1, &check(1), false),
            (2, &Statement::Begin { read_committed: false }, false),
            (2, &check(1), false),
            (1, &insert(1, 0), false),
            (2, &insert(1, 0), false),
            (1, &Statement::Commit, false),
            (2, &Statement::Commit, true),
        ]);
        assert_eq!(
            distinct(&failed),
            ["A.check B.check A.insert B.insert A.commit B.commit!"].into()
        );
    }

    #[test]
    fn a_statement_that_waited_shows_where_it_waited_and_where_it_went_on() {
        let mut recorder = Recorder::new();
        let lock = Statement::LockRoom(room(1));
        for (booking, statement) in [(1, &RC), (1, &lock), (1, &check(1)), (1, &insert(1, 0))] {
            recorder.statement(booking, statement, false);
        }
        recorder.statement(2, &RC, false);
        recorder.blocked(2, &lock);
        recorder.statement(1, &Statement::Commit, false);
        recorder.statement(2, &lock, false);
        recorder.statement(2, &check(1), false);
        recorder.statement(2, &Statement::Rollback, false);
        assert_eq!(
            distinct(&recorder.patterns()),
            ["A.lock A.check A.insert B.lock~ A.commit B.lock B.check B.rollback"].into()
        );
    }

    #[test]
    fn a_pair_sees_only_its_room_and_its_own_waits() {
        // B checks room 1, finds it taken and commits room 2: it gave room 1 up. A waited
        // for a third booking (9) first: not part of the pair's order.
        let mut recorder = Recorder::new();
        let lock = Statement::LockRoom(room(1));
        recorder.statement(9, &RC, false);
        recorder.statement(9, &Statement::LockRoom(room(3)), false);
        recorder.statement(1, &Statement::Read, false);
        recorder.statement(1, &RC, false);
        recorder.blocked(1, &lock);
        recorder.statement(9, &Statement::Commit, false);
        recorder.statement(1, &lock, false);
        recorder.statement(1, &check(1), false);
        recorder.statement(1, &insert(1, 0), false);
        recorder.statement(2, &Statement::Read, false);
        recorder.statement(2, &RC, false);
        recorder.blocked(2, &lock);
        recorder.statement(1, &Statement::Commit, false);
        recorder.statement(2, &lock, false);
        recorder.statement(2, &check(1), false);
        recorder.statement(2, &check(2), false);
        recorder.statement(2, &insert(2, 0), false);
        recorder.statement(2, &Statement::Commit, false);
        recorder.statement(2, &Statement::Read, false);
        assert_eq!(
            distinct(&recorder.patterns()),
            ["A.read A.lock A.check A.insert B.read B.lock~ A.commit B.lock B.check B.rollback"]
                .into()
        );
    }

    #[test]
    fn only_overlapping_claims_on_one_room_compete() {
        let apart = run(&[
            (1, &RC, false),
            (1, &insert(1, 0), false),
            (1, &Statement::Commit, false),
            (2, &RC, false),
            (2, &insert(1, 60), false),
            (2, &Statement::Commit, false),
            (3, &RC, false),
            (3, &insert(2, 0), false),
            (3, &Statement::Commit, false),
        ]);
        assert!(apart.is_empty(), "different times or rooms do not compete: {apart:?}");
        // An advisory lock by key is the claimed room's lock; other rooms' steps are left out.
        let key = room_lock_key(room(1));
        let locks = run(&[
            (1, &RC, false),
            (1, &Statement::LockKey(room_lock_key(room(2))), false),
            (1, &Statement::LockKey(key), false),
            (1, &check(1), false),
            (1, &insert(1, 0), false),
            (1, &Statement::Commit, false),
            (2, &RC, false),
            (2, &Statement::LockKey(key), false),
            (2, &check(1), false),
            (2, &Statement::Rollback, false),
        ]);
        assert_eq!(
            distinct(&locks),
            ["A.lock A.check A.insert A.commit B.lock B.check B.rollback"].into()
        );
    }

    /// An INSERT of room `r` for doctor `d` and patient `p` at 0–30 (blocked to 35).
    fn booking(r: u128, d: u128, p: u128) -> Statement {
        let mut params = vec![SqlValue::Null; 15];
        params[2] = SqlValue::Uuid(room(r));
        params[3] = SqlValue::Uuid(room(d));
        params[4] = SqlValue::Uuid(room(p));
        params[6] = at(0);
        params[7] = at(30);
        params[9] = at(35);
        classify("INSERT INTO appointments (id, …) VALUES ($1, $2, $3, $4)", &params)
    }

    fn busy(d: u128, p: u128) -> Statement {
        classify(
            "SELECT doctor_id, patient_id FROM appointments WHERE (doctor_id = $1 OR patient_id = $2)",
            &[SqlValue::Uuid(room(d)), SqlValue::Uuid(room(p)), at(30), at(0)],
        )
    }

    #[test]
    fn a_shared_doctor_is_contested_by_each_attempt_s_last_insert() {
        let people =
            People { doctor: room(10), patient: room(20), from: at_us(0), until: at_us(30) };
        assert_eq!(busy(10, 20), Statement::PeopleCheck(people));
        let mut recorder = Recorder::new();
        // A finds room 1 taken by someone else (INSERT 0 0, then asks who is busy: nobody),
        // then takes room 2; B, same doctor, own patient, room 3, waits for A's row.
        for statement in [&RC, &booking(1, 10, 20), &busy(10, 20), &booking(2, 10, 20)] {
            recorder.statement(1, statement, false);
        }
        recorder.statement(2, &RC, false);
        recorder.blocked(2, &booking(3, 10, 21));
        recorder.statement(1, &Statement::Commit, false);
        recorder.statement(2, &booking(3, 10, 21), false);
        recorder.statement(2, &busy(10, 21), false);
        recorder.statement(2, &Statement::Rollback, false);
        assert_eq!(
            distinct(&recorder.patterns()),
            ["doctor: A.insert B.insert~ A.commit B.insert B.check B.rollback"].into(),
            "one doctor pattern; A's try at room 1 is not a look at the doctor; no room or \
             patient is shared"
        );
    }

    #[test]
    fn coverage_counts_seeds_to_k_and_saturation() {
        let p = |xs: &[&str]| xs.iter().map(|x| (x.to_string(), 1)).collect::<BTreeMap<_, _>>();
        let mut tally = Tally::default();
        let seeds = [0, 1, 2, 3, 4];
        tally.add_seed(0, &p(&["x"]), 2);
        tally.add_seed(1, &p(&["x", "y"]), 2);
        tally.add_seed(2, &p(&[]), 2);
        tally.add_seed(3, &p(&["y", "z"]), 2);
        tally.add_seed(4, &p(&["z"]), 2);
        let possible = Possible {
            command: String::new(),
            schedules: 3,
            complete: true,
            seconds: 0.0,
            patterns: p(&["x", "y", "w"]),
        };
        let c = tally.finish(2, &seeds, Some(possible.clone()));
        assert_eq!(c.seeds_to_k, Some(5), "z reaches 2 seeds at seed 4");
        assert_eq!(c.seeds_to_saturation, None, "w never seen");
        assert_eq!(c.never_seen, vec!["w".to_string()]);
        assert_eq!(c.not_possible, vec!["z".to_string()]);
        let mut tally = Tally::default();
        tally.add_seed(0, &p(&["x", "w"]), 1);
        tally.add_seed(1, &p(&["y"]), 1);
        let c = tally.finish(1, &[0, 1], Some(possible));
        assert_eq!(c.seeds_to_saturation, Some(2));
        assert_eq!(c.seeds_to_k, Some(2));
    }
}
