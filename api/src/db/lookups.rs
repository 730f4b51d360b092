//! Lookups by id on PostgreSQL, coalesced: the commonest read there is (`invitation(id)`,
//! `company(id)`, …, and the REST detail) costs one statement per batch of concurrent lookups
//! instead of one per lookup.
//!
//! A lookup joins its entity's queue. While no statement of that entity is running
//! ([`RUNNING_AT_MOST`]), it starts one at once with whatever is queued (itself, at least), so an
//! idle server answers a lookup exactly as before; under load the lookups that arrive while the
//! statement runs wait for the next one and go together, up to [`BATCH_AT_MOST`] per
//! statement. Each statement is one round trip and one execution in PostgreSQL for the whole
//! batch, where every lookup used to cost both: the loopback send and the backend's wake-up
//! were the largest parts of a point lookup's profile.
//!
//! Tenant scoping is kept in SQL: the statement takes (organization, id) pairs and returns a
//! row only for the pair that names its organization
//! ([`entity::scope::find_owned_many_sql`]); a lookup of another organization's id finds
//! nothing, as alone. The statements run on their own task, so a request that goes away does
//! not abandon the others of its batch.
//!
//! A batch is sent as the statement for the next of [`SIZES`] up, padded with pairs that match
//! nothing: a handful of statement texts per entity, each prepared once per connection and run
//! on its generic plan, so PostgreSQL does not plan a lookup statement again on every execution
//! (it did while the pairs were two arrays: 70 to 100 µs of planning for 30 µs of running,
//! which made PostgreSQL's share of a point lookup more than twice pgbench's for the same row).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use entity::DomainError;
use entity::entities::{companies, connections, invitations, webhook_endpoints};
use entity::rows::column_at;
use entity::scope::{Owned, find_owned_many_sql};
use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::{self, Row};
use sea_orm::{DbErr, FromQueryResult, IdenStatic, QueryResult};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::reads::Held;

/// Statements of one entity's lookups running at once. One: the lookups that arrive while it
/// runs all go together in the next, so batches grow with the load and the round trips and
/// backend wake-ups per lookup fall. In two runs of the read benchmark one statement in flight
/// answered 1.32× and 1.44× the lookups per second that two did, with a lower median latency
/// and about the same p99; an idle server still starts a lookup's statement at once. Unless
/// more than [`BATCH_AT_MOST`] queue ahead of it, a lookup waits at most for the statement in
/// flight and its own.
const RUNNING_AT_MOST: usize = 1;

/// The statement sizes, in pairs: a batch takes the smallest that holds it. Doubling keeps the
/// padding under half a statement and the texts few.
const SIZES: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// Pairs one statement looks up at most, so a burst is answered in several statements
/// rather than one statement holding a connection for a long time.
const BATCH_AT_MOST: usize = SIZES[SIZES.len() - 1];

type Key = (Uuid, Uuid);
type Answer<M> = Result<Option<M>, Arc<DbErr>>;

struct Wanted<M> {
    key: Key,
    answer: oneshot::Sender<Answer<M>>,
}

struct Queue<M> {
    waiting: Vec<Wanted<M>>,
    running: usize,
}

/// The queue and statements of one entity's lookups.
pub struct Lookups<M> {
    /// The statement of each of [`SIZES`].
    sql: [Arc<str>; SIZES.len()],
    queue: Mutex<Queue<M>>,
}

impl<M> Lookups<M> {
    fn new<E: Owned>() -> Self {
        Self {
            sql: SIZES.map(find_owned_many_sql::<E>),
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                running: 0,
            }),
        }
    }

    /// Queues `wanted`; returns the batch to run now when a statement may start.
    fn join(&self, wanted: Wanted<M>) -> Option<Vec<Wanted<M>>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.waiting.push(wanted);
        if queue.running < RUNNING_AT_MOST {
            queue.running += 1;
            Some(take(&mut queue.waiting))
        } else {
            None
        }
    }

    /// The next batch for a statement that ended, or `None` (and one statement fewer running)
    /// when nothing waits.
    fn next(&self) -> Option<Vec<Wanted<M>>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.waiting.is_empty() {
            queue.running -= 1;
            None
        } else {
            Some(take(&mut queue.waiting))
        }
    }
}

/// The oldest [`BATCH_AT_MOST`] of `waiting`.
fn take<M>(waiting: &mut Vec<Wanted<M>>) -> Vec<Wanted<M>> {
    if waiting.len() <= BATCH_AT_MOST {
        std::mem::take(waiting)
    } else {
        waiting.drain(..BATCH_AT_MOST).collect()
    }
}

/// The distinct pairs of `keys` (at most [`BATCH_AT_MOST`]), padded to the size of the statement
/// that answers them with the nil pair (no organization or object has the nil id, so it finds
/// nothing), and that statement's index in [`SIZES`].
fn sized(keys: impl Iterator<Item = Key>) -> (usize, Vec<Key>) {
    let mut pairs: Vec<Key> = Vec::new();
    for key in keys {
        if !pairs.contains(&key) {
            pairs.push(key);
        }
    }
    // `take` hands out at most the largest size.
    debug_assert!(pairs.len() <= BATCH_AT_MOST, "{} pairs", pairs.len());
    let size = SIZES
        .partition_point(|&size| size < pairs.len())
        .min(SIZES.len() - 1);
    pairs.resize(SIZES[size], (Uuid::nil(), Uuid::nil()));
    (size, pairs)
}

/// Every entity whose lookups are coalesced.
pub struct AllLookups {
    invitations: Lookups<invitations::Model>,
    companies: Lookups<companies::Model>,
    connections: Lookups<connections::Model>,
    webhook_endpoints: Lookups<webhook_endpoints::Model>,
}

impl AllLookups {
    pub(super) fn new() -> Self {
        Self {
            invitations: Lookups::new::<invitations::Entity>(),
            companies: Lookups::new::<companies::Entity>(),
            connections: Lookups::new::<connections::Entity>(),
            webhook_endpoints: Lookups::new::<webhook_endpoints::Entity>(),
        }
    }
}

/// An entity looked up by id through [`crate::db::Reads::find_owned`].
pub trait Coalesced: Owned<Model: Clone + Send + Sync + 'static> {
    #[doc(hidden)]
    fn lookups(all: &AllLookups) -> &Lookups<Self::Model>;

    /// The models of a batch's rows; by name through sea-orm unless the model reads rows by
    /// position (`entity::rows`).
    #[doc(hidden)]
    fn decode(rows: Vec<PgRow>) -> Result<Vec<Self::Model>, DbErr> {
        rows.into_iter()
            .map(|row| Self::Model::from_query_result(&QueryResult::from(row), ""))
            .collect()
    }
}

macro_rules! coalesced {
    ($($module:ident),*) => {$(
        impl Coalesced for $module::Entity {
            fn lookups(all: &AllLookups) -> &Lookups<Self::Model> {
                &all.$module
            }
        }
    )*};
}

coalesced!(companies, connections, webhook_endpoints);

/// Invitations, the point lookup of the read path, read their rows by position.
impl Coalesced for invitations::Entity {
    fn lookups(all: &AllLookups) -> &Lookups<Self::Model> {
        &all.invitations
    }

    fn decode(rows: Vec<PgRow>) -> Result<Vec<Self::Model>, DbErr> {
        entity::rows::decode_pg(&rows)
    }
}

impl Held {
    /// `E`'s object `id` of organization `org`, looked up together with the lookups of `E`
    /// that arrive while others run.
    pub(super) async fn lookup<E: Coalesced>(
        self: &Arc<Self>,
        org: Uuid,
        id: Uuid,
    ) -> Result<E::Model, DomainError> {
        let (answer, answered) = oneshot::channel();
        let wanted = Wanted {
            key: (org, id),
            answer,
        };
        if let Some(batch) = E::lookups(&self.lookups).join(wanted) {
            // Boxed: the statement's future (pool, sqlx, decoding) is about 15 KB, and a task
            // holding it unboxed had it copied through every layer of `spawn` and again each
            // time the task changed stage (callgrind: over a third of a point lookup's
            // instructions were such copies).
            tokio::spawn(Box::pin(self.clone().run::<E>(batch)));
        }
        match answered.await {
            Ok(Ok(Some(model))) => Ok(model),
            Ok(Ok(None)) => Err(DomainError::NotFound),
            // The last of a failed batch to look gets the error itself, the others its text.
            Ok(Err(error)) => Err(DomainError::Db(
                Arc::try_unwrap(error).unwrap_or_else(|e| DbErr::Custom(e.to_string())),
            )),
            // Only a panic in the statement's task drops an answer unsent.
            Err(_) => Err(DomainError::Db(DbErr::Custom(
                "a coalesced lookup ended without an answer".to_owned(),
            ))),
        }
    }

    /// Runs batches of `E`'s lookups until none waits.
    async fn run<E: Coalesced>(self: Arc<Self>, mut batch: Vec<Wanted<E::Model>>) {
        let lookups = E::lookups(&self.lookups);
        loop {
            match self.fetch::<E>(&lookups.sql, &batch).await {
                Ok(found) => {
                    for wanted in batch {
                        let _ = wanted.answer.send(Ok(found.get(&wanted.key).cloned()));
                    }
                }
                Err(error) => {
                    let error = Arc::new(error);
                    for wanted in batch {
                        let _ = wanted.answer.send(Err(error.clone()));
                    }
                }
            }
            match lookups.next() {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    /// One statement for the distinct pairs of `batch` (the same object asked for twice is read
    /// once), its rows by pair.
    async fn fetch<E: Coalesced>(
        &self,
        sql: &[Arc<str>; SIZES.len()],
        batch: &[Wanted<E::Model>],
    ) -> Result<HashMap<Key, E::Model>, DbErr> {
        let (size, pairs) = sized(batch.iter().map(|wanted| wanted.key));
        let rows = self
            .with_connection(async |c| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(&*sql[size]));
                for (org, id) in &pairs {
                    query = query.bind(org).bind(id);
                }
                query.fetch_all(&mut **c).await
            })
            .await?;
        // The key columns are found by name once per result set, not once per row.
        let Some(first) = rows.first() else {
            return Ok(HashMap::new());
        };
        let org_at = column_at(first, E::organization_column().as_str())?;
        let id_at = column_at(first, E::id_column().as_str())?;
        let keys = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(org_at)
                        .map_err(|e| DbErr::Type(e.to_string()))?,
                    row.try_get(id_at).map_err(|e| DbErr::Type(e.to_string()))?,
                ))
            })
            .collect::<Result<Vec<Key>, DbErr>>()?;
        Ok(keys.into_iter().zip(E::decode(rows)?).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_the_next_size_up_padded_with_nil_pairs() {
        let pair = |n: u128| (Uuid::from_u128(1), Uuid::from_u128(n));
        let nil = (Uuid::nil(), Uuid::nil());
        assert_eq!(sized([pair(1)].into_iter()), (0, vec![pair(1)]));
        // The same object asked for twice is one pair.
        assert_eq!(
            sized([pair(1), pair(2), pair(1), pair(3)].into_iter()),
            (2, vec![pair(1), pair(2), pair(3), nil])
        );
        let (size, pairs) = sized((1..=5).map(pair));
        assert_eq!((size, pairs.len()), (3, 8));
        assert_eq!(pairs[5..], [nil; 3]);
        let (size, pairs) = sized((1..=BATCH_AT_MOST as u128).map(pair));
        assert_eq!((size, pairs.len()), (SIZES.len() - 1, BATCH_AT_MOST));
    }

    #[test]
    fn a_statement_binds_two_parameters_per_pair() {
        let sql = find_owned_many_sql::<invitations::Entity>(2);
        assert!(
            sql.ends_with(
                r#"FROM "invitations" JOIN (VALUES ($1::uuid, $2::uuid), ($3::uuid, $4::uuid)) AS "wanted" ("organization_id", "id") ON "invitations"."id" = "wanted"."id" AND "invitations"."organization_id" = "wanted"."organization_id""#
            ),
            "{sql}"
        );
    }
}
