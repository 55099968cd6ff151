//! The simulated Veeam Backup Enterprise Manager (everything outside `/v2`, `/v3` and
//! `/_sim`): `routes` (which call a path names), `wire` (`Accept`, session token, Basic
//! credentials, Error bodies), `resource` (what can be deleted), `inventory` (strict mode),
//! `world` (sessions, tasks, existence; pure) and `handler` (the HTTP front that ties them
//! together). Shares only `config` and `stats` with the rest of the simulator, and
//! `crate::em::codec` with the client; knows nothing of DCS or of the shared `Sim`.

mod handler;
pub(crate) mod inventory;
mod resource;
mod routes;
mod wire;
mod world;

pub(crate) use handler::{EmSim, router};
pub use inventory::{Inventory, InventoryJob};
pub use world::TaskSighting;
