//! The concurrency-control strategies a booking transaction can use, selectable by name.
//!
//! WHAT: [`Strategy`] names one way of making "check the room is free, then insert" atomic
//! (or, for the three BROKEN ones, a well-known way of failing to). `transaction.rs` holds the
//! statements each one runs.
//!
//! WHY: the simulation must show that it tells the safe strategies from the broken ones, so the
//! broken ones exist on purpose. They are never the default and every listing marks them.
//!
//! SCHEMA VARIANTS: `exclusion` relies on the `no_room_overlap` EXCLUDE constraint. The other
//! safe strategies must be correct without it, and the broken ones must not be rescued by it,
//! so the schema comes in two variants (`crate::db::schema::SchemaVariant`, chosen per strategy
//! by [`Strategy::schema_variant`]): `Guarded` (the
//! constraint present: production) and `Unguarded` (the same tables without `no_room_overlap`:
//! tests and simulation runs of every strategy except `exclusion`).

use std::fmt;
use std::str::FromStr;

use crate::db::schema::SchemaVariant;

/// A booking concurrency-control strategy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    /// INSERT … ON CONFLICT DO NOTHING and let the EXCLUDE constraint reject overlaps
    /// (INSERT 0 0 → next-ranked room; speculative insertion keeps it deadlock-free).
    #[default]
    Exclusion,
    /// READ COMMITTED; lock candidate room rows FOR NO KEY UPDATE in id order; check; insert.
    RoomLock,
    /// SERIALIZABLE; check; insert; retry the whole transaction on 40001/40P01.
    Serializable,
    /// READ COMMITTED; pg_advisory_xact_lock per candidate room in key order; check; insert.
    Advisory,
    /// BROKEN: check-then-insert at READ COMMITTED with no locks (double-books).
    Naive,
    /// BROKEN: room-lock under REPEATABLE READ: the snapshot predates the lock (double-books).
    RrRoomLock,
    /// BROKEN: locks several candidate rooms in score order, not id order (deadlocks).
    RoomLockUnordered,
}

impl Strategy {
    /// Every strategy, safe ones first.
    pub const ALL: [Strategy; 7] = [
        Strategy::Exclusion,
        Strategy::RoomLock,
        Strategy::Serializable,
        Strategy::Advisory,
        Strategy::Naive,
        Strategy::RrRoomLock,
        Strategy::RoomLockUnordered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Exclusion => "exclusion",
            Strategy::RoomLock => "room-lock",
            Strategy::Serializable => "serializable",
            Strategy::Advisory => "advisory",
            Strategy::Naive => "naive",
            Strategy::RrRoomLock => "rr-room-lock",
            Strategy::RoomLockUnordered => "room-lock-unordered",
        }
    }

    /// A one-line description; broken strategies start with "BROKEN:".
    pub fn description(self) -> &'static str {
        match self {
            Strategy::Exclusion => {
                "INSERT … ON CONFLICT DO NOTHING against the no_room_overlap EXCLUDE \
                 constraint (no deadlocks); room taken → next-ranked room (default)"
            }
            Strategy::RoomLock => {
                "READ COMMITTED; lock candidate rooms FOR NO KEY UPDATE in id order, check, insert"
            }
            Strategy::Serializable => "SERIALIZABLE check-then-insert with jittered retries",
            Strategy::Advisory => {
                "READ COMMITTED; pg_advisory_xact_lock per candidate room in key order, check, \
                 insert"
            }
            Strategy::Naive => "BROKEN: check-then-insert at READ COMMITTED with no locks",
            Strategy::RrRoomLock => {
                "BROKEN: room-lock under REPEATABLE READ (the snapshot predates the lock)"
            }
            Strategy::RoomLockUnordered => {
                "BROKEN: locks candidate rooms in score order, so concurrent bookings deadlock"
            }
        }
    }

    /// True for the deliberately broken strategies.
    pub fn is_broken(self) -> bool {
        matches!(self, Strategy::Naive | Strategy::RrRoomLock | Strategy::RoomLockUnordered)
    }

    /// True when correctness depends on the `no_room_overlap` constraint being present.
    pub fn needs_exclusion_constraint(self) -> bool {
        self == Strategy::Exclusion
    }

    /// The schema variant that tests this strategy honestly: `Guarded` for `exclusion` (it
    /// relies on the constraint), `Unguarded` for every other strategy (so the constraint
    /// neither helps the lock-based ones nor rescues the broken ones).
    pub fn schema_variant(self) -> SchemaVariant {
        if self.needs_exclusion_constraint() {
            SchemaVariant::Guarded
        } else {
            SchemaVariant::Unguarded
        }
    }

    /// The `name — description` listing used by CLIs and error messages.
    pub fn listing() -> String {
        let lines: Vec<String> =
            Strategy::ALL.iter().map(|s| format!("{:<20} {}", s.name(), s.description())).collect();
        lines.join("\n")
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown strategy name; the message lists the valid ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy {given:?}; valid strategies: {valid}")]
pub struct UnknownStrategy {
    pub given: String,
    pub valid: String,
}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(name: &str) -> Result<Strategy, UnknownStrategy> {
        Strategy::ALL.iter().copied().find(|s| s.name() == name).ok_or_else(|| {
            let names: Vec<String> =
                Strategy::ALL
                    .iter()
                    .map(|s| {
                        if s.is_broken() {
                            format!("{} (BROKEN)", s.name())
                        } else {
                            s.name().into()
                        }
                    })
                    .collect();
            UnknownStrategy { given: name.to_string(), valid: names.join(", ") }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_broken_ones_are_marked() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
            assert_eq!(strategy.is_broken(), strategy.description().starts_with("BROKEN:"));
        }
        assert_eq!(Strategy::default(), Strategy::Exclusion);
        assert!(!Strategy::default().is_broken());
        assert_eq!(Strategy::ALL.iter().filter(|s| s.is_broken()).count(), 3);
    }

    #[test]
    fn each_strategy_gets_the_variant_that_tests_it() {
        assert_eq!(Strategy::Exclusion.schema_variant(), SchemaVariant::Guarded);
        for strategy in Strategy::ALL.into_iter().filter(|s| *s != Strategy::Exclusion) {
            assert_eq!(strategy.schema_variant(), SchemaVariant::Unguarded);
        }
    }

    #[test]
    fn unknown_name_lists_valid_names() {
        let error = "optimistic".parse::<Strategy>().unwrap_err();
        let text = error.to_string();
        assert!(text.contains("\"optimistic\""));
        assert!(text.contains("room-lock"));
        assert!(text.contains("naive (BROKEN)"));
        assert!(Strategy::listing().lines().count() == Strategy::ALL.len());
    }
}
