//! A bare HTTP client of the in-process EM simulator, for tests that check the simulator's
//! own answers (status, headers, body) rather than reaper's client.

use reaper::em::codec::{Format, decode_error, decode_logon_session};
use reaper::sim::{SimConfig, SimHandle};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

/// A simulator on a free port of 127.0.0.1.
pub async fn start_sim(cfg: SimConfig) -> SimHandle {
    reaper::sim::spawn(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the simulator starts")
}

/// One answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The `Message` of an EM Error body (panics when the body is not one).
    pub fn error_message(&self, format: Format) -> String {
        decode_error(format, &self.body)
            .unwrap_or_else(|| panic!("not an Error body: {}", self.body))
            .message
    }
}

/// A client of one simulator; `token` is sent as the `X-RestSvcSessionId` header.
pub struct Em {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT/api`.
    pub api: String,
}

impl Em {
    pub fn new(sim: &SimHandle) -> Self {
        Em {
            http: reqwest::Client::new(),
            api: sim.api_url(),
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request reaches the simulator");
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn logon_as(&self, user: &str, password: &str) -> Answer {
        let url = format!("{}/sessionMngr/?v=latest", self.api);
        self.send(self.http.post(url).basic_auth(user, Some(password)))
            .await
    }

    /// Logs on with the default credentials: `(token, session GUID)`.
    pub async fn logon(&self) -> (String, String) {
        let a = self.logon_as("reaper", "reaper").await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let token = a.headers["x-restsvcsessionid"]
            .to_str()
            .unwrap()
            .to_string();
        let session = decode_logon_session(Format::Xml, &a.body).unwrap();
        (token, session.session_id)
    }

    /// A request on `path` (below `/api`) with the token.
    pub fn req(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .header("X-RestSvcSessionId", token)
    }

    pub async fn call(&self, method: Method, path: &str, token: &str) -> Answer {
        self.send(self.req(method, path, token)).await
    }

    /// A call that asks for `format`.
    pub async fn call_in(&self, format: Format, method: Method, path: &str, token: &str) -> Answer {
        let req = self.req(method, path, token);
        self.send(req.header("Accept", format.media_type())).await
    }
}
