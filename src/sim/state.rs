//! The shared state of one simulator: the counters both sides write, the live faults, the
//! EM side and the DCS side, built once from a `SimConfig` and shared by every connection. Holds no HTTP
//! and no rules of its own; `router` routes to the sides, `SimHandle` reads and pokes them.

use std::net::SocketAddr;
use std::sync::Arc;

use super::config::SimConfig;
use super::dcs::DcsSim;
use super::em::EmSim;
use super::faults::{Faults, LiveFaults};
use super::stats::StatsRecorder;

/// One simulator: both sides and the counters they share.
pub(crate) struct Sim {
    pub stats: Arc<StatsRecorder>,
    /// The fault ratios in force (the EM side reads them; `/_sim/faults` changes them).
    pub faults: Arc<LiveFaults>,
    /// The simulated EM (everything outside `/v2`, `/v3` and `/_sim`).
    pub em: Arc<EmSim>,
    /// The simulated DCS and its IAM (`/v2/…`, `/v3/auth/tokens`).
    pub dcs: Arc<DcsSim>,
}

impl Sim {
    /// `local` is the bound address (EM's `Href`s fall back to it without a `Host`).
    pub fn new(cfg: SimConfig, local: SocketAddr) -> Self {
        let stats = Arc::new(StatsRecorder::default());
        let faults = Arc::new(LiveFaults::new(Faults::of(&cfg)));
        let dcs = Arc::new(DcsSim::new(&cfg, stats.clone()));
        let em = Arc::new(EmSim::new(cfg, stats.clone(), faults.clone(), local));
        Sim {
            stats,
            faults,
            em,
            dcs,
        }
    }
}
