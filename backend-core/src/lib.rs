pub mod booking;
pub mod config;
pub mod db;
pub mod error;
pub mod metrics;
