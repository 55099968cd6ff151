//! Veeam Backup Enterprise Manager: wire codecs (shared with the simulator), error classes
//! and the session-keeping client (`client`: deletes and reads; `task`: polling and stopping
//! the tasks of its own session; `session`: logons and probes).
pub mod client;
pub mod codec;
pub mod error;
mod session;
mod task;

pub use client::{DeleteAnswer, EmClient, Presence};
pub use error::{EmError, ErrorClass};
pub use task::{Poll, Stop};
