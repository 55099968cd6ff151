//! The ids of a delete request (design 1.2): the request id, EM GUIDs (with URN
//! normalisation by entity type) and safe URL path segments. A value of these types is safe to
//! put into a URL path: only ASCII, nothing that could change the URL's shape.

use serde::Serialize;
use std::fmt;

/// The idempotency key: 1–128 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 128 {
            return Err(format!(
                "request_id must be 1-128 characters, got {}",
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(format!(
                "request_id may only contain [A-Za-z0-9._:-], found {c:?}"
            ));
        }
        Ok(RequestId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An EM entity id: a bare, lower-case GUID (a `urn:veeam:<Type>:<guid>` of the right type is
/// normalised to its GUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Guid(String);

/// The EM entity type a GUID field names, as written in a URN (`urn:veeam:<Type>:<guid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    Job,
    Repository,
    ObjectInJob,
}

impl EntityType {
    /// The type as EM writes it in a URN.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Job => "Job",
            EntityType::Repository => "Repository",
            EntityType::ObjectInJob => "ObjectInJob",
        }
    }
}

impl Guid {
    /// A bare GUID in EM's form (36 characters, hyphenated; any case). No URN, no braces,
    /// no whitespace.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.is_ascii() {
            return Err(format!("`{}` is not ASCII", printable(s)));
        }
        uuid::Uuid::try_parse(s)
            .ok()
            .filter(|_| s.len() == 36)
            .map(|u| Guid(u.hyphenated().to_string()))
            .ok_or_else(|| format!("`{}` is not a GUID", printable(s)))
    }

    /// A bare GUID, or a URN `urn:veeam:<Type>:<guid>` whose `<Type>` is `kind` (the prefix
    /// `urn:veeam:` in any case, the type exactly as EM writes it). A URN of another type is
    /// refused: it names another kind of object than the field asks for.
    pub fn parse_as(s: &str, kind: EntityType) -> Result<Self, String> {
        if !s.is_ascii() {
            return Err(format!("`{}` is not ASCII", printable(s)));
        }
        let parts: Vec<&str> = s.splitn(4, ':').collect();
        let [urn, nid, found, guid] = parts[..] else {
            return Guid::parse(s);
        };
        let want = kind.as_str();
        if !urn.eq_ignore_ascii_case("urn") || !nid.eq_ignore_ascii_case("veeam") || found != want {
            return Err(format!(
                "`{}` is not a GUID nor a `urn:veeam:{want}:<guid>`",
                printable(s)
            ));
        }
        Guid::parse(guid)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An id placed as one URL path segment (EM task ids, DCS ids): 1–128 characters of
/// `[A-Za-z0-9._-]`, and not `.` or `..`. Anything that could change the URL's shape is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Segment(String);

impl Segment {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if s.is_empty() || s.len() > 128 || s == "." || s == ".." || !s.chars().all(ok_char) {
            return Err(format!(
                "`{}` is not a safe id (1-128 of [A-Za-z0-9._-], not . or ..)",
                printable(s)
            ));
        }
        Ok(Segment(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shows an untrusted string in an error without control characters, and not too long.
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}
