//! GENERATOR: random booking-shaped isolation specs for differential fuzzing (issue 14).
//!
//! WHAT
//! [`generate`] turns (seed, index) into one spec: a `rooms` / `bookings` schema (primary
//! keys, a foreign key, column defaults), 2–4 sessions, each one transaction at READ
//! COMMITTED, REPEATABLE READ or SERIALIZABLE with its own `deadlock_timeout`, running 2–4
//! statements drawn from the booking strategies (check-then-insert, `FOR UPDATE` / `FOR NO
//! KEY UPDATE` / `FOR SHARE` / `SKIP LOCKED` / `NOWAIT` on the room, advisory locks, `INSERT
//! … ON CONFLICT`, unique-key collisions, FK checks, room version bumps, booking and room
//! deletes, key reads), sometimes inside a savepoint that is rolled back, ending in COMMIT or
//! ROLLBACK; one random interleaving, sometimes a one-second clock step (`pg_sleep`) by a
//! separate session, and a final dump of both tables.
//!
//! WHY THESE SHAPES
//! - Timers keep at least 50 ms from the instants the runner's settle window (150 ms) and
//!   sleeps (1 s) produce, so a schedule's outcome does not hinge on scheduling jitter:
//!   `deadlock_timeout` is 100 ms (fires inside the waiter's own settle window) or 1100 ms.
//! - Every query on `bookings` other than by `id` is a sequential scan on PostgreSQL (no
//!   index on room_id/slot), and lookups by key use a one-column primary key: the SIREAD
//!   granularities the model reproduces (see `ssi.rs`); no physical-layout-dependent case
//!   is generated on purpose.
//! - A permutation in which a session's next step is issued while its previous step can
//!   never finish ("stuck") is useless and slow on PostgreSQL; the caller retries such an
//!   index with the next attempt number (see [`generate_runnable`]).
//!
//! NOT GENERATED
//! Exclusion constraints (GiST page locks are layout-dependent under SERIALIZABLE), lock
//! and statement timeouts, session-level advisory locks, DDL inside sessions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::parse::{Spec, parse_spec};
use super::runner::Event;

/// Attempts per index before a stuck permutation is kept anyway.
pub const GENERATE_ATTEMPTS_MAX: u64 = 32;

/// One generated schedule: the spec text without its permutation line, and the permutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// `gen-SEED-INDEX`.
    pub name: String,
    /// Whether any session runs at SERIALIZABLE.
    pub serializable: bool,
    /// Everything but the permutation line.
    pub body: String,
    pub permutation: Vec<String>,
}

impl Generated {
    /// The spec file's text.
    pub fn text(&self) -> String {
        format!("{}\npermutation {}\n", self.body, self.permutation.join(" "))
    }

    /// The parsed spec (the generator only writes what the parser accepts).
    pub fn spec(&self) -> Spec {
        parse_spec(&self.text(), &format!("{}.spec", self.name))
            .unwrap_or_else(|e| panic!("the generator wrote an unparsable spec: {e}"))
    }

    /// Whether permutation entry `position` is a session's COMMIT or ROLLBACK step.
    pub fn ends_transaction(&self, position: usize) -> bool {
        let name = &self.permutation[position];
        let needle = format!("step {name} {{ ");
        self.body.lines().any(|l| {
            l.strip_prefix(&needle)
                .is_some_and(|rest| rest.starts_with("COMMIT;") || rest.starts_with("ROLLBACK;"))
        })
    }

    /// The same schedule with permutation entry `position` left out.
    pub fn without(&self, position: usize) -> Generated {
        let mut g = self.clone();
        g.permutation.remove(position);
        g
    }
}

const SCHEMA: &str = "setup { CREATE TABLE rooms (id int PRIMARY KEY, name text, version int \
DEFAULT 0); INSERT INTO rooms VALUES (1, 'r1'), (2, 'r2'), (3, 'r3'); CREATE TABLE bookings \
(id int PRIMARY KEY, room_id int REFERENCES rooms (id), slot int, note text DEFAULT 'new'); \
INSERT INTO bookings VALUES (12, 1, 2); }\nteardown { DROP TABLE bookings; DROP TABLE rooms; }";

const LEVELS: [(&str, &str); 3] =
    [("rc", "READ COMMITTED"), ("rr", "REPEATABLE READ"), ("ser", "SERIALIZABLE")];

/// Advisory lock keys are database-wide: each schedule gets its own range, so schedules
/// run at the same time (each in its own schema) do not take each other's locks.
const ADVISORY_KEY_BASE: u64 = 1_400_000_000;

/// A random booking statement for room `r`, slot `s` (booking id `10 r + s`); advisory locks
/// use key `ADVISORY_KEY_BASE + 10 index + r`.
fn statement(rng: &mut ChaCha8Rng, index: u64) -> String {
    let r = rng.random_range(1..=2);
    let key = ADVISORY_KEY_BASE + 10 * (index % 10_000_000) + r;
    let s = rng.random_range(1..=2);
    let id = 10 * r + s;
    match rng.random_range(0..16) {
        0 | 1 => format!("SELECT count(*) FROM bookings WHERE room_id = {r} AND slot = {s};"),
        2 | 3 => format!("INSERT INTO bookings VALUES ({id}, {r}, {s});"),
        4 => format!("INSERT INTO bookings VALUES ({id}, {r}, {s}) ON CONFLICT DO NOTHING;"),
        5 => format!(
            "INSERT INTO bookings VALUES ({id}, {r}, {s}) ON CONFLICT (id) DO UPDATE SET note \
             = 'again';"
        ),
        6 => {
            let mode = ["UPDATE", "NO KEY UPDATE", "SHARE", "KEY SHARE"][rng.random_range(0..4)];
            format!("SELECT id, version FROM rooms WHERE id = {r} FOR {mode};")
        }
        7 => "SELECT id FROM rooms ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED;".to_string(),
        8 => format!("SELECT id FROM rooms WHERE id = {r} FOR UPDATE NOWAIT;"),
        9 => format!("SELECT pg_advisory_xact_lock({key}) IS NOT NULL AS ok;"),
        10 => format!("SELECT pg_try_advisory_xact_lock({key}) AS ok;"),
        11 => format!("UPDATE rooms SET version = version + 1 WHERE id = {r};"),
        12 => format!("DELETE FROM bookings WHERE room_id = {r} AND slot = {s};"),
        13 => format!("DELETE FROM rooms WHERE id = {};", rng.random_range(1..=3)),
        14 => format!("SELECT * FROM rooms WHERE id = {r};"),
        _ => format!("UPDATE bookings SET note = 'moved' WHERE id = {id};"),
    }
}

/// The schedule for (`seed`, `index`, `attempt`): deterministic.
pub fn generate(seed: u64, index: u64, attempt: u64) -> Generated {
    let mixed = splitmix(splitmix(seed ^ splitmix(index)) ^ attempt);
    let mut rng = ChaCha8Rng::seed_from_u64(mixed);
    let sessions = rng.random_range(2..=4);
    let mut body = format!(
        "# Generated by `roomsim spec --generate` (seed {seed}, schedule {index}, attempt \
         {attempt}).\n{SCHEMA}\n"
    );
    let mut serializable = false;
    let mut per_session: Vec<Vec<String>> = Vec::new();
    for i in 1..=sessions {
        let (short, level) = LEVELS[rng.random_range(0..3)];
        serializable |= short == "ser";
        let timeout = if rng.random_bool(0.5) { "100ms" } else { "1100ms" };
        body.push_str(&format!(
            "\nsession s{i}\nsetup {{ BEGIN ISOLATION LEVEL {level}; SET deadlock_timeout = \
             '{timeout}'; }}\n"
        ));
        let actions = rng.random_range(2..=4);
        let mut sql: Vec<String> = (0..actions).map(|_| statement(&mut rng, index)).collect();
        if rng.random_bool(0.2) {
            let at = rng.random_range(0..sql.len());
            let back = rng.random_range(at + 1..=sql.len());
            sql.insert(back, "ROLLBACK TO SAVEPOINT sp;".to_string());
            sql.insert(at, "SAVEPOINT sp;".to_string());
        }
        sql.push(if rng.random_bool(0.85) { "COMMIT;" } else { "ROLLBACK;" }.to_string());
        let mut names = Vec::new();
        for (k, q) in sql.iter().enumerate() {
            let name = format!("s{i}_{}", k + 1);
            body.push_str(&format!("step {name} {{ {q} }}\n"));
            names.push(name);
        }
        per_session.push(names);
    }
    body.push_str("\nsession clock\nstep sleep { SELECT pg_sleep(1); }\n");
    body.push_str(
        "\nsession chk\nstep fin_rooms { SELECT * FROM rooms ORDER BY id; }\nstep \
         fin_bookings { SELECT * FROM bookings ORDER BY id; }\n",
    );
    // A random interleaving keeping each session's order.
    let mut cursors = vec![0usize; per_session.len()];
    let mut permutation = Vec::new();
    loop {
        let open: Vec<usize> =
            (0..per_session.len()).filter(|&s| cursors[s] < per_session[s].len()).collect();
        if open.is_empty() {
            break;
        }
        let s = open[rng.random_range(0..open.len())];
        permutation.push(per_session[s][cursors[s]].clone());
        cursors[s] += 1;
    }
    if rng.random_bool(0.25) {
        let at = rng.random_range(1..=permutation.len());
        permutation.insert(at, "sleep".to_string());
    }
    permutation.push("fin_rooms".to_string());
    permutation.push("fin_bookings".to_string());
    Generated { name: format!("gen-{seed}-{index:04}"), serializable, body, permutation }
}

/// [`generate`], retrying attempts whose permutation gets stuck on the model (a session's
/// next step issued while its previous one can never finish); the last attempt is kept if
/// all get stuck.
pub fn generate_runnable(seed: u64, index: u64) -> Generated {
    let mut last = None;
    for attempt in 0..GENERATE_ATTEMPTS_MAX {
        let g = generate(seed, index, attempt);
        let results = super::cli::run_model(&g.spec(), 0);
        let stuck =
            results.iter().flat_map(|r| &r.events).any(|e| matches!(e, Event::Stuck { .. }));
        if !stuck {
            return g;
        }
        last = Some(g);
    }
    last.expect("GENERATE_ATTEMPTS_MAX > 0")
}

/// SplitMix64's finaliser: decorrelates nearby seeds and indices.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same (seed, index) → same text; different indices differ; every spec parses, has
    /// 2–4 transaction sessions and ends with the state dump.
    #[test]
    fn generation_is_deterministic_and_parsable() {
        assert_eq!(generate(7, 3, 0), generate(7, 3, 0));
        assert_ne!(generate(7, 3, 0).text(), generate(7, 4, 0).text());
        for i in 0..200 {
            let g = generate(1, i, 0);
            let spec = g.spec();
            let sessions = spec.sessions.len() - 2;
            assert!((2..=4).contains(&sessions), "{sessions} sessions");
            assert_eq!(g.permutation.last().map(String::as_str), Some("fin_bookings"));
            assert_eq!(g.serializable, g.body.contains("SERIALIZABLE"));
        }
    }

    /// Leaving a step out keeps the spec parsable (the minimiser relies on it).
    #[test]
    fn without_drops_one_entry() {
        let g = generate(2, 0, 0);
        let shorter = g.without(0);
        assert_eq!(shorter.permutation.len() + 1, g.permutation.len());
        shorter.spec();
        let ends: Vec<bool> = (0..g.permutation.len()).map(|p| g.ends_transaction(p)).collect();
        let sessions = g.spec().sessions.len() - 2;
        assert_eq!(ends.iter().filter(|e| **e).count(), sessions, "{ends:?}");
    }
}
