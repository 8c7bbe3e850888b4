//! Rules-engine and allocator benchmarks (criterion).
//!
//! - `rules/evaluate_60_rooms`: one slot, 60 varied rooms, the full default rule set (39 active
//!   rules), 20 appointments per room-day: context preparation plus the fast-path evaluation
//!   of every room. Target ≤ 50 µs (a thousandth of the 50 ms room-assignment budget).
//! - `allocate/60_rooms_20_per_room_day`: the whole `allocate` call (ranking, explanations of
//!   the chosen and every rejected room, alternatives) on the same clinic.
//! - `allocate/60_rooms_1000_per_room_day/free_slot`: 60,000 appointments in the snapshot, the
//!   request lands after them: dominated by building the per-room interval lists.
//! - `allocate/60_rooms_1000_per_room_day/all_busy`: the request conflicts in every room, so the
//!   allocator also searches later times (bounded: 48 steps × 60 rooms).
//!
//! Run: `cargo bench -p backend-core --bench rules -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use backend_core::allocator::fixture::{Fixture, at};
use backend_core::allocator::{AllocatorConfig, EvalStats, allocate};
use backend_core::domain::OpeningHours;
use backend_core::rules::{EvalContext, default_rule_set};
use criterion::{Criterion, criterion_group, criterion_main};

const ROOMS_COUNT: usize = 60;
const SEED: u64 = 42;

/// 60 rooms with `per_room` appointments of `minutes` each from midnight; always open.
fn clinic(per_room: usize, minutes: i64) -> Fixture {
    let mut f = Fixture::generated(ROOMS_COUNT, SEED);
    f.snapshot.clinic.opening_hours = OpeningHours::default();
    f.fill_rooms(per_room, minutes);
    f
}

fn bench_rules(c: &mut Criterion) {
    let rules = default_rule_set();
    let mut f = clinic(20, 20);
    f.request.start = at(8, 0);
    f.request.end = at(8, 20);
    c.bench_function("rules/evaluate_60_rooms", |b| {
        b.iter(|| {
            let ctx = EvalContext::new(&rules, &f.snapshot, &f.request);
            let slot = ctx.requested_slot();
            let mut stats = EvalStats::default();
            let mut feasible = 0;
            for index in 0..f.snapshot.rooms.len() {
                feasible +=
                    usize::from(ctx.evaluate_room(index, slot, false, &mut stats).is_feasible());
            }
            black_box((feasible, stats))
        })
    });
}

fn bench_allocate(c: &mut Criterion) {
    let rules = default_rule_set();
    let config = AllocatorConfig::default();
    let mut group = c.benchmark_group("allocate");
    let mut light = clinic(20, 20);
    light.request.start = at(8, 0);
    light.request.end = at(8, 20);
    group.bench_function("60_rooms_20_per_room_day", |b| {
        b.iter(|| allocate(&rules, &light.snapshot, &light.request, &config).expect("valid"))
    });
    let mut heavy = clinic(1000, 1);
    heavy.request.start = at(20, 0);
    heavy.request.end = at(20, 20);
    group.bench_function("60_rooms_1000_per_room_day/free_slot", |b| {
        b.iter(|| allocate(&rules, &heavy.snapshot, &heavy.request, &config).expect("valid"))
    });
    heavy.request.start = at(9, 0);
    heavy.request.end = at(9, 20);
    group.bench_function("60_rooms_1000_per_room_day/all_busy", |b| {
        b.iter(|| allocate(&rules, &heavy.snapshot, &heavy.request, &config).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, bench_rules, bench_allocate);
criterion_main!(benches);
