//! `/healthz` of a follow: healthy while its loop reports, its notification sockets are
//! connected (or reconnecting within a limit), and its audit store takes the run's heartbeat.

use std::time::Duration;

/// How long a follow may go without reporting (it reports every 10 s) before it is stuck.
const STUCK_AFTER: Duration = Duration::from_secs(30);
/// How long a notification socket may stay down (reconnecting with backoff) before the follow
/// is unhealthy: calls arriving meanwhile are only found by the next backfill.
const SOCKET_DOWN_LIMIT: Duration = Duration::from_secs(120);

/// A follow's health for `/healthz`, from what it last reported.
pub fn follow(
    ended: bool,
    since_report: Option<Duration>,
    socket_down_for: Option<Duration>,
    store_error: Option<&str>,
) -> Result<(), String> {
    if ended {
        return Err("the follow has ended".to_owned());
    }
    if let Some(age) = since_report.filter(|age| *age > STUCK_AFTER) {
        return Err(format!(
            "the follow has not reported for {}s",
            age.as_secs()
        ));
    }
    if let Some(down) = socket_down_for.filter(|down| *down > SOCKET_DOWN_LIMIT) {
        return Err(format!(
            "no notification socket has been connected for {}s",
            down.as_secs()
        ));
    }
    if let Some(error) = store_error {
        return Err(format!("the audit store is not writable: {error}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follow_is_healthy_while_it_reports_its_sockets_reconnect_and_its_store_takes_writes() {
        let secs = Duration::from_secs;
        assert_eq!(follow(false, None, Some(secs(5)), None), Ok(()));
        assert_eq!(follow(false, Some(secs(9)), None, None), Ok(()));
        // Reconnecting, within the limit.
        assert_eq!(follow(false, Some(secs(9)), Some(secs(60)), None), Ok(()));
        let unhealthy = [
            follow(true, Some(secs(1)), None, None),
            follow(false, Some(secs(31)), None, None),
            follow(false, Some(secs(1)), Some(secs(121)), None),
            follow(false, Some(secs(1)), None, Some("disk I/O error")),
        ];
        let reasons: Vec<String> = unhealthy.into_iter().map(Result::unwrap_err).collect();
        assert_eq!(
            reasons,
            [
                "the follow has ended",
                "the follow has not reported for 31s",
                "no notification socket has been connected for 121s",
                "the audit store is not writable: disk I/O error",
            ]
        );
    }
}
