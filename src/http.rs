//! HTTP plumbing shared by the EM and DCS clients: the `reqwest` client with its TLS trust
//! and timeouts, `Retry-After` parsing, and error text that never carries a credential.

use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How the engine should treat a failed call to a remote (EM, DCS, IAM): what callers branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 404: the resource (or task) is not there.
    NotFound,
    /// A permanent refusal (400/403/405/501, other 4xx): do not retry.
    Permanent,
    /// Worth retrying later: connect/timeout errors, 408/429/5xx, and codes that mean "not now".
    Transient,
    /// 401 to a call made with fresh credentials.
    Unauthorized,
    /// The endpoint cannot be used now: it does not answer (connection refused or reset, DNS,
    /// TLS, timeout) or refuses reaper's own credentials (401/403 on the EM logon or the IAM
    /// token call, a static DCS token refused). Not the request's failure: the endpoint is
    /// marked down, the request waits without spending an attempt (design 1.7).
    Unavailable,
}

/// TLS trust and timeouts of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// A PEM bundle of private CAs trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification. Only by explicit opt-in; logged as a warning.
    pub insecure_tls: bool,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            ca_file: None,
            insecure_tls: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Builds a client: system roots (plus `ca_file`), HTTPS verification on unless opted out,
/// no cookie store (EM lets a cookie override the token header), no redirects to follow blindly.
pub fn client(s: &HttpSettings) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(s.connect_timeout)
        .timeout(s.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("reaper/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &s.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading the CA file {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("parsing the CA file {} as PEM", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if s.insecure_tls {
        tracing::warn!("TLS certificate verification is OFF for this endpoint (insecure_tls)");
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build().context("building the HTTP client")
}

/// One raw answer from a remote (EM, DCS, IAM): status, body, `Retry-After` and
/// `X-Request-Id`. Each client turns it into its own result or error.
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: String,
    pub retry_after: Option<Duration>,
    /// The answer's `X-Request-Id` (DCS and API gateways name each call with it).
    pub request_id: Option<String>,
}

/// Reads status, headers and body. A success whose body cannot be read is still a success:
/// its status is the answer (a DELETE answered 2xx is never sent again).
///
/// Cancel safety: dropping it loses the answer, as dropping the call would.
pub async fn read(resp: reqwest::Response) -> Result<Answer, Failure> {
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header(reqwest::header::RETRY_AFTER.as_str())
        .as_deref()
        .and_then(parse_retry_after);
    let request_id = header("X-Request-Id").filter(|r| !r.is_empty());
    let body = match resp.text().await {
        Ok(body) => body,
        Err(_) if status.is_success() => String::new(),
        Err(e) => return Err(Failure::of(&e)),
    };
    Ok(Answer {
        status,
        body,
        retry_after,
        request_id,
    })
}

/// A call that got no (whole) answer, described without URL query or headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// The endpoint does not answer (connect, DNS, TLS, timeout, reset): it is unavailable,
    /// not the request. Else the failure is transient.
    pub unavailable: bool,
    /// No answer within the timeout (an overload signal for the budget's controller).
    pub timed_out: bool,
}

impl Failure {
    pub fn of(e: &reqwest::Error) -> Self {
        Failure {
            message: describe(e),
            unavailable: is_unavailable(e),
            timed_out: e.is_timeout(),
        }
    }
}

/// The longest pause a `Retry-After` may impose (a misbehaving server cannot park a worker).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Parses `Retry-After`: delay-seconds or an HTTP date. A date in the past is zero; anything
/// longer than [`MAX_RETRY_AFTER`] is capped.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// Whether a transport error means the endpoint does not answer: a connect failure (refused,
/// DNS, TLS), a timeout, or a connection reset or closed under the call. Other failures
/// (an unreadable body, a bad redirect) are not the endpoint's absence.
pub fn is_unavailable(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::*;
    if e.is_connect() || e.is_timeout() || e.is_request() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | TimedOut
            )
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// A transport error as text: what failed, without the URL's query or any header.
pub fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    let mut msg = what.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(110) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
