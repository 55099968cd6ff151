//! The remote call a dispatch makes: which endpoint client a request goes to (by target
//! system and endpoint name, with one "unsupported endpoint" error for both systems), and
//! the one DELETE, mapped to [`Next`] by the pure mappings.

use super::{Engine, Next};
use crate::dcs::DcsClient;
use crate::em::EmClient;
use crate::event::ErrorInfo;
use crate::ledger::RequestRow;
use crate::request::{Segment, Target};
use std::collections::HashMap;
use std::sync::Arc;

/// The endpoint recorded for a request that names none while several endpoints of its system
/// are configured: never a configured name (those are `[A-Za-z0-9._-]`), so such a request
/// is refused, with the configured names, instead of being sent to one picked for it.
pub const UNNAMED_ENDPOINT: &str = "(unnamed)";

/// One DELETE, bound to its client.
pub(super) enum Remote {
    Em {
        client: Arc<EmClient>,
        path: String,
    },
    Dcs {
        client: Arc<DcsClient>,
        project_id: Segment,
        instance_id: Segment,
        task_id: Segment,
    },
}

impl Remote {
    /// Sends the DELETE and says what should happen next.
    pub async fn delete(self) -> Next {
        match self {
            Remote::Em { client, path } => {
                super::em::mappings::after_delete(client.delete(&path).await)
            }
            Remote::Dcs {
                client,
                project_id,
                instance_id,
                task_id,
            } => {
                let result = client
                    .delete_task(&project_id, &instance_id, &task_id)
                    .await;
                super::dcs::after_dcs_delete(result, client.not_found_is_absent())
            }
        }
    }
}

impl Engine {
    /// The DELETE for `target`, or why it cannot be sent (no such endpoint configured).
    pub(super) fn remote(&self, row: &RequestRow, target: &Target) -> Result<Remote, ErrorInfo> {
        let Target::DcsBackgroundTask {
            project_id,
            instance_id,
            task_id,
        } = target
        else {
            return self.em_client(row).map(|c| Remote::Em {
                client: Arc::clone(c),
                path: target.path(),
            });
        };
        let client = dcs_client_of(&self.dcs, &row.endpoint)?;
        Ok(Remote::Dcs {
            client: Arc::clone(client),
            project_id: project_id.clone(),
            instance_id: instance_id.clone(),
            task_id: task_id.clone(),
        })
    }
}

impl Engine {
    /// The EM client of a request's endpoint, or why there is none.
    pub(super) fn em_client(&self, row: &RequestRow) -> Result<&Arc<EmClient>, ErrorInfo> {
        em_client_of(&self.em, &row.endpoint)
    }
}

/// The client of the EM endpoint named `endpoint`, or an `unsupported` error saying that no
/// EM endpoint is configured, or none of that name.
pub fn em_client_of<'a>(
    clients: &'a HashMap<String, Arc<EmClient>>,
    endpoint: &str,
) -> Result<&'a Arc<EmClient>, ErrorInfo> {
    lookup(clients, endpoint, "Enterprise Manager", "REAPER_EM_URL")
}

/// The client of the DCS endpoint named `endpoint`, or an `unsupported` error saying that no
/// DCS endpoint is configured, or none of that name.
pub fn dcs_client_of<'a>(
    clients: &'a HashMap<String, Arc<DcsClient>>,
    endpoint: &str,
) -> Result<&'a Arc<DcsClient>, ErrorInfo> {
    lookup(clients, endpoint, "Huawei DCS", "REAPER_DCS_URL")
}

/// The client of `endpoint` among those of one system, or an `unsupported` error saying
/// that the system has no endpoint configured, or none of that name, or that the request
/// must name one of several (listing the configured names).
fn lookup<'a, C>(
    clients: &'a HashMap<String, Arc<C>>,
    endpoint: &str,
    system: &str,
    url_key: &str,
) -> Result<&'a Arc<C>, ErrorInfo> {
    clients.get(endpoint).ok_or_else(|| {
        let mut names: Vec<&str> = clients.keys().map(String::as_str).collect();
        names.sort_unstable();
        let names = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        unsupported(if clients.is_empty() {
            format!("no {system} endpoint is configured (set {url_key})")
        } else if endpoint == UNNAMED_ENDPOINT {
            format!(
                "the request names no `endpoint` and {} {system} endpoints are configured \
                 ({names}): set `endpoint` to one of them",
                clients.len()
            )
        } else {
            format!("unknown endpoint `{endpoint}` (configured {system} endpoints: {names})")
        })
    })
}

/// A request that cannot be sent as it is (no such endpoint, an unreadable stored target).
pub(super) fn unsupported(message: String) -> ErrorInfo {
    ErrorInfo {
        kind: "unsupported".into(),
        message,
        ..Default::default()
    }
}
