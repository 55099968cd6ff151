//! Huawei Cloud DCS: the background-task client, its IAM tokens, error classes, and the wire
//! shapes (shared with the simulator). DCS deletes synchronously: no task to poll.
mod answer;
mod cache;
pub mod client;
pub mod error;
pub mod token;
pub mod wire;

pub use client::{DcsClient, DcsDeleted};
pub use error::{DcsError, ErrorClass, Origin, classify};
