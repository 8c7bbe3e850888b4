//! HTTP connections between the simulated clients and the backend (issue #16 item 3): with
//! keep-alive (the default) each booker keeps one connection, so the backend accepts about
//! one per booker plus one per reconnect after a broken attempt; with `--fresh-connections`
//! it accepts one per attempt. A connection the fault broke is replaced and the booking
//! still completes.

use std::sync::Arc;

use scenarios::Scenario;
use sim::outcome::RunOutcome;
use sim::world::{self, ConnectionCounts, Connections, RunConfig};

fn run(scenario: &str, seed: u64, connections: Connections) -> (RunOutcome, ConnectionCounts) {
    let config = RunConfig {
        scenario: Arc::new(Scenario::builtin(scenario).unwrap().scenario),
        seed,
        strategy: "exclusion".into(),
        guard: Default::default(),
        keep_trace: false,
        profile: world::default_profile(),
        connections,
    };
    let result = world::run(&config).unwrap();
    (result.outcome, result.connections)
}

/// storm: 50 bookers, one booking each, no faults. Keep-alive: exactly one connection per
/// booker; fresh: exactly one per attempt. Both accepted by the backend as opened.
#[test]
fn keep_alive_opens_one_connection_per_booker_fresh_one_per_attempt() {
    for seed in 0..3 {
        let (o, c) = run("storm", seed, Connections::KeepAlive);
        assert!(o.passed(), "{:?}", o.violations);
        assert_eq!(c.opened_by_clients, 50, "seed {seed}: one per booker: {c:?}");
        assert_eq!(c.accepted_by_backend, c.opened_by_clients, "seed {seed}");
        let (o, c) = run("storm", seed, Connections::Fresh);
        assert!(o.passed(), "{:?}", o.violations);
        assert_eq!(c.opened_by_clients, o.counts.attempts, "seed {seed}: one per attempt");
        assert_eq!(c.accepted_by_backend, c.opened_by_clients, "seed {seed}");
    }
}

/// `all`: 50 bookers making two bookings each, with clients that give up mid-request
/// (`client_abort`). Keep-alive reuses the booker's connection for its second booking and
/// after every answered attempt, and connects again only after an attempt that broke or was
/// given up: at least one connection per booker, at most one more per broken attempt, and
/// fewer than the attempts. Fresh: one per attempt that got as far as connecting.
#[test]
fn keep_alive_reconnects_only_after_a_broken_attempt() {
    for seed in 0..3 {
        let (o, c) = run("all", seed, Connections::KeepAlive);
        assert!(o.passed(), "{:?}", o.violations);
        let broken = o.counts.timeouts + o.counts.connection_failures;
        assert!(broken > 0, "seed {seed}: the scenario's aborts break connections: {:?}", o.counts);
        let opened = c.opened_by_clients;
        assert!(opened >= 50, "seed {seed}: every booker connects: {c:?}");
        assert!(opened <= 50 + broken, "seed {seed}: {c:?} with {broken} broken attempts");
        assert!(opened < o.counts.attempts, "seed {seed}: {c:?}, {} attempts", o.counts.attempts);
        assert!(c.accepted_by_backend >= opened, "seed {seed}: {c:?}");
        let (o, c) = run("all", seed, Connections::Fresh);
        assert!(o.passed(), "{:?}", o.violations);
        let broken = o.counts.timeouts + o.counts.connection_failures;
        let opened = c.opened_by_clients;
        assert!(opened <= o.counts.attempts, "seed {seed}: {c:?}");
        assert!(opened + broken >= o.counts.attempts, "seed {seed}: {c:?} {:?}", o.counts);
    }
}

/// A backend crash breaks every booker's kept connection: the next attempt connects to the
/// restarted backend, and every booking still gets its 201.
#[test]
fn a_broken_connection_is_replaced_and_the_booking_completes() {
    let (o, c) = run("storm-backend-crash", 1, Connections::KeepAlive);
    assert!(o.passed(), "{:?}", o.violations);
    assert!(o.counts.connection_failures > 0, "the crash broke connections: {:?}", o.counts);
    assert_eq!(o.counts.unanswered, 0, "{:?}", o.counts);
    assert_eq!(o.counts.created_201, o.counts.bookings, "{:?}", o.counts);
    assert!(c.opened_by_clients > 50, "broken connections were replaced: {c:?}");
}
