//! The lexicographic `hard / medium / soft` score.
//!
//! Every level is a sum of integer penalties (≤ 0, higher is better), compared level by level:
//! any hard improvement beats any medium one, any medium beats any soft. The derive of `Ord`
//! follows the field order, which is exactly that comparison. No floats anywhere: float sums
//! depend on evaluation order and corrupt ties.
//!
//! - hard: −Σ weight × magnitude over violated hard rules; 0 means feasible.
//! - medium: −1 when the booking goes ahead without a room (`book_without_room`).
//! - soft: −Σ weight × magnitude over soft rules.
//!
//! On the wire a score is the string `"0hard/0medium/-14soft"`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Score {
    pub hard: i64,
    pub medium: i64,
    pub soft: i64,
}

impl Score {
    pub const ZERO: Score = Score { hard: 0, medium: 0, soft: 0 };

    /// No hard rule is violated.
    pub fn is_feasible(&self) -> bool {
        self.hard == 0
    }

    /// Adds a penalty of `weight × magnitude` to the hard level (saturating).
    pub fn penalize_hard(&mut self, weight: i64, magnitude: i64) {
        self.hard = self.hard.saturating_sub(weight.saturating_mul(magnitude));
    }

    /// Adds a penalty of `weight × magnitude` to the soft level (saturating).
    pub fn penalize_soft(&mut self, weight: i64, magnitude: i64) {
        self.soft = self.soft.saturating_sub(weight.saturating_mul(magnitude));
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}hard/{}medium/{}soft", self.hard, self.medium, self.soft)
    }
}

impl FromStr for Score {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut levels = text.split('/');
        let mut level = |suffix: &str| -> Result<i64, String> {
            let part = levels.next().ok_or_else(|| format!("score `{text}`: missing {suffix}"))?;
            let number = part
                .strip_suffix(suffix)
                .ok_or_else(|| format!("score `{text}`: `{part}` does not end in `{suffix}`"))?;
            number.parse().map_err(|_| format!("score `{text}`: `{number}` is not an integer"))
        };
        let score = Score { hard: level("hard")?, medium: level("medium")?, soft: level("soft")? };
        if levels.next().is_some() {
            return Err(format!("score `{text}`: more than three levels"));
        }
        Ok(score)
    }
}

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_compare_lexicographically() {
        let feasible_bad_soft = Score { hard: 0, medium: 0, soft: -1_000_000 };
        let infeasible_good_soft = Score { hard: -1, medium: 0, soft: 0 };
        assert!(feasible_bad_soft > infeasible_good_soft);
        let pending = Score { hard: 0, medium: -1, soft: 0 };
        assert!(feasible_bad_soft > pending);
        assert!(Score { hard: 0, medium: 0, soft: -3 } > Score { hard: 0, medium: 0, soft: -4 });
    }

    #[test]
    fn display_round_trips_and_bad_text_is_rejected() {
        let score = Score { hard: -50, medium: -1, soft: -14 };
        assert_eq!(score.to_string(), "-50hard/-1medium/-14soft");
        assert_eq!("-50hard/-1medium/-14soft".parse::<Score>(), Ok(score));
        assert_eq!(serde_json::to_string(&score).unwrap(), "\"-50hard/-1medium/-14soft\"");
        assert!("0hard/0soft".parse::<Score>().is_err());
        assert!("0hard/xmedium/0soft".parse::<Score>().is_err());
        assert!("0hard/0medium/0soft/1".parse::<Score>().is_err());
    }

    #[test]
    fn penalties_saturate_instead_of_overflowing() {
        let mut score = Score::ZERO;
        score.penalize_hard(i64::MAX, 2);
        assert_eq!(score.hard, i64::MIN + 1);
        score.penalize_soft(10, 3);
        assert_eq!(score.soft, -30);
    }
}
