//! HTTP edges of the simulated EM: `Accept` negotiation, the session token (cookie wins
//! over header), Basic credentials, and building answers with EM's Error bodies. Knows
//! nothing of sessions or resources.

use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, COOKIE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::em::codec::{Format, encode_error};

/// The header (and cookie) that carries the session token.
pub(crate) const SESSION_HEADER: &str = "X-RestSvcSessionId";

/// An `Accept` that names both XML and JSON (EM answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MixedAccept;

/// The answer format asked for by `Accept`: JSON only when JSON alone is named.
pub(crate) fn negotiate(headers: &HeaderMap) -> Result<Format, MixedAccept> {
    let (mut xml, mut json) = (false, false);
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let media = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            json |= media.ends_with("json");
            xml |= media.ends_with("xml");
        }
    }
    match (xml, json) {
        (true, true) => Err(MixedAccept),
        (false, true) => Ok(Format::Json),
        _ => Ok(Format::Xml),
    }
}

/// The session token of a request: the cookie when there is one (EM's real precedence),
/// else the header.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<String> {
    let from_cookie = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_HEADER)
        .map(|(_, value)| value.trim().to_string());
    from_cookie
        .or_else(|| {
            headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        })
        .filter(|t| !t.is_empty())
}

/// The `user:password` pair of a Basic `Authorization` header.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// A fresh token: base64 of a random GUID string (like EM's; not the session GUID).
pub(crate) fn new_token() -> String {
    STANDARD.encode(uuid::Uuid::new_v4().to_string())
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An answer with a body in `format`.
pub(crate) fn body(format: Format, code: u16, body: String) -> Response {
    let media = HeaderValue::from_static(format.media_type());
    (status(code), [(CONTENT_TYPE, media)], body).into_response()
}

/// An answer with EM's Error body.
pub(crate) fn error(format: Format, code: u16, message: &str) -> Response {
    body(format, code, encode_error(format, code, message))
}

/// 503 (EM's only back-pressure signal) or 429 (a gateway's), with `Retry-After: 1`.
pub(crate) fn throttled(format: Format, status: u16) -> Response {
    let status = if status == 429 { 429 } else { 503 };
    let mut r = error(
        format,
        status,
        "The service is temporarily unable to handle the request. Retry later.",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// 502 from the reverse proxy in front of EM: an HTML page, not an EM Error body.
pub(crate) fn bad_gateway() -> Response {
    let html = "<html><head><title>502 Bad Gateway</title></head>\
                <body><h1>502 Bad Gateway</h1></body></html>";
    let media = HeaderValue::from_static("text/html");
    (StatusCode::BAD_GATEWAY, [(CONTENT_TYPE, media)], html).into_response()
}

/// 204 No Content.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_negotiation_follows_em() {
        type Case = (
            &'static [(&'static str, &'static str)],
            Result<Format, MixedAccept>,
        );
        let cases: &[Case] = &[
            (&[], Ok(Format::Xml)),
            (&[("accept", "*/*")], Ok(Format::Xml)),
            (&[("accept", "application/xml")], Ok(Format::Xml)),
            (&[("accept", "application/json")], Ok(Format::Json)),
            (
                &[("accept", "application/json; charset=utf-8")],
                Ok(Format::Json),
            ),
            (
                &[("accept", "application/xml, application/json")],
                Err(MixedAccept),
            ),
            (
                &[
                    ("accept", "application/xml"),
                    ("accept", "application/json"),
                ],
                Err(MixedAccept),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(negotiate(&headers(h)), *want, "{h:?}");
        }
    }

    #[test]
    fn the_cookie_wins_over_the_header() {
        let h = headers(&[
            ("x-restsvcsessionid", "from-header"),
            ("cookie", "a=b; X-RestSvcSessionId=from-cookie"),
        ]);
        assert_eq!(session_token(&h).as_deref(), Some("from-cookie"));
        let h = headers(&[("X-RESTSVCSESSIONID", "from-header")]);
        assert_eq!(session_token(&h).as_deref(), Some("from-header"));
        assert_eq!(session_token(&HeaderMap::new()), None);
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "reaper:s3:cret"
        let h = headers(&[("authorization", "Basic cmVhcGVyOnMzOmNyZXQ=")]);
        assert_eq!(
            basic_credentials(&h),
            Some(("reaper".into(), "s3:cret".into()))
        );
        assert_eq!(
            basic_credentials(&headers(&[("authorization", "Bearer x")])),
            None
        );
    }
}
