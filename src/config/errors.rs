//! What configuration errors and warnings may say: every message names its key, and quotes a
//! value only when the key cannot hold a secret (design 2.9: secrets never appear in errors).

use super::Config;
use std::fmt;

/// A configuration error; its message names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

pub(super) fn err(key: &str, reason: impl fmt::Display) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// Whether an error may quote the value of `key`: never when the key may hold a secret (a
/// password, a token, a secret, or the AMQP URL, which carries the broker password). This
/// also covers `*_PASSWORD_FILE` and `*_TOKEN_FILE`: a secret pasted there by mistake is
/// not echoed either.
fn may_show(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    !["PASSWORD", "TOKEN", "SECRET", "AMQP_URL"]
        .iter()
        .any(|s| key.contains(s))
}

/// A value of `key` that cannot be used: `what` is wrong with it, and the parser's `cause`
/// (which may quote the value, so it is left out for a key that may hold a secret).
pub(super) fn bad_value(
    key: &str,
    value: &str,
    what: &str,
    cause: impl fmt::Display,
) -> ConfigError {
    if may_show(key) {
        err(key, format!("{} {what}: {cause}", shown(key, value)))
    } else {
        err(key, format!("{} {what}", shown(key, value)))
    }
}

/// The value of `key` as an error quotes it: in backticks (with any `user:password@` of a URL
/// masked), or not at all when the key may hold a secret.
pub(super) fn shown(key: &str, value: &str) -> String {
    if !may_show(key) {
        return "the value (not shown: it may be secret)".into();
    }
    let masked = value.split_once("://").and_then(|(scheme, rest)| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let (_, host) = authority.rsplit_once('@')?;
        let tail = rest.strip_prefix(authority).unwrap_or_default();
        Some(format!("{scheme}://***@{host}{tail}"))
    });
    format!("`{}`", masked.as_deref().unwrap_or(value))
}

impl Config {
    /// Settings that work but deserve an operator's attention, each naming its key (and its
    /// endpoint, when there are several of a kind): a plain `http://` endpoint URL sends
    /// credentials and tokens over the network unencrypted.
    pub fn warnings(&self) -> Vec<String> {
        let mut urls: Vec<(&str, &str, &str)> = Vec::new();
        let (several_em, several_dcs) = (self.em.len() > 1, self.dcs.len() > 1);
        for em in &self.em {
            let name = if several_em { em.name.as_str() } else { "" };
            urls.push(("REAPER_EM_URL", name, &em.url));
        }
        for dcs in &self.dcs {
            let name = if several_dcs { dcs.name.as_str() } else { "" };
            urls.push(("REAPER_DCS_URL", name, &dcs.url));
            if let super::DcsAuth::Iam { iam_url, .. } = &dcs.auth {
                urls.push(("REAPER_DCS_IAM_URL", name, iam_url));
            }
        }
        urls.into_iter()
            .filter(|(_, _, url)| url.starts_with("http://"))
            .map(|(key, name, url)| {
                let of = match name {
                    "" => String::new(),
                    name => format!(" of endpoint `{name}`"),
                };
                format!(
                    "{key}{of} is {}: plain http, so credentials and tokens cross the network \
                     unencrypted; use https:// outside a test setup",
                    shown(key, url)
                )
            })
            .collect()
    }
}
