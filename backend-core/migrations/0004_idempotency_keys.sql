-- 0004: idempotency keys for POST /v1/appointments (Stripe / IETF httpapi draft semantics).
--
-- The row is inserted in the SAME transaction as the booking it answers, so either both exist
-- or neither does: a crash between them cannot leave a booking whose retry books again.
-- Concurrent requests with one key are serialised by pg_try_advisory_xact_lock(hash of key)
-- at the start of the transaction (the loser answers 409 "in flight"); the primary key is the
-- backstop (a 23505 makes the loser retry and then replay the stored response).
--
-- Only completed bookings are stored (201 booked or room_pending). Validation errors and lost
-- conflicts are not, so they stay safely retryable with the same key.
CREATE TABLE idempotency_keys (
    key text PRIMARY KEY,
    -- SHA-256 (hex) of the canonical JSON request body: same key + other body → 422.
    request_hash text NOT NULL,
    status_code int NOT NULL,
    -- The exact response body replayed on a retry.
    body text NOT NULL,
    appointment_id uuid,
    created_at timestamptz NOT NULL
);
-- Pruning keys older than the retention window (≥ 24 h).
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at);
