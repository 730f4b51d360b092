//! Live activity subscriptions (SPEC §3.5, §6).

use async_graphql::{Context, ID, Result, Subscription};
use entity::entities::{companies, invitation_events, invitations};
use entity::finders::{Since, company_events_since};
use entity::scope::find_owned;
use futures::Stream;
use futures::stream::{self, StreamExt};
use jobs::metrics::Metrics;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::context::{state, viewer};
use super::error::{GqlResult, bad_input, with_code};
use super::ids::parse_id;
use super::object::InvitationEvent;

/// Most events replayed for one `since` (a client further behind pages with `invitation.events`).
const MAX_REPLAY: u64 = 10_000;

#[derive(Default)]
pub struct Subscription;

fn parse_since(raw: &str) -> Result<Since> {
    if let Ok(id) = raw.parse::<i64>() {
        return Ok(Since::Cursor(id));
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| Since::Time(t.with_timezone(&chrono::Utc)))
        .map_err(|_| bad_input("since", "an event cursor or an RFC 3339 timestamp"))
}

#[Subscription]
impl Subscription {
    /// Events of one invitation as they are committed.
    async fn invitation_activity(
        &self,
        ctx: &Context<'_>,
        invitation_id: ID,
    ) -> Result<impl Stream<Item = Result<InvitationEvent>>> {
        let org = viewer(ctx)?.organization_id;
        let id = parse_id("invitationId", &invitation_id)?;
        let state = state(ctx)?;
        find_owned::<invitations::Entity>(&state.db, org, id)
            .await
            .gql()?;
        Ok(live_stream(
            Watch::new(state.events.subscribe(), &state.metrics),
            Vec::new(),
            move |e| e.invitation_id == id,
        ))
    }

    /// Events of every invitation of a company, in cursor order. With `since` (the `cursor` of
    /// an earlier event, or an RFC 3339 timestamp) the logged events after it come first, then
    /// live events, with no gap and no duplicate, however writers' commits interleave.
    async fn company_activity(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        since: Option<String>,
    ) -> Result<impl Stream<Item = Result<InvitationEvent>>> {
        let org = viewer(ctx)?.organization_id;
        let company: Uuid = parse_id("companyId", &company_id)?;
        let since = since.as_deref().map(parse_since).transpose()?;
        let state = state(ctx)?;
        find_owned::<companies::Entity>(&state.db, org, company)
            .await
            .gql()?;
        let live = Watch::new(state.events.subscribe(), &state.metrics);
        let replay = match since {
            None => Vec::new(),
            Some(since) => company_events_since(&state.db, org, company, since, MAX_REPLAY)
                .await
                .gql()?,
        };
        Ok(live_stream(live, replay, move |e| {
            e.company_id == company && e.organization_id == org
        }))
    }
}

/// A live subscriber: its receiver, counted in the subscriber gauge while it exists.
struct Watch {
    rx: tokio::sync::broadcast::Receiver<crate::events::Event>,
    metrics: Arc<Metrics>,
}

impl Watch {
    fn new(
        rx: tokio::sync::broadcast::Receiver<crate::events::Event>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        metrics.live_subscribers.inc();
        Self {
            rx,
            metrics: metrics.clone(),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.metrics.live_subscribers.dec();
    }
}

/// Replay first, then live events that pass `keep` and were not replayed. A subscriber that
/// falls behind the buffer gets one `SUBSCRIBER_LAGGED` error and the stream ends; it
/// resubscribes with `since` and loses nothing.
fn live_stream(
    live: Watch,
    replay: Vec<invitation_events::Model>,
    keep: impl Fn(&invitation_events::Model) -> bool + Send + Sync + 'static,
) -> impl Stream<Item = Result<InvitationEvent>> {
    let seen: std::collections::HashSet<i64> = replay.iter().map(|e| e.id).collect();
    let replayed = stream::iter(replay.into_iter().map(|e| Ok(InvitationEvent(e))));
    let live = stream::unfold(Some((live, keep, seen)), |st| async move {
        let (mut watch, keep, seen) = st?;
        loop {
            match watch.rx.recv().await {
                Ok(e) if keep(&e) && !seen.contains(&e.id) => {
                    watch.metrics.live_events_relayed.inc();
                    return Some((Ok(InvitationEvent((*e).clone())), Some((watch, keep, seen))));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    watch.metrics.live_lagged.inc();
                    let error = with_code(
                        format!(
                            "subscriber fell {n} events behind; resubscribe with `since` set to the last cursor received"
                        ),
                        "SUBSCRIBER_LAGGED",
                    );
                    return Some((Err(error), None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    replayed.chain(live)
}
