pub mod allocator;
pub mod booking;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod rules;
