-- 0003: appointments.
--
-- Times are half-open [starts_at, ends_at) in UTC, so back-to-back bookings do not overlap.
-- The room stays blocked after the visit for the turnover (cleaning, or the air-clearance time
-- after an airborne-isolation patient, rule H09). The model has no interval type, so the
-- backend stores `turnover_minutes` and computes `blocked_until = ends_at + turnover` itself;
-- the generated `blocked` range is what room overlap is judged on.
--
-- Statuses: held / booked / checked_in / room_pending occupy the doctor and patient;
-- held / booked / checked_in with a room occupy the room; done and cancelled free everything.
-- room_pending is the `book_without_room` fallback: booked, no room yet (room_id NULL).
CREATE TABLE appointments (
    id uuid PRIMARY KEY,
    clinic_id uuid NOT NULL REFERENCES clinics (id),
    -- NULL only for room_pending.
    room_id uuid REFERENCES rooms (id),
    doctor_id uuid NOT NULL REFERENCES doctors (id),
    patient_id uuid NOT NULL REFERENCES patients (id),
    -- The appointment type's key within the clinic (appointment_types.key). Not a foreign
    -- key: the model implements single-column references only; the backend checks it.
    appointment_type text NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    turnover_minutes int NOT NULL DEFAULT 0 CHECK (turnover_minutes >= 0),
    blocked_until timestamptz NOT NULL,
    status text NOT NULL
        CHECK (status IN ('held', 'booked', 'checked_in', 'done', 'cancelled', 'room_pending')),
    -- Copied from the patient at booking time: the allocator's rules for later bookings in
    -- the same room read them (S16 clean window after infectious use, same-gender bays).
    infectious bool NOT NULL DEFAULT false,
    patient_gender text,
    -- The rule policy version and score the room was chosen with (audit trail).
    policy_version bigint,
    score text,
    created_at timestamptz NOT NULL,
    CHECK (ends_at > starts_at),
    CHECK (blocked_until >= ends_at),
    CHECK (room_id IS NOT NULL OR status IN ('room_pending', 'cancelled')),
    during tstzrange GENERATED ALWAYS AS (tstzrange(starts_at, ends_at, '[)')) STORED,
    blocked tstzrange GENERATED ALWAYS AS (tstzrange(starts_at, blocked_until, '[)')) STORED,
    -- BEGIN no_room_overlap (the unguarded schema variant drops the lines up to END)
    -- THE double-booking guard: no two room-occupying appointments of one room may have
    -- overlapping blocked ranges. Enforced for every writer at every isolation level; an
    -- overlapping INSERT waits for the holder and then fails with 23P01 naming this constraint.
    CONSTRAINT no_room_overlap EXCLUDE USING gist (room_id WITH =, blocked WITH &&)
        WHERE (status IN ('held', 'booked', 'checked_in') AND room_id IS NOT NULL),
    -- END no_room_overlap
    -- Rule H15: a doctor or a patient cannot be in two appointments at once (turnover is the
    -- room's, not the people's, so `during` is used here).
    CONSTRAINT no_doctor_overlap EXCLUDE USING gist (doctor_id WITH =, during WITH &&)
        WHERE (status IN ('held', 'booked', 'checked_in', 'room_pending')),
    CONSTRAINT no_patient_overlap EXCLUDE USING gist (patient_id WITH =, during WITH &&)
        WHERE (status IN ('held', 'booked', 'checked_in', 'room_pending'))
);

-- Day sheets: a clinic's appointments in a time window (the allocator's snapshot query).
CREATE INDEX idx_appointments_clinic_time ON appointments (clinic_id, starts_at);
-- The in-transaction overlap check of one room (room-lock, advisory, serializable, naive).
CREATE INDEX idx_appointments_room_time ON appointments (room_id, starts_at, blocked_until);
CREATE INDEX idx_appointments_doctor_time ON appointments (doctor_id, starts_at);
CREATE INDEX idx_appointments_patient_time ON appointments (patient_id, starts_at);
