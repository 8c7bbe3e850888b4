//! The booking workload: which booker books what, and when, drawn from the workload stream.
//!
//! `plan` turns a scenario and a seed into a list of bookings with their intended send times
//! (modelled µs). The clients host then runs one task per booker; each sends its bookings in
//! order, each no earlier than its intended time, and latency is measured from the *intended*
//! send time (open model, no coordinated omission).
//!
//! Not modelled: think time between a booker's bookings other than the arrival process.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use scenarios::{Arrival, Participants, RoomChoice, Scenario, SlotPick, parse_hhmm};

/// One booking the workload will make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBooking {
    pub index: u32,
    pub booker: u32,
    /// Intended send time, modelled µs after the workload starts.
    pub send_at_us: u64,
    pub doctor: String,
    pub patient: String,
    pub appointment_type: String,
    /// Minute of the clinic day.
    pub start_min: u32,
    pub duration_min: u32,
    /// A room the client asks for (`room_choice = requested`).
    pub room: Option<String>,
    /// The Idempotency-Key, if the scenario sends them.
    pub idempotency_key: Option<String>,
}

/// Plans every booking of the run. Deterministic in (scenario, rng).
pub fn plan(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Vec<PlannedBooking> {
    let w = &scenario.workload;
    let total = scenario.bookings_total();
    let send_times = send_times_us(scenario, rng);
    let clinic = &scenario.clinic;
    let first = parse_hhmm(&w.slots.first).expect("validated by the scenarios crate");
    let mut out = Vec::with_capacity(total as usize);
    for index in 0..total {
        let slot = match w.slots.pick {
            SlotPick::RoundRobin => index % w.slots.count,
            SlotPick::Random => rng.random_range(0..w.slots.count),
        };
        let (doctor, patient, kind) = match w.participants {
            Participants::Disjoint => {
                let doctor = (index / w.slots.count) as usize % clinic.doctors.len();
                (doctor, index as usize, index as usize % clinic.appointment_types.len())
            }
            Participants::Random => (
                rng.random_range(0..clinic.doctors.len()),
                rng.random_range(0..clinic.patients.len()),
                rng.random_range(0..clinic.appointment_types.len()),
            ),
        };
        let room = match w.room_choice {
            RoomChoice::Auto => None,
            RoomChoice::Requested => {
                Some(clinic.rooms[rng.random_range(0..clinic.rooms.len())].name.clone())
            }
        };
        let kind = &clinic.appointment_types[kind];
        out.push(PlannedBooking {
            index,
            booker: index % w.bookers,
            send_at_us: send_times[index as usize],
            doctor: clinic.doctors[doctor].name.clone(),
            patient: clinic.patients[patient].name.clone(),
            appointment_type: kind.name.clone(),
            start_min: first + slot * w.slots.step_min,
            duration_min: kind.duration_min,
            room,
            idempotency_key: w
                .idempotency_keys
                .then(|| format!("key-{:016x}-{index}", rng.random::<u64>())),
        });
    }
    out
}

/// Intended send times, one per booking, in booking order.
fn send_times_us(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Vec<u64> {
    let w = &scenario.workload;
    let total = scenario.bookings_total() as usize;
    let window_us = w.window_ms * 1_000;
    match w.arrival {
        Arrival::Simultaneous => vec![0; total],
        Arrival::Uniform => (0..total)
            .map(|_| if window_us == 0 { 0 } else { rng.random_range(0..window_us) })
            .collect(),
        Arrival::Poisson => {
            let mean_gap_us = window_us as f64 / total.max(1) as f64;
            let mut at = 0.0_f64;
            (0..total)
                .map(|_| {
                    let u: f64 = rng.random_range(f64::EPSILON..1.0);
                    at += -u.ln() * mean_gap_us;
                    at as u64
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::{Seeds, Stream};

    #[test]
    fn storm_plan_is_disjoint_and_simultaneous() {
        let s = Scenario::builtin("storm").unwrap().scenario;
        let plan = plan(&s, &mut Seeds::new(1).rng(Stream::Workload));
        assert_eq!(plan.len(), 50);
        assert!(plan.iter().all(|b| b.send_at_us == 0));
        let mut patients: Vec<_> = plan.iter().map(|b| &b.patient).collect();
        patients.dedup();
        assert_eq!(patients.len(), 50, "every booking has its own patient");
        // A doctor's two bookings are 45 minutes apart: never overlapping.
        let d1: Vec<_> =
            plan.iter().filter(|b| b.doctor == "doctor-01").map(|b| b.start_min).collect();
        assert_eq!(d1, vec![540, 585]);
        assert!(plan.iter().all(|b| b.idempotency_key.is_some()));
    }

    #[test]
    fn random_plans_depend_on_the_seed_only() {
        let s = Scenario::builtin("conflict").unwrap().scenario;
        let a = plan(&s, &mut Seeds::new(7).rng(Stream::Workload));
        let b = plan(&s, &mut Seeds::new(7).rng(Stream::Workload));
        let c = plan(&s, &mut Seeds::new(8).rng(Stream::Workload));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|x| x.send_at_us < 20_000));
    }
}
