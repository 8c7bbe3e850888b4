//! Placeholder

pub mod real;
