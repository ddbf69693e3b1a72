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

/// This process's start time, in clock ticks since boot. With the pid it names this process and
/// no later one that reuses the pid (in a container every first process is pid 1).
pub fn current_start_time() -> Option<i64> {
    start_time_of("self")
}

/// Field 22 (`starttime`) of `/proc/<which>/stat`; `None` where there is no /proc.
fn start_time_of(which: &str) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{which}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process recorded as (`host`, `pid`, `start_time`) is gone: `Some` on the same
/// host, where /proc answers (no such pid, or the pid now belongs to a process that started at
/// another time); `None` for another host, where only a heartbeat can tell.
pub fn process_is_gone(host: &str, pid: u32, start_time: Option<i64>) -> Option<bool> {
    if host != current_host() {
        return None;
    }
    if !pid_is_alive(pid)? {
        return Some(true);
    }
    let now = start_time_of(&pid.to_string());
    Some(matches!((start_time, now), (Some(then), Some(now)) if then != now))
}

/// Whether a holder recorded as (`host`, `pid`) is known to be gone: same host and no such process.
pub fn holder_is_gone(host: &str, pid: u32) -> bool {
    host == current_host() && pid_is_alive(pid) == Some(false)
}
