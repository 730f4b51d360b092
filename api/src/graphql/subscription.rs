//! Live activity subscriptions (SPEC §3.5, §6). Over the WebSocket each subscription runs twice
//! (see [`super::live`]): once for its subscriber, checking access and replaying `since`, and
//! once for the group of subscribers that share its document, resolving live events.

use async_graphql::{Context, ID, Result, Subscription};
use entity::entities::{companies, invitation_events, invitations};
use entity::finders::{Since, company_events_since};
use entity::scope::find_owned;
use futures::stream::{self, BoxStream, StreamExt};
use std::sync::atomic::Ordering;
use uuid::Uuid;

use super::context::{store, viewer};
use super::error::{GqlResult, bad_input, internal};
use super::ids::parse_id;
use super::live::LiveMode;
use super::object::InvitationEvent;
use super::plain::Plain;

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

type Events = BoxStream<'static, Result<Plain<InvitationEvent>>>;

#[Subscription]
impl Subscription {
    /// Events of one invitation as they are committed.
    async fn invitation_activity(&self, ctx: &Context<'_>, invitation_id: ID) -> Result<Events> {
        let org = viewer(ctx)?.organization_id;
        let id = parse_id("invitationId", &invitation_id)?;
        let store = store(ctx)?;
        find_owned::<invitations::Entity>(&store.db, org, id)
            .await
            .gql()?;
        match mode(ctx)? {
            LiveMode::Replay(_) => Ok(stream::empty().boxed()),
            LiveMode::Shared(feed) => shared(feed, move |e| e.invitation_id == id),
        }
    }

    /// Events of every invitation of a company, in cursor order. With `since` (the `cursor` of
    /// an earlier event, or an RFC 3339 timestamp) the logged events after it come first, then
    /// live events, with no gap and no duplicate, however writers' commits interleave.
    async fn company_activity(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        since: Option<String>,
    ) -> Result<Events> {
        let org = viewer(ctx)?.organization_id;
        let company: Uuid = parse_id("companyId", &company_id)?;
        let store = store(ctx)?;
        match mode(ctx)? {
            LiveMode::Replay(replayed) => {
                let since = since.as_deref().map(parse_since).transpose()?;
                find_owned::<companies::Entity>(&store.db, org, company)
                    .await
                    .gql()?;
                let replay = match since {
                    None => Vec::new(),
                    Some(since) => company_events_since(&store.db, org, company, since, MAX_REPLAY)
                        .await
                        .gql()?,
                };
                if let Some(last) = replay.iter().filter_map(|e| e.position).max() {
                    replayed.store(last, Ordering::Relaxed);
                }
                Ok(stream::iter(replay.into_iter().map(|e| Ok(Plain(InvitationEvent(e))))).boxed())
            }
            // `since` only chooses a subscriber's replay.
            LiveMode::Shared(feed) => {
                find_owned::<companies::Entity>(&store.db, org, company)
                    .await
                    .gql()?;
                shared(feed, move |e| {
                    e.company_id == company && e.organization_id == org
                })
            }
        }
    }
}

fn mode<'a>(ctx: &'a Context<'_>) -> Result<&'a LiveMode> {
    ctx.data::<LiveMode>().map_err(|e| internal(&e.message))
}

/// A group's live events: those that pass `keep`, as the group feeds them.
fn shared(
    feed: &super::live::SharedFeed,
    keep: impl Fn(&invitation_events::Model) -> bool + Send + Sync + 'static,
) -> Result<Events> {
    let events = feed
        .attach(Box::new(keep))
        .ok_or_else(|| internal(&"one live field per subscription"))?;
    Ok(stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        Some((Ok(Plain(InvitationEvent((*event).clone()))), events))
    })
    .boxed())
}
