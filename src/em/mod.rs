//! Veeam Backup Enterprise Manager: wire codecs (shared with the simulator), error classes
//! and the session-keeping client.
pub mod client;
pub mod codec;
pub mod error;
mod session;

pub use client::{DeleteAnswer, EmClient, Poll, Presence};
pub use error::{EmError, ErrorClass};
