pub mod allocator;
pub mod db;
pub mod domain;
pub mod rules;
