//! The schedule the allocator and the rules engine both read: one clinic's day.
//!
//! WHAT: [`ClinicSnapshot`] is the allocator's input (clinic, rooms, doctor, patient,
//! appointment type and the day's appointments), read in one go by the booking layer;
//! [`timeline`] turns the day's appointments into per-room sorted interval lists
//! ([`RoomTimeline`]) and counts the work done on them ([`EvalStats`]); [`fixture`] builds
//! deterministic demo snapshots for tests, benchmarks and the simulation.
//!
//! WHY HERE: `rules` evaluates rooms against these types and `allocator` ranks rooms with
//! `rules`; with the types in `allocator`, the two modules imported each other. This module
//! depends on `domain` only, so the imports run one way: allocator → rules → schedule.
//! (`allocator` re-exports these names, so `allocator::ClinicSnapshot` keeps working.)

pub mod fixture;
pub mod timeline;

use serde::Serialize;
use uuid::Uuid;

pub use timeline::{
    Block, EpochMicros, EvalStats, MINUTE_US, RoomTimeline, epoch_us, from_epoch_us,
};

use crate::domain::{Appointment, AppointmentType, Clinic, Doctor, Patient, Room};

/// Everything the allocator needs, read in one go by the booking layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClinicSnapshot {
    pub clinic: Clinic,
    /// The clinic's rooms.
    pub rooms: Vec<Room>,
    pub doctor: Doctor,
    pub patient: Patient,
    pub appointment_type: AppointmentType,
    /// The relevant day's appointments (any status; inactive ones are ignored), all rooms.
    pub appointments: Vec<Appointment>,
    /// The patient's room at their previous visit in a series (S14).
    #[serde(default)]
    pub patient_last_room_id: Option<Uuid>,
}
