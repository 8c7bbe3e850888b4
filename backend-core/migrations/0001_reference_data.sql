-- 0001: reference data — clinics, rooms, doctors, patients, appointment types.
--
-- Every table keeps the full domain record as JSON text in `body` (the backend serialises and
-- parses it with serde). The model that replays these statements treats jsonb as opaque text
-- and has no arrays, so JSON in a plain text column is the portable choice; sqlx decodes it as
-- String on real PostgreSQL too. Columns beside `body` duplicate only what SQL filters on.

-- btree_gist provides GiST operator classes for scalar types (uuid WITH =), which the
-- exclusion constraints on appointments need next to the range operator (&&).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE clinics (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    body text NOT NULL
);

CREATE TABLE rooms (
    id uuid PRIMARY KEY,
    -- A room belongs to exactly one clinic; bookings check the room's clinic.
    clinic_id uuid NOT NULL REFERENCES clinics (id),
    name text NOT NULL,
    room_type text NOT NULL,
    -- 'active', 'maintenance', 'closed', ... (rule H01 reads the full record).
    status text NOT NULL,
    body text NOT NULL
);
-- Loading a clinic's rooms in id order (the allocator's input; room-lock takes row locks in
-- this same id order).
CREATE INDEX idx_rooms_clinic_id ON rooms (clinic_id, id);

CREATE TABLE doctors (
    id uuid PRIMARY KEY,
    clinic_id uuid NOT NULL REFERENCES clinics (id),
    name text NOT NULL,
    body text NOT NULL
);
CREATE INDEX idx_doctors_clinic_id ON doctors (clinic_id, id);

-- Patients are not owned by a clinic: the same person may visit several clinics.
CREATE TABLE patients (
    id uuid PRIMARY KEY,
    body text NOT NULL
);

CREATE TABLE appointment_types (
    clinic_id uuid NOT NULL REFERENCES clinics (id),
    -- The name requests use ("follow_up", "minor_procedure", ...), unique per clinic.
    key text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (clinic_id, key)
);
