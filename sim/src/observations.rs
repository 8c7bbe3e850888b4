//! What one run observed, as the end-of-run invariants (`invariants`) read it: the final
//! appointment rows ([`Appointment`], read from the database side), the clients' records of
//! their bookings ([`BookingRecord`] and its parts) and what the database saw
//! ([`DbObservations`]). Produced by the world (`world::clients`, `world::results`), the db
//! hosts (`world::engine::final_rows`) and `check`; data only, a leaf module.

/// One appointment row of the final state. Times are minutes of the clinic day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appointment {
    pub id: String,
    pub room: Option<String>,
    pub doctor: String,
    pub patient: String,
    pub appointment_type: String,
    pub start_min: u32,
    pub end_min: u32,
    /// `end_min` + turnover: the room is blocked until then.
    pub blocked_until_min: u32,
    pub active: bool,
    /// The writing transaction / booking, and the modelled time of the write.
    pub txn: String,
    pub written_at_us: u64,
}

/// The logical identity of a booking request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BookingKey {
    pub doctor: String,
    pub patient: String,
    pub appointment_type: String,
    pub start_min: u32,
}

/// How one booking (after all its attempts) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutcome {
    Created {
        id: String,
        room: Option<String>,
    },
    /// `room_unavailable`: the 409 is about rooms (not a busy doctor/patient or key).
    Conflict {
        alternatives: u32,
        room_unavailable: bool,
    },
    Rejected {
        status: u16,
    },
    ServerError {
        status: u16,
    },
    /// The client never learnt the outcome (timeouts / broken connections until it gave up).
    Unanswered,
    /// The booker was still running when the simulation stopped.
    Unfinished,
}

/// A client's record of one booking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookingRecord {
    pub index: u32,
    pub key: BookingKey,
    pub outcome: ClientOutcome,
    pub answered_at_us: u64,
    /// The first leaked database error seen in any answer of this booking.
    pub leaked: Option<String>,
    /// HTTP attempts, attempts that timed out, attempts whose connection failed.
    pub attempts: u32,
    pub timeouts: u32,
    pub lost: u32,
    /// What the answer that ended the booking said (for `alternatives_correct`).
    pub answer: AnswerDetail,
}

/// What the client learnt from the answer that ended a booking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerDetail {
    /// Modelled time the answered attempt was sent.
    pub sent_at_us: u64,
    /// A 201's room and blocked range: (room, start_min, blocked_until_min).
    pub booked: Option<(String, u32, u32)>,
    /// Every alternative offered, in answer order.
    pub alternatives: Vec<OfferedAlternative>,
}

/// One alternative offered to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedAlternative {
    pub room: String,
    /// Visit start and end, minutes of the clinic day; `None` when only a room was named.
    pub visit_min: Option<(u32, u32)>,
}

/// What the database side observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbObservations {
    /// (modelled time, transaction / session) of every 40P01.
    pub deadlocks: Vec<(u64, String)>,
    /// (modelled time, session) of every BEGIN that arrived inside an open transaction block
    /// (PostgreSQL's WARNING 25001): the session came out of the pool in a transaction.
    pub begin_in_transaction: Vec<(u64, String)>,
    /// Sessions still inside a transaction once the run settled (`world::settle`).
    pub open_at_end: Vec<String>,
}
