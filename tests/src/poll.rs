//! Waiting for background effects without sleeping blindly.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] polls.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// What a polled attempt returns: `Option<T>` (`None` = not yet), `Result<T, E>` (`Err` = not
/// yet; the last error is printed on timeout) or `bool` (`false` = not yet).
pub trait Attempt {
    /// The value [`eventually`] returns once ready.
    type Output;
    /// `Ok(value)` when ready, else `Err(why not, if known)`.
    fn into_ready(self) -> Result<Self::Output, Option<String>>;
}

impl<T> Attempt for Option<T> {
    type Output = T;
    fn into_ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Debug> Attempt for Result<T, E> {
    type Output = T;
    fn into_ready(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(format!("{e:?}")))
    }
}

impl Attempt for bool {
    type Output = ();
    fn into_ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

/// Runs `f` every 50 ms until it is ready (`Some`, `Ok` or `true`) and returns the value;
/// panics naming `what` (and the last error, for `Result`) after `timeout`. An attempt still
/// running at the deadline also panics.
pub async fn eventually<F, Fut, A>(what: &str, timeout: Duration, mut f: F) -> A::Output
where
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
    A: Attempt,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let last = match tokio::time::timeout_at(deadline, f()).await {
            Ok(attempt) => match attempt.into_ready() {
                Ok(value) => return value,
                Err(why) => why,
            },
            Err(_) => Some("the last attempt was still running at the deadline".to_owned()),
        };
        if tokio::time::Instant::now() >= deadline {
            match last {
                Some(why) => panic!(
                    "timed out after {timeout:?} ({attempts} attempts) waiting for {what}: {why}"
                ),
                None => {
                    panic!("timed out after {timeout:?} ({attempts} attempts) waiting for {what}")
                }
            }
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
