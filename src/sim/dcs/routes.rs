//! Which DCS call a request path names (under `/v2`), and the route template it is counted
//! under. Ids are kept raw here: the `world` decides what exists.

use axum::http::Method;

/// A DCS call, by path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DcsRoute {
    /// `/v2/{project_id}/instances/{instance_id}/tasks`
    Tasks {
        project: String,
        instance: String,
    },
    /// `/v2/{project_id}/instances/{instance_id}/tasks/{task_id}`
    Task {
        project: String,
        instance: String,
        task: String,
    },
    Unknown,
}

impl DcsRoute {
    pub fn parse(path: &str) -> DcsRoute {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match segs.as_slice() {
            ["", "v2", p, "instances", i, "tasks"] => DcsRoute::Tasks {
                project: p.to_string(),
                instance: i.to_string(),
            },
            ["", "v2", p, "instances", i, "tasks", t] => DcsRoute::Task {
                project: p.to_string(),
                instance: i.to_string(),
                task: t.to_string(),
            },
            _ => DcsRoute::Unknown,
        }
    }

    /// The stats key: `"METHOD /route/template"`.
    pub fn stats_key(&self, method: &Method) -> String {
        let template = match self {
            DcsRoute::Tasks { .. } => "/v2/{project_id}/instances/{instance_id}/tasks",
            DcsRoute::Task { .. } => "/v2/{project_id}/instances/{instance_id}/tasks/{task_id}",
            DcsRoute::Unknown => "/v2/(unknown)",
        };
        format!("{method} {template}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes_and_templates() {
        let cases = [
            (
                "/v2/p/instances/i/tasks",
                "GET /v2/{project_id}/instances/{instance_id}/tasks",
            ),
            (
                "/v2/p/instances/i/tasks/t",
                "GET /v2/{project_id}/instances/{instance_id}/tasks/{task_id}",
            ),
            ("/v2/p/instances/i", "GET /v2/(unknown)"),
            ("/v2/p/instances/i/tasks/t/x", "GET /v2/(unknown)"),
        ];
        for (path, key) in cases {
            assert_eq!(DcsRoute::parse(path).stats_key(&Method::GET), key, "{path}");
        }
        assert_eq!(
            DcsRoute::parse("/v2/p/instances/i/tasks/t"),
            DcsRoute::Task {
                project: "p".into(),
                instance: "i".into(),
                task: "t".into()
            }
        );
    }
}
