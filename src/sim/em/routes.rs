//! Which EM call a request path names, and the route template it is counted under.
//! Ids are kept raw here: they are validated after auth, as EM does.

use axum::http::Method;

use super::resource::ResourceKind;

/// An EM call, by path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/api/sessionMngr/`
    Logon,
    /// `/api/logonSessions/{id}`
    LogonSession(String),
    /// `/api/jobs/{id}` and its children.
    Resource {
        kind: ResourceKind,
        job: String,
        item: Option<String>,
    },
    /// `/api/tasks/{id}`
    Task(String),
    /// Anything else under `/api`.
    UnknownApi,
    /// Anything outside `/api`.
    Outside,
}

impl Route {
    /// Parses a request path (query excluded). Literal segments match case-insensitively.
    pub fn parse(path: &str) -> Route {
        let Some(rest) = path.strip_prefix("/api") else {
            return Route::Outside;
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Route::Outside;
        }
        let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let is = |i: usize, lit: &str| segs[i].eq_ignore_ascii_case(lit);
        match segs.len() {
            1 if is(0, "sessionMngr") => Route::Logon,
            2 if is(0, "logonSessions") => Route::LogonSession(segs[1].into()),
            2 if is(0, "tasks") => Route::Task(segs[1].into()),
            2 if is(0, "jobs") => Route::Resource {
                kind: ResourceKind::Job,
                job: segs[1].into(),
                item: None,
            },
            4 if is(0, "jobs") => match ResourceKind::from_segment(segs[2]) {
                Some(kind) => Route::Resource {
                    kind,
                    job: segs[1].into(),
                    item: Some(segs[3].into()),
                },
                None => Route::UnknownApi,
            },
            _ => Route::UnknownApi,
        }
    }

    /// The stats key: `"METHOD /route/template"`.
    pub fn stats_key(&self, method: &Method) -> String {
        let template = match self {
            Route::Logon => "/api/sessionMngr/".to_string(),
            Route::LogonSession(_) => "/api/logonSessions/{id}".to_string(),
            Route::Resource { kind, .. } => kind.template(),
            Route::Task(_) => "/api/tasks/{id}".to_string(),
            Route::UnknownApi => "/api/(unknown)".to_string(),
            Route::Outside => "(outside /api)".to_string(),
        };
        format!("{method} {template}")
    }

    /// Whether fault injection applies (every `/api` call but logon).
    pub fn is_faultable(&self) -> bool {
        !matches!(self, Route::Logon | Route::Outside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes_and_templates() {
        let g = "5b89dae5-6f08-45ec-b068-08f0bd08394a";
        let cases = [
            ("/api/sessionMngr/", "POST /api/sessionMngr/"),
            ("/api/sessionMngr", "POST /api/sessionMngr/"),
            ("/api/jobs/x", "POST /api/jobs/{id}"),
            (
                "/api/jobs/x/includes/y",
                "POST /api/jobs/{id}/includes/{id}",
            ),
            (
                "/api/jobs/x/linkedBackupRepositories/y",
                "POST /api/jobs/{id}/linkedBackupRepositories/{id}",
            ),
            (
                "/api/jobs/x/linkedJobs/y",
                "POST /api/jobs/{id}/linkedJobs/{id}",
            ),
            ("/api/tasks/task-1", "POST /api/tasks/{id}"),
            ("/api/logonSessions/x", "POST /api/logonSessions/{id}"),
            ("/api/jobs/x/other/y", "POST /api/(unknown)"),
            ("/apix", "POST (outside /api)"),
        ];
        for (path, key) in cases {
            assert_eq!(Route::parse(path).stats_key(&Method::POST), key, "{path}");
        }
        assert_eq!(
            Route::parse(&format!("/api/jobs/{g}")),
            Route::Resource {
                kind: ResourceKind::Job,
                job: g.into(),
                item: None
            }
        );
    }
}
