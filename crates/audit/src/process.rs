//! Who is running: host name and pid, recorded with runs and locks so that a later process can
//! tell a crashed holder from a live one. Nothing here reads configuration or secrets.

use std::sync::OnceLock;

/// The host name, read once. Linux exposes it under /proc; elsewhere the heartbeat alone decides
/// staleness, so an unknown host is harmless.
pub fn current_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .map(|name| name.trim().to_owned())
            .find(|name| !name.is_empty())
            .unwrap_or_else(|| "unknown-host".to_owned())
    })
}

pub fn current_pid() -> u32 {
    std::process::id()
}

/// Whether a process with this pid exists on this host; `None` when the platform cannot tell
/// without unsafe code, in which case callers fall back to heartbeats.
pub fn pid_is_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(std::path::Path::new(&format!("/proc/{pid}")).exists())
    } else {
        None
    }
}

/// Whether a holder recorded as (`host`, `pid`) is known to be gone: same host and no such process.
pub fn holder_is_gone(host: &str, pid: u32) -> bool {
    host == current_host() && pid_is_alive(pid) == Some(false)
}
