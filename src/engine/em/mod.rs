//! Enterprise Manager's part of the engine: the pure mappings of its answers, and the
//! follow-up steps (task polls, verifications) that only EM requests take.

mod follow;
pub(super) mod mappings;
