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

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::Appointment;

/// One appointment's blocked range in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub start: DateTime<Utc>,
    /// The appointment's end (without turnover).
    pub end: DateTime<Utc>,
    /// `end + turnover`.
    pub blocked_end: DateTime<Utc>,
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
    span_max: Duration,
}

impl RoomTimeline {
    /// Builds the timeline of `room_id` from the room-blocking appointments.
    pub fn build(room_id: Uuid, appointments: &[Appointment]) -> RoomTimeline {
        let mut blocks = Vec::new();
        for (index, appointment) in appointments.iter().enumerate() {
            if appointment.room_id == Some(room_id) && appointment.status.blocks_room() {
                blocks.push(Block {
                    start: appointment.start,
                    end: appointment.end,
                    blocked_end: appointment.blocked_end(),
                    appointment_index: u32::try_from(index).expect("appointment index fits u32"),
                    appointment_id: appointment.id,
                });
            }
        }
        Self::from_blocks(blocks)
    }

    pub fn from_blocks(mut blocks: Vec<Block>) -> RoomTimeline {
        // Equal starts are ordered by blocked end, then id: independent of input order.
        blocks.sort_by_key(|block| (block.start, block.blocked_end, block.appointment_id));
        let span_max = blocks
            .iter()
            .map(|block| block.blocked_end - block.start)
            .max()
            .unwrap_or_else(Duration::zero);
        RoomTimeline { blocks, span_max }
    }

    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Index of the first block starting at or after `at`.
    fn first_at_or_after(&self, at: DateTime<Utc>, stats: &mut EvalStats) -> usize {
        // A binary search examines about log2(n) blocks.
        stats.intervals_examined += u64::from(usize::BITS - self.blocks.len().leading_zeros());
        self.blocks.partition_point(|block| block.start < at)
    }

    /// Blocks intersecting `[start, blocked_end)`, latest first.
    pub fn overlapping<'a>(
        &'a self,
        start: DateTime<Utc>,
        blocked_end: DateTime<Utc>,
        stats: &'a mut EvalStats,
    ) -> impl Iterator<Item = &'a Block> + 'a {
        assert!(start < blocked_end, "an empty slot cannot conflict");
        let upper = self.first_at_or_after(blocked_end, stats);
        let earliest_relevant = start - self.span_max;
        self.blocks[..upper]
            .iter()
            .rev()
            .take_while(move |block| block.start >= earliest_relevant)
            .inspect(|_| stats.intervals_examined += 1)
            .filter(move |block| start < block.blocked_end)
    }

    /// The latest-starting block that conflicts with `[start, blocked_end)`, if any.
    pub fn first_conflict(
        &self,
        start: DateTime<Utc>,
        blocked_end: DateTime<Utc>,
        stats: &mut EvalStats,
    ) -> Option<Block> {
        self.overlapping(start, blocked_end, stats).next().copied()
    }

    /// The block before the slot (latest start before `start`) and the block after it (first
    /// start at or after `start`).
    pub fn neighbours(
        &self,
        start: DateTime<Utc>,
        stats: &mut EvalStats,
    ) -> (Option<Block>, Option<Block>) {
        let index = self.first_at_or_after(start, stats);
        let previous = index.checked_sub(1).map(|i| self.blocks[i]);
        (previous, self.blocks.get(index).copied())
    }

    /// Minutes the room is blocked within `[from, to)`.
    pub fn busy_minutes(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        let clipped = self.blocks.iter().map(|block| {
            let start = block.start.max(from);
            let end = block.blocked_end.min(to);
            (end - start).num_minutes().max(0)
        });
        clipped.sum()
    }

    /// Free intervals within `[from, to)` (gaps between blocked ranges).
    pub fn free_intervals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut free = Vec::new();
        let mut cursor = from;
        for block in &self.blocks {
            if block.start >= to {
                break;
            }
            if block.start > cursor {
                free.push((cursor, block.start));
            }
            cursor = cursor.max(block.blocked_end);
        }
        if cursor < to {
            free.push((cursor, to));
        }
        free
    }
}
