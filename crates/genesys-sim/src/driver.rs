//! The task that makes timed work happen when no request does (writes becoming visible,
//! arrivals, call ends, event deliveries, channel expiry): it sleeps until the next piece is due,
//! or until something new is scheduled or the clock moves. With a frozen clock it only waits for
//! [`SimState::advance_clock`].

use tokio::sync::watch;

use crate::state::SimState;

pub(crate) async fn run(state: SimState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let wait = state.run_due();
        let due = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = due => {}
            () = state.woken() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
