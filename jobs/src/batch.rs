//! What the send-email and deliver-webhook jobs share: a job's attempts run side by side, a
//! bounded number at once, while their outcomes are recorded in groups as they finish.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

/// How long a group of outcomes waits for more before it is recorded anyway. Every group is a
/// unit of work (an update, the activity events, a commit, a sequencer run on PostgreSQL), and
/// that cost is mostly per group, not per row: taking whatever had finished at each turn made
/// groups of 3 to 8 when sends are fast, and the database then spent as much CPU per message as
/// the sending did. Short against the send lease and a reader's patience; when sends are slow, a
/// group is whatever finished in this time.
const LINGER: Duration = Duration::from_millis(25);

/// Runs `attempt` for every item and hands the outcomes to `settle` in groups of up to `group`,
/// in the order they finished; a group is recorded once it is full, once [`LINGER`] has passed
/// since its first outcome, or when the last attempt has ended. Recording a group does not stall
/// the attempts in flight (they hold the process's send slots).
///
/// Every attempt starts at once and queues at the process's gate (`SendGate`), whose slots are
/// handed out in the order they were asked for: so the gate serves the jobs of a process one
/// after the other, in the order they started, and the oldest job ends first and frees its
/// worker slot for the next job while the younger ones keep the connections busy. (Bounding
/// each job's attempts instead interleaves the jobs: they all end at about the same moment, and
/// the connections stand idle until the next jobs are fetched.)
///
/// Every attempt runs to its end even when recording fails: an abandoned attempt may have
/// reached its receiver already, and would be repeated when its lease ends. Returns the last
/// recording error.
pub(crate) async fn attempt_and_settle<'a, I, O, E, A, AF, S, SF>(
    items: &'a [I],
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
        let mut running: FuturesUnordered<_> = items.iter().map(attempt).collect();
        while let Some(outcome) = running.next().await {
            // The receiver lives until every sender is gone.
            let _ = finished.send(outcome);
        }
        drop(finished);
    };
    let settle_all = async {
        let mut result = Ok(());
        let mut batch = Vec::with_capacity(group);
        while outcomes.recv_many(&mut batch, group).await > 0 {
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < group {
                let room = group - batch.len();
                let more = outcomes.recv_many(&mut batch, room);
                // Nothing more within the linger, or every attempt has ended.
                if !matches!(tokio::time::timeout_at(deadline, more).await, Ok(n) if n > 0) {
                    break;
                }
            }
            if let Err(e) = settle(std::mem::take(&mut batch)).await {
                result = Err(e);
            }
        }
        result
    };
    let ((), result) = tokio::join!(attempt_all, settle_all);
    result
}
