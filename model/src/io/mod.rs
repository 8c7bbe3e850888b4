//! Thin async adapters over the sans-IO engine: a framed protocol ([`frame`]), a server with
//! seeded PCT scheduling and service times ([`server`], [`sched`]), a client ([`client`]) and
//! the execution trace ([`trace`]) and the WAL flush COMMITs wait for ([`wal`]). Everything runs over any `AsyncRead + AsyncWrite + Unpin`
//! stream on a current-thread runtime: no real sockets, threads or wall clock, so the
//! simulation can run it on turmoil TCP streams. Not modelled: TLS, auth, cancellation.

pub mod client;
pub mod cores;
pub mod frame;
pub mod sched;
pub mod server;
pub mod trace;
pub mod wal;

pub use client::Client;
pub use cores::{CoreGuard, Cores, Group, Sharing};
pub use frame::{FRAME_BYTES_MAX, Incoming, IoError, QueryRef};
pub use sched::Scheduler;
pub use server::{Server, ServerConfig};
pub use trace::TraceEvent;
