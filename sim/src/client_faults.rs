//! Client-side faults: clients that give up mid-request, and slow clients.
//!
//! WHAT: the scenario's `client_abort` and `slow_clients` faults are windows of modelled time.
//! For every attempt a client sends inside a window, [`ClientFaults::draw`] decides (with the
//! window's `rate`) whether the attempt is abandoned after a uniform delay in
//! 0..=`after_us_max` — the client drops its connection, so hyper drops the backend's handler
//! future wherever it is parked (before the send, in the allocator, between statements, inside
//! COMMIT) — and whether it writes its request slowly (`chunk_bytes` every `gap_us`).
//!
//! WHY: real clients do both (a `curl -m`, a Locust stop, a phone losing signal). A backend
//! whose transaction handling is not cancellation-safe leaks sessions only under such clients:
//! 320,000 clean simulated seeds without them never reached the leak a Locust stop found
//! (issue #12).
//!
//! Draws come from their own stream (`Stream::ClientFaults`) and only inside a window, so a
//! scenario without client faults draws nothing and replays as before.

use std::cell::RefCell;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use scenarios::{Fault, Scenario};

use crate::net::Pace;
use crate::timescale::scaled_us;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Abort { after_us_max: u64 },
    Slow { chunk_bytes: u32, gap_us: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Window {
    from_us: u64,
    to_us: u64,
    rate: f64,
    kind: Kind,
}

/// The client faults of one run.
pub struct ClientFaults {
    windows: Vec<Window>,
    rng: RefCell<ChaCha8Rng>,
}

/// What happens to one attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptFaults {
    /// The client gives up this many modelled µs after the attempt starts.
    pub abort_after_us: Option<u64>,
    /// The request is written slowly.
    pub pace: Option<Pace>,
}

impl ClientFaults {
    pub fn new(scenario: &Scenario, rng: ChaCha8Rng) -> ClientFaults {
        let windows = scenario.faults.iter().filter_map(|fault| {
            let (from_us, to_us) = (fault.at_ms() * 1_000, fault.end_ms() * 1_000);
            let (rate, kind) = match fault {
                Fault::ClientAbort { rate, after_us_max, .. } => {
                    (*rate, Kind::Abort { after_us_max: *after_us_max })
                }
                Fault::SlowClients { rate, chunk_bytes, gap_us, .. } => {
                    (*rate, Kind::Slow { chunk_bytes: *chunk_bytes, gap_us: *gap_us })
                }
                _ => return None,
            };
            Some(Window { from_us, to_us, rate, kind })
        });
        ClientFaults { windows: windows.collect(), rng: RefCell::new(rng) }
    }

    /// The faults of an attempt starting at modelled `now_us` (windows in file order; the
    /// first abort and the first slow window that fire win).
    pub fn draw(&self, now_us: u64) -> AttemptFaults {
        let mut faults = AttemptFaults::default();
        for window in &self.windows {
            if !(window.from_us..window.to_us).contains(&now_us) {
                continue;
            }
            let mut rng = self.rng.borrow_mut();
            if !rng.random_bool(window.rate) {
                continue;
            }
            match window.kind {
                Kind::Abort { after_us_max } if faults.abort_after_us.is_none() => {
                    faults.abort_after_us = Some(rng.random_range(0..=after_us_max));
                }
                Kind::Slow { chunk_bytes, gap_us } if faults.pace.is_none() => {
                    faults.pace = Some(Pace { chunk_bytes, gap: scaled_us(gap_us) });
                }
                _ => {}
            }
        }
        faults
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn scenario_with(faults: Vec<Fault>) -> Scenario {
        let mut scenario = Scenario::builtin("storm").unwrap().scenario;
        scenario.faults = faults;
        scenario
    }

    #[test]
    fn draws_only_inside_windows_and_within_bounds() {
        let abort = Fault::ClientAbort { at_ms: 10, duration_ms: 10, rate: 1.0, after_us_max: 500 };
        let faults = ClientFaults::new(&scenario_with(vec![abort]), ChaCha8Rng::seed_from_u64(1));
        assert_eq!(faults.draw(9_999), AttemptFaults::default());
        assert_eq!(faults.draw(20_000), AttemptFaults::default(), "the window is half-open");
        for _ in 0..100 {
            let after = faults.draw(15_000).abort_after_us.expect("rate 1 always aborts");
            assert!(after <= 500);
        }
    }

    #[test]
    fn a_scenario_without_client_faults_never_draws() {
        let faults = ClientFaults::new(&scenario_with(vec![]), ChaCha8Rng::seed_from_u64(1));
        let before = faults.rng.borrow().get_word_pos();
        assert_eq!(faults.draw(1_000), AttemptFaults::default());
        assert_eq!(faults.rng.borrow().get_word_pos(), before);
    }

    #[test]
    fn the_rate_is_honoured() {
        let slow = Fault::SlowClients {
            at_ms: 0,
            duration_ms: 100,
            rate: 0.25,
            chunk_bytes: 8,
            gap_us: 1_000,
        };
        let faults = ClientFaults::new(&scenario_with(vec![slow]), ChaCha8Rng::seed_from_u64(7));
        let slowed = (0..4_000).filter(|_| faults.draw(50).pace.is_some()).count();
        assert!((800..1_200).contains(&slowed), "{slowed} of 4000 at rate 0.25");
    }
}
