//! What Linux's `/proc` says about a process's CPU time and memory, for `reaper bench`: this
//! process's (`/proc/self`) or a child worker's (`/proc/<pid>`). Reads only; zero where
//! `/proc` is not there (the figures are then meaningless, and the bench says nothing more).

use std::sync::OnceLock;

/// A process's CPU time so far and its memory now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Resident memory now (`VmRSS`), MiB.
    pub rss_mib: f64,
    /// Peak resident memory (`VmHWM`), MiB.
    pub peak_mib: f64,
}

/// The usage of process `pid`, or of this process when `None`.
pub fn usage(pid: Option<u32>) -> Usage {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
    Usage {
        cpu_seconds: cpu_ticks(&stat) / clock_ticks(),
        rss_mib: status_kib(&status, "VmRSS:") / 1024.0,
        peak_mib: status_kib(&status, "VmHWM:") / 1024.0,
    }
}

/// `utime + stime` (fields 14 and 15 of `/proc/<pid>/stat`), in clock ticks. The fields are
/// counted after the command name's closing `)`, since the name may hold spaces.
fn cpu_ticks(stat: &str) -> f64 {
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    field(11) + field(12) // the third field (state) is at 0
}

/// A `kB` line of `/proc/<pid>/status`, e.g. `VmRSS:`.
fn status_kib(status: &str, name: &str) -> f64 {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Clock ticks a second (`getconf CLK_TCK`, asked once: `sysconf` needs `unsafe`), else the
/// usual 100.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name_even_with_spaces_in_it() {
        let stat = "4242 (reaper (run) x) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 30 0 0 20 0";
        assert_eq!(cpu_ticks(stat), 180.0);
        assert_eq!(cpu_ticks(""), 0.0);
    }

    #[test]
    fn memory_lines_are_read_in_kib() {
        let status = "Name:\treaper\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), 102400.0);
        assert_eq!(status_kib(status, "VmHWM:"), 204800.0);
        assert_eq!(status_kib(status, "VmSwap:"), 0.0);
    }

    #[test]
    fn this_process_uses_some_memory() {
        if std::path::Path::new("/proc/self/status").exists() {
            let u = usage(None);
            assert!(u.rss_mib > 0.0 && u.peak_mib >= u.rss_mib, "{u:?}");
        }
    }
}
