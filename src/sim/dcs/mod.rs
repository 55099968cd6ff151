//! The simulated Huawei Cloud DCS and its IAM token service (`/v2/…`, `/v3/auth/tokens`):
//! `routes` (which call a path names), `world` (tokens, background tasks, throttling; pure)
//! and `handler` (the HTTP front, sharing `crate::dcs::wire` with the client). Shares only
//! `config` and `stats` with the rest of the simulator; knows nothing of EM or of the
//! shared `Sim`.

mod handler;
mod routes;
mod world;

pub(crate) use handler::{DcsSim, router};
