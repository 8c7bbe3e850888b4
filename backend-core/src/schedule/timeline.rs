//! Per-room sorted interval lists: the conflict detection behind H03 and H14.
//!
//! Each room's room-blocking appointments become [`Block`]s `[start, blocked_end)` (turnover
//! included), sorted by start. A new slot `[start, end + turnover)` conflicts with a block when
//! the half-open ranges intersect, exactly the `blocked && blocked` test of the exclusion
//! constraint. Lookups binary-search the first block starting at or after the slot's blocked
//! end, then walk backwards; the walk stops once blocks start earlier than `start − span_max`
//! (the longest block), so it is bounded even when blocks overlap each other (multi-chair
//! rooms, or inconsistent data).
//!
//! The same lists give each slot's neighbours (previous and next block), which S02, S09 and
//! S10 need, and free intervals for availability.
//!
//! Times inside the index are integer microseconds since the Unix epoch ([`EpochMicros`]):
//! PostgreSQL's timestamp resolution, so comparisons agree with the database exactly, and
//! integer arithmetic instead of calendar arithmetic on the hot path.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::Appointment;

/// Microseconds since the Unix epoch.
pub type EpochMicros = i64;

/// Microseconds in a minute.
pub const MINUTE_US: i64 = 60_000_000;

/// `at` as microseconds since the epoch.
pub fn epoch_us(at: DateTime<Utc>) -> EpochMicros {
    at.timestamp_micros()
}

/// Microseconds since the epoch as a UTC time.
pub fn from_epoch_us(at_us: EpochMicros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at_us).expect("epoch microseconds within chrono's range")
}

/// One appointment's blocked range in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub start_us: EpochMicros,
    /// The appointment's end (without turnover).
    pub end_us: EpochMicros,
    /// `end + turnover`.
    pub blocked_end_us: EpochMicros,
    /// Index into the snapshot's appointments.
    pub appointment_index: u32,
    /// The appointment's id: breaks ties between equal starts, so the order (and every
    /// explanation built on it) never depends on the order appointments were listed in.
    pub appointment_id: Uuid,
}

/// Counters of the work done, for the simulation's CPU cost model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EvalStats {
    pub rooms_evaluated: u64,
    pub rule_checks: u64,
    pub intervals_examined: u64,
    pub slots_searched: u64,
}

/// The blocks of one room, sorted by start.
#[derive(Clone, Debug, Default)]
pub struct RoomTimeline {
    blocks: Vec<Block>,
    /// The longest blocked range: bounds the backward walk of [`Self::overlapping`].
    span_max_us: i64,
}

impl RoomTimeline {
    /// Builds the timeline of `room_id` from the room-blocking appointments.
    pub fn build(room_id: Uuid, appointments: &[Appointment]) -> RoomTimeline {
        let mut blocks = Vec::new();
        for (index, appointment) in appointments.iter().enumerate() {
            if appointment.room_id == Some(room_id) && appointment.status.blocks_room() {
                blocks.push(Block {
                    start_us: epoch_us(appointment.start),
                    end_us: epoch_us(appointment.end),
                    blocked_end_us: epoch_us(appointment.blocked_end()),
                    appointment_index: u32::try_from(index).expect("appointment index fits u32"),
                    appointment_id: appointment.id,
                });
            }
        }
        Self::from_blocks(blocks)
    }

    pub fn from_blocks(mut blocks: Vec<Block>) -> RoomTimeline {
        // Equal starts are ordered by blocked end, then id: independent of input order.
        blocks.sort_unstable_by_key(|b| (b.start_us, b.blocked_end_us, b.appointment_id.as_u128()));
        let span_max_us = blocks.iter().map(|b| b.blocked_end_us - b.start_us).max().unwrap_or(0);
        RoomTimeline { blocks, span_max_us }
    }

    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Index of the first block starting at or after `at`.
    fn first_at_or_after(&self, at_us: EpochMicros, stats: &mut EvalStats) -> usize {
        // A binary search examines about log2(n) blocks.
        stats.intervals_examined += u64::from(usize::BITS - self.blocks.len().leading_zeros());
        self.blocks.partition_point(|block| block.start_us < at_us)
    }

    /// Blocks intersecting `[start_us, blocked_end_us)`, latest first.
    pub fn overlapping<'a>(
        &'a self,
        start_us: EpochMicros,
        blocked_end_us: EpochMicros,
        stats: &'a mut EvalStats,
    ) -> impl Iterator<Item = &'a Block> + 'a {
        assert!(start_us < blocked_end_us, "an empty slot cannot conflict");
        let upper = self.first_at_or_after(blocked_end_us, stats);
        let earliest_relevant_us = start_us - self.span_max_us;
        self.blocks[..upper]
            .iter()
            .rev()
            .take_while(move |block| block.start_us >= earliest_relevant_us)
            .inspect(move |_| stats.intervals_examined += 1)
            .filter(move |block| start_us < block.blocked_end_us)
    }

    /// The latest-starting block that conflicts with `[start_us, blocked_end_us)`, if any.
    pub fn first_conflict(
        &self,
        start_us: EpochMicros,
        blocked_end_us: EpochMicros,
        stats: &mut EvalStats,
    ) -> Option<Block> {
        self.overlapping(start_us, blocked_end_us, stats).next().copied()
    }

    /// The block before the slot (latest start before `start_us`) and the block after it
    /// (first start at or after `start_us`).
    pub fn neighbours(
        &self,
        start_us: EpochMicros,
        stats: &mut EvalStats,
    ) -> (Option<Block>, Option<Block>) {
        let index = self.first_at_or_after(start_us, stats);
        let previous = index.checked_sub(1).map(|i| self.blocks[i]);
        (previous, self.blocks.get(index).copied())
    }

    /// Minutes the room is blocked in total (overlapping blocks count twice).
    pub fn busy_minutes(&self) -> i64 {
        // Saturating: inconsistent data (huge turnovers) must not overflow.
        let busy_us = self.blocks.iter().map(|b| b.blocked_end_us - b.start_us);
        busy_us.fold(0i64, i64::saturating_add) / MINUTE_US
    }

    /// Free intervals within `[from, to)` (gaps between blocked ranges).
    pub fn free_intervals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let (from_us, to_us) = (epoch_us(from), epoch_us(to));
        let mut free = Vec::new();
        let mut cursor_us = from_us;
        for block in &self.blocks {
            if block.start_us >= to_us {
                break;
            }
            if block.start_us > cursor_us {
                free.push((from_epoch_us(cursor_us), from_epoch_us(block.start_us)));
            }
            cursor_us = cursor_us.max(block.blocked_end_us);
        }
        if cursor_us < to_us {
            free.push((from_epoch_us(cursor_us), to));
        }
        free
    }
}
