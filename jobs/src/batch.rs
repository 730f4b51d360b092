//! What the send-email and deliver-webhook jobs share: a job's attempts run side by side, a
//! bounded number at once, while their outcomes are recorded in groups as they finish.

use std::future::Future;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

/// Runs `attempt` for every item, at most `concurrency` at once, and hands the outcomes to
/// `settle` in groups of up to `group`, in the order they finished. Recording a group does not
/// stall the attempts in flight (they hold the process's send slots).
///
/// Every attempt runs to its end even when recording fails: an abandoned attempt may have
/// reached its receiver already, and would be repeated when its lease ends. Returns the last
/// recording error.
pub(crate) async fn attempt_and_settle<'a, I, O, E, A, AF, S, SF>(
    items: &'a [I],
    concurrency: usize,
    group: usize,
    attempt: A,
    mut settle: S,
) -> Result<(), E>
where
    A: Fn(&'a I) -> AF,
    AF: Future<Output = O>,
    S: FnMut(Vec<O>) -> SF,
    SF: Future<Output = Result<(), E>>,
{
    let (finished, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let attempt_all = async {
        let mut waiting = items.iter();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < concurrency.max(1) {
                let Some(item) = waiting.next() else { break };
                running.push(attempt(item));
            }
            let Some(outcome) = running.next().await else {
                break;
            };
            // The receiver lives until every sender is gone.
            let _ = finished.send(outcome);
        }
        drop(finished);
    };
    let settle_all = async {
        let mut result = Ok(());
        let mut batch = Vec::with_capacity(group);
        while outcomes.recv_many(&mut batch, group).await > 0 {
            if let Err(e) = settle(std::mem::take(&mut batch)).await {
                result = Err(e);
            }
        }
        result
    };
    let ((), result) = tokio::join!(attempt_all, settle_all);
    result
}
