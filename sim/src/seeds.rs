//! One master seed, many independent random streams.
//!
//! Every random choice in a run derives from the master `u64` through ChaCha8 (rand_chacha
//! 0.9): the stream number separates the purposes, so adding draws to one stream never shifts
//! another (turmoil's network choices do not move when the workload draws one more number).
//!
//! ```text
//! master seed ─ ChaCha8(seed, stream) ─┬─ 0 turmoil rng_seed (latency, loss)
//!                                      ├─ 1 workload (who books what, when)
//!                                      ├─ 2 db scheduler (next statement, service times)
//!                                      ├─ 3 faults
//!                                      ├─ 4 backend (retry jitter, ids)
//!                                      ├─ 5 backend CPU (rules evaluation cost)
//!                                      ├─ 6 backend CPU per HTTP request
//!                                      ├─ 7 client faults (aborts, slow clients)
//!                                      ├─ 8 db connection drops
//!                                      └─ 9 model engine (gen_random_uuid)
//! ```
//!
//! Not modelled: turmoil's own per-host SmallRng children (derived by turmoil from its
//! `rng_seed`, which we set from stream 0; SmallRng is not portable across rand versions).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a stream is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stream {
    Turmoil = 0,
    Workload = 1,
    DbScheduler = 2,
    Faults = 3,
    Backend = 4,
    /// The backend's modelled CPU costs (`world::cpu::CostModel`).
    BackendCpu = 5,
    /// The backend's modelled CPU per HTTP request (`world::cpu::RequestCpu`).
    BackendRequestCpu = 6,
    /// Which attempts clients abandon or write slowly (`client_faults`).
    ClientFaults = 7,
    /// Which statements find their db connection reset (`model_db::DbDrops`).
    DbDrops = 8,
    /// The model engine's own generator (`model::EngineConfig::seed`: `gen_random_uuid()`).
    Engine = 9,
}

/// The master seed of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seeds {
    pub master: u64,
}

impl Seeds {
    pub fn new(master: u64) -> Seeds {
        Seeds { master }
    }

    /// A fresh generator for `stream`.
    pub fn rng(&self, stream: Stream) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.master);
        rng.set_stream(stream as u64);
        rng
    }

    /// A `u64` drawn from `stream` (for APIs that take a seed, such as turmoil's `rng_seed`).
    pub fn u64(&self, stream: Stream) -> u64 {
        self.rng(stream).next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_stable_and_distinct() {
        let a = Seeds::new(42);
        assert_eq!(a.u64(Stream::Workload), Seeds::new(42).u64(Stream::Workload));
        assert_ne!(a.u64(Stream::Workload), a.u64(Stream::DbScheduler));
        assert_ne!(a.u64(Stream::Workload), Seeds::new(43).u64(Stream::Workload));
    }
}
