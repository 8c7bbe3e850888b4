//! sqlx implementation (to be written).
