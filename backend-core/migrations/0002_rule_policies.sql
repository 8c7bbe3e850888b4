-- 0002: versioned rule policies, one row per (clinic, version).
--
-- The body is the rule set exactly as authored (TOML or JSON). The backend caches parsed
-- policies by (clinic_id, version) and checks freshness per request with the cheap
--   SELECT max(version) FROM rule_policies WHERE clinic_id = $1
-- which the primary key index answers. Publishing a new policy is an INSERT of version + 1;
-- rows are never updated, so a cached (clinic, version) entry can never go stale.
CREATE TABLE rule_policies (
    clinic_id uuid NOT NULL REFERENCES clinics (id),
    version bigint NOT NULL CHECK (version > 0),
    format text NOT NULL CHECK (format IN ('toml', 'json')),
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (clinic_id, version)
);
