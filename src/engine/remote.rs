//! The remote call a dispatch makes: which endpoint client a request goes to (by target
//! system and endpoint name), and the one DELETE, mapped to [`Next`] by the pure mappings.

use super::{Engine, Next};
use crate::dcs::DcsClient;
use crate::em::EmClient;
use crate::event::ErrorInfo;
use crate::ledger::RequestRow;
use crate::request::Target;
use std::sync::Arc;

/// One DELETE, bound to its client.
pub(super) enum Remote {
    Em {
        client: Arc<EmClient>,
        path: String,
    },
    Dcs {
        client: Arc<DcsClient>,
        project_id: String,
        instance_id: String,
        task_id: String,
    },
}

impl Remote {
    /// Sends the DELETE and says what should happen next.
    pub async fn delete(self) -> Next {
        match self {
            Remote::Em { client, path } => super::after_delete(client.delete(&path).await),
            Remote::Dcs {
                client,
                project_id,
                instance_id,
                task_id,
            } => {
                let result = client
                    .delete_task(&project_id, &instance_id, &task_id)
                    .await;
                super::after_dcs_delete(result, client.not_found_is_absent())
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
        let client = self.dcs.get(&row.endpoint).ok_or_else(|| ErrorInfo {
            kind: "unsupported".into(),
            message: if self.dcs.is_empty() {
                "no Huawei DCS endpoint is configured (set REAPER_DCS_URL)".to_string()
            } else {
                format!("unknown endpoint `{}`", row.endpoint)
            },
            ..Default::default()
        })?;
        Ok(Remote::Dcs {
            client: Arc::clone(client),
            project_id: project_id.as_str().to_string(),
            instance_id: instance_id.as_str().to_string(),
            task_id: task_id.as_str().to_string(),
        })
    }
}
