//! Credentials: [`Secret`], a value whose `Debug` never shows it, and [`SecretSource`], where
//! a credential comes from — a value given once, or a file that is read again so that a
//! rotated secret is used without a restart (design 1.7). Nothing here ever puts a value into
//! a message: errors and logs name the file's path only.

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
}
