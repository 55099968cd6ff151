//! Credentials: [`Secret`], a value whose `Debug` never shows it, and [`SecretSource`], where
//! a credential comes from — a value given once, or a file that is read again so that a
//! rotated secret is used without a restart (design 1.7) — and the one rule for reading a
//! credential from `KEY` or `KEY_FILE`, shared by the configuration and the simulator. Nothing
//! here ever puts a value into a message: logs name a file's path only, errors not even that.

use super::errors::{ConfigError, err, shown};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A credential. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How long a value read from a file is used before the file is looked at again: a changed
/// file is noticed within this time by the next caller.
pub const FILE_RECHECK: Duration = Duration::from_secs(2);

/// Where a credential comes from: a value given once (`REAPER_EM_PASSWORD`), or a file
/// (`REAPER_EM_PASSWORD_FILE`) read again when a caller asks after [`FILE_RECHECK`], and at
/// once by [`SecretSource::reload`] (when the remote refused the value). Cheap to clone:
/// clones share the value last read.
#[derive(Clone)]
pub struct SecretSource {
    inner: Arc<Inner>,
}

struct Inner {
    file: Option<PathBuf>,
    cached: Mutex<Cached>,
}

struct Cached {
    value: Secret,
    read_at: Instant,
    /// Whether the last re-read failed (warned once per failing streak).
    failing: bool,
}

impl SecretSource {
    /// A value given once: it never changes.
    pub fn value(secret: Secret) -> Self {
        Self::with(None, secret)
    }

    /// A file, read now (a file that cannot be read is an error naming its path).
    pub fn file(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        let value = read_secret(&path)?;
        Ok(Self::with(Some(path), value))
    }

    fn with(file: Option<PathBuf>, value: Secret) -> Self {
        SecretSource {
            inner: Arc::new(Inner {
                file,
                cached: Mutex::new(Cached {
                    value,
                    read_at: Instant::now(),
                    failing: false,
                }),
            }),
        }
    }

    /// The file the value comes from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.file.as_deref()
    }

    /// The value now: a file's content as last read, read again when that is older than
    /// [`FILE_RECHECK`].
    pub fn current(&self) -> Secret {
        let stale = {
            let c = self.lock();
            self.inner.file.is_some() && c.read_at.elapsed() >= FILE_RECHECK
        };
        if stale {
            self.reload();
        }
        self.lock().value.clone()
    }

    /// Reads the file again now. Returns whether the value changed. A value given once never
    /// changes; a file that cannot be read, or is empty (being rewritten), keeps the last value
    /// (logged once, with its path only).
    pub fn reload(&self) -> bool {
        let Some(path) = &self.inner.file else {
            return false;
        };
        let read = read_secret(path);
        let mut c = self.lock();
        c.read_at = Instant::now();
        match read {
            Ok(v) if !v.expose().is_empty() => {
                c.failing = false;
                let changed = v != c.value;
                c.value = v;
                changed
            }
            Ok(_) => false,
            Err(e) => {
                if !c.failing {
                    tracing::warn!(path = %path.display(), error = %e,
                        "cannot read the secret file again; keeping the value read before");
                }
                c.failing = true;
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.inner.cached.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl From<Secret> for SecretSource {
    fn from(secret: Secret) -> Self {
        SecretSource::value(secret)
    }
}

/// Two sources are equal when they read the same file, or hold the same given value.
impl PartialEq for SecretSource {
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner.file, &other.inner.file) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.lock().value == other.lock().value,
            _ => false,
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.file {
            Some(p) => write!(f, "SecretSource(file {})", p.display()),
            None => f.write_str("SecretSource(***)"),
        }
    }
}

/// A credential from `KEY` or from the file named by `KEY_FILE` (not both), as `lookup` finds
/// them; a blank value counts as unset. A file is read now (so a missing one is an error) and
/// kept as its path, to be read again later. Errors name the keys, never a value or a path.
pub fn secret_from(
    key: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<SecretSource>, ConfigError> {
    let file_key = format!("{key}_FILE");
    let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    match (get(key), get(&file_key)) {
        (Some(_), Some(_)) => Err(err(key, format!("set {key} or {file_key}, not both"))),
        (Some(v), None) => Ok(Some(SecretSource::value(Secret::new(v)))),
        (None, Some(path)) => SecretSource::file(path.trim()).map(Some).map_err(|e| {
            let e = e.kind(); // the kind only: an OS message may quote the path
            err(
                &file_key,
                format!("cannot read {}: {e}", shown(&file_key, &path)),
            )
        }),
        (None, None) => Ok(None),
    }
}

/// [`secret_from`] the process environment (the simulator's credentials).
pub fn env_secret(key: &str) -> Result<Option<SecretSource>, ConfigError> {
    secret_from(key, |k| std::env::var(k).ok())
}

/// A secret file's content without its trailing line break.
fn read_secret(path: &Path) -> std::io::Result<Secret> {
    let text = std::fs::read_to_string(path)?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_again_when_asked_and_after_the_recheck_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "first\n").unwrap();
        let s = SecretSource::file(&path).unwrap();
        assert_eq!(s.current().expose(), "first");
        std::fs::write(&path, "second\n").unwrap();
        assert_eq!(s.current().expose(), "first", "not before the recheck time");
        let clone = s.clone();
        assert!(clone.reload(), "a changed file is noticed");
        assert_eq!(s.current().expose(), "second", "clones share the value");
        assert!(!s.reload(), "unchanged");
        std::fs::write(&path, "").unwrap();
        assert!(
            !s.reload(),
            "an empty file (being rewritten) keeps the value"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(!s.reload());
        assert_eq!(
            s.current().expose(),
            "second",
            "an unreadable file keeps it too"
        );
        assert_eq!(
            format!("{s:?}"),
            format!("SecretSource(file {})", path.display())
        );
    }

    #[test]
    fn a_given_value_never_changes_and_never_shows() {
        let s = SecretSource::from(Secret::new("hunter2"));
        assert!(!s.reload());
        assert_eq!(s.current().expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s, SecretSource::value(Secret::new("hunter2")));
        assert_ne!(s, SecretSource::value(Secret::new("other")));
    }

    #[test]
    fn key_or_key_file_is_one_rule_whose_errors_show_no_value_and_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\r\n").unwrap();
        let file = file.to_str().unwrap().to_string();
        let read = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            secret_from("X_PASSWORD", move |k| {
                pairs
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            })
        };
        assert!(read(&[]).unwrap().is_none());
        assert!(
            read(&[("X_PASSWORD", " ")]).unwrap().is_none(),
            "blank is unset"
        );
        let v = read(&[("X_PASSWORD", "given")]).unwrap().unwrap();
        assert_eq!((v.current().expose(), v.path()), ("given", None));
        let f = read(&[("X_PASSWORD_FILE", &file)]).unwrap().unwrap();
        assert_eq!(f.current().expose(), "from-file", "line break dropped");
        let both = read(&[("X_PASSWORD", "given"), ("X_PASSWORD_FILE", &file)]).unwrap_err();
        assert_eq!(both.key, "X_PASSWORD");
        let secret_as_path = "hunter2-Zq9";
        let e = read(&[("X_PASSWORD_FILE", secret_as_path)]).unwrap_err();
        assert_eq!(e.key, "X_PASSWORD_FILE");
        assert!(!e.to_string().contains(secret_as_path), "{e}");
        let missing = dir.path().join("missing-dir").join("pw");
        let e = read(&[("X_PASSWORD_FILE", missing.to_str().unwrap())]).unwrap_err();
        assert!(!e.to_string().contains("missing-dir"), "{e}");
    }
}
