//! Rules-engine and allocator benchmarks (criterion).
//!
//! - `rules/evaluate_60_rooms`: one slot, 60 varied rooms, the full default rule set (39 active
//!   rules), 20 appointments per room-day: context preparation plus the fast-path evaluation
//!   of every room. Target ≤ 50 µs (a thousandth of the 50 ms room-assignment budget).
//! - `rules/evaluate_60_rooms_prepared`: the same without the per-request preparation (the
//!   cost of each further candidate time in the time search).
//! - `allocate/60_rooms_20_per_room_day`: the whole `allocate` call (ranking, explanations of
//!   the chosen and every rejected room, alternatives) on the same clinic.
//! - `allocate/60_rooms_1000_per_room_day/free_slot`: 60,000 appointments in the snapshot, the
//!   request lands after them: dominated by building the per-room interval lists.
//! - `allocate/60_rooms_1000_per_room_day/all_busy`: the request conflicts in every room, so the
//!   allocator also searches later times (bounded: 48 steps × 60 rooms).
//!
//! Every benchmark runs twice: `wall/…` measures elapsed time (criterion's default) and
//! `cpu/…` the benchmark thread's CPU time, which stays meaningful when other processes share
//! the cores (wall time then includes time spent descheduled).
//!
//! Run: `cargo bench -p backend-core --bench rules -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use backend_core::allocator::fixture::{Fixture, at};
use backend_core::allocator::{AllocatorConfig, EvalStats, allocate};
use backend_core::domain::OpeningHours;
use backend_core::rules::{EvalContext, RuleSet, default_rule_set};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};

const ROOMS_COUNT: usize = 60;
const SEED: u64 = 42;

/// The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), in nanoseconds.
struct ThreadCpuTime {
    wall: WallTime,
}

fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, started_ns: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns() - started_ns)
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Same unit (nanoseconds) as wall time, so the same formatter applies.
        self.wall.formatter()
    }
}

/// 60 rooms with `per_room` appointments of `minutes` each from midnight; always open.
fn clinic(per_room: usize, minutes: i64) -> Fixture {
    let mut f = Fixture::generated(ROOMS_COUNT, SEED);
    f.snapshot.clinic.opening_hours = OpeningHours::default();
    f.fill_rooms(per_room, minutes);
    f
}

/// Fast-path evaluation of every room at the requested slot; returns the feasible count.
fn evaluate_all(ctx: &EvalContext, rooms_count: usize) -> (usize, EvalStats) {
    let slot = ctx.requested_slot();
    let mut stats = EvalStats::default();
    let feasible = (0..rooms_count)
        .filter(|&index| ctx.evaluate_room(index, slot, false, &mut stats).is_feasible())
        .count();
    (feasible, stats)
}

fn bench_rules<M: Measurement + 'static>(c: &mut Criterion<M>, clock: &str) {
    let rules = default_rule_set();
    let mut f = clinic(20, 20);
    f.request.start = at(8, 0);
    f.request.end = at(8, 20);
    let rooms_count = f.snapshot.rooms.len();
    c.bench_function(&format!("{clock}/rules/evaluate_60_rooms"), |b| {
        b.iter(|| {
            let ctx = EvalContext::new(&rules, &f.snapshot, &f.request);
            black_box(evaluate_all(&ctx, rooms_count))
        })
    });
    let ctx = EvalContext::new(&rules, &f.snapshot, &f.request);
    c.bench_function(&format!("{clock}/rules/evaluate_60_rooms_prepared"), |b| {
        b.iter(|| black_box(evaluate_all(&ctx, rooms_count)))
    });
}

fn bench_allocation<M: Measurement + 'static>(c: &mut Criterion<M>, clock: &str, rules: &RuleSet) {
    let config = AllocatorConfig::default();
    let mut group = c.benchmark_group(format!("{clock}/allocate"));
    let mut light = clinic(20, 20);
    light.request.start = at(8, 0);
    light.request.end = at(8, 20);
    group.bench_function("60_rooms_20_per_room_day", |b| {
        b.iter(|| allocate(rules, &light.snapshot, &light.request, &config).expect("valid"))
    });
    let mut heavy = clinic(1000, 1);
    heavy.request.start = at(20, 0);
    heavy.request.end = at(20, 20);
    group.bench_function("60_rooms_1000_per_room_day/free_slot", |b| {
        b.iter(|| allocate(rules, &heavy.snapshot, &heavy.request, &config).expect("valid"))
    });
    heavy.request.start = at(9, 0);
    heavy.request.end = at(9, 20);
    group.bench_function("60_rooms_1000_per_room_day/all_busy", |b| {
        b.iter(|| allocate(rules, &heavy.snapshot, &heavy.request, &config).expect("valid"))
    });
    group.finish();
}

fn wall(c: &mut Criterion) {
    bench_rules(c, "wall");
    bench_allocation(c, "wall", &default_rule_set());
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    bench_rules(c, "cpu");
    bench_allocation(c, "cpu", &default_rule_set());
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime { wall: WallTime });
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
