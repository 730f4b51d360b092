//! Legacy magic links (SPEC §5): stateless, deprecated, and working forever.
//!
//! A company link behaves like a contributor invitation with no allow-list, no expiry and
//! unlimited uses; an edit link like a reconnect invitation for one connection. Secrets are
//! stored hashed (lookup) and sealed (so asking for the link again returns the same one). An
//! organization can rotate or revoke a link; issuing, rotating, revoking and every submit are
//! written to the company's legacy-link activity (`magic_link_events`).

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter, QueryOrder,
    Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::activity::Actor;
use crate::company::{ConnectionDetails, create_connection};
use crate::crypto::{Keyring, Slot, generate_token, hash_token};
use crate::entities::enums::{MagicLinkEventType, MagicLinkType};
use crate::entities::{companies, connections, magic_link_events};
use crate::invitation::EventWindow;
use crate::recipient::{Submission, reconnect};
use crate::scope::find_owned;
use crate::work::{Command, Work};
use crate::{DomainError, now};

/// A link's parts: the company's public id and the secret.
#[derive(Clone)]
pub struct MagicLink {
    pub public_company_id: String,
    pub secret: String,
}

impl std::fmt::Debug for MagicLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MagicLink")
            .field("public_company_id", &self.public_company_id)
            .finish_non_exhaustive()
    }
}

/// What a link opens.
#[derive(Debug, Clone)]
pub enum Target {
    Company(companies::Model),
    Connection(companies::Model, Box<connections::Model>),
}

/// Which link an operation is about: a company's, or a connection's edit link.
#[derive(Debug, Clone, Copy)]
pub enum LinkOf {
    Company(Uuid),
    Connection(Uuid),
}

/// The row that holds a link's secret (the company, or the connection), and the company.
struct Holder {
    company: companies::Model,
    connection: Option<connections::Model>,
}

impl Holder {
    async fn find(
        db: &impl ConnectionTrait,
        organization_id: Uuid,
        of: LinkOf,
    ) -> Result<Self, DomainError> {
        match of {
            LinkOf::Company(id) => Ok(Self {
                company: find_owned::<companies::Entity>(db, organization_id, id).await?,
                connection: None,
            }),
            LinkOf::Connection(id) => {
                let connection = find_owned::<connections::Entity>(db, organization_id, id).await?;
                let company =
                    find_owned::<companies::Entity>(db, organization_id, connection.company_id)
                        .await?;
                Ok(Self {
                    company,
                    connection: Some(connection),
                })
            }
        }
    }

    fn link_type(&self) -> MagicLinkType {
        match self.connection {
            Some(_) => MagicLinkType::EditLink,
            None => MagicLinkType::CompanyLink,
        }
    }

    /// Where the link's sealed secret is stored, which its sealing is bound to.
    fn slot(&self) -> Slot {
        match &self.connection {
            Some(c) => Slot::connection_edit_link(c.id),
            None => Slot::company_magic_link(self.company.id),
        }
    }

    fn sealed(&self) -> Option<&String> {
        match &self.connection {
            Some(c) => c.edit_link_secret_sealed.as_ref(),
            None => self.company.magic_link_secret_sealed.as_ref(),
        }
    }

    /// Stores a new secret (`Some`) or removes the link (`None`): the old secret stops working
    /// in the same statement.
    async fn store(
        &self,
        db: &impl ConnectionTrait,
        secret: Option<(String, String)>,
    ) -> Result<(), DomainError> {
        let (hash, sealed) = secret.unzip();
        match &self.connection {
            Some(c) => {
                let mut active: connections::ActiveModel = c.clone().into();
                active.edit_link_secret_hash = Set(hash);
                active.edit_link_secret_sealed = Set(sealed);
                active.update(db).await?;
            }
            None => {
                let mut active: companies::ActiveModel = self.company.clone().into();
                active.magic_link_secret_hash = Set(hash);
                active.magic_link_secret_sealed = Set(sealed);
                active.update(db).await?;
            }
        }
        Ok(())
    }

    async fn record(
        &self,
        db: &impl ConnectionTrait,
        event_type: MagicLinkEventType,
        actor: &Actor,
    ) -> Result<(), DomainError> {
        record(
            db,
            &self.company,
            self.link_type(),
            self.connection.as_ref().map(|c| c.id),
            event_type,
            actor,
            json!({}),
        )
        .await
    }
}

/// Appends one event to a company's legacy-link activity.
async fn record(
    db: &impl ConnectionTrait,
    company: &companies::Model,
    link_type: MagicLinkType,
    connection_id: Option<Uuid>,
    event_type: MagicLinkEventType,
    actor: &Actor,
    detail: Value,
) -> Result<(), DomainError> {
    magic_link_events::ActiveModel {
        id: NotSet,
        organization_id: Set(company.organization_id),
        company_id: Set(company.id),
        link_type: Set(link_type),
        connection_id: Set(connection_id),
        event_type: Set(event_type),
        actor: Set(actor.label().to_owned()),
        detail: Set(detail),
        occurred_at: Set(now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// What to do with a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// Return the current link, creating it on first use (the same link ever after).
    Get,
    /// Replace the secret: the old link stops working at once.
    Rotate,
}

/// Returns (and, when asked or when there is none, issues) a company link or an edit link.
pub struct IssueLink<'a> {
    pub keys: &'a Keyring,
    pub actor: Actor,
    pub organization_id: Uuid,
    pub of: LinkOf,
    pub change: LinkChange,
}

impl Command for IssueLink<'_> {
    type Output = MagicLink;

    async fn execute(&self, work: &Work) -> Result<MagicLink, DomainError> {
        let db = work.txn();
        let holder = Holder::find(db, self.organization_id, self.of).await?;
        let public_company_id = holder.company.public_id.clone();
        let event = match (holder.sealed(), self.change) {
            (Some(sealed), LinkChange::Get) => {
                return Ok(MagicLink {
                    public_company_id,
                    secret: self.keys.open_string(sealed, &holder.slot())?,
                });
            }
            (Some(_), LinkChange::Rotate) => MagicLinkEventType::Rotated,
            (None, _) => MagicLinkEventType::Created,
        };
        let secret = generate_token();
        holder
            .store(
                db,
                Some((
                    hash_token(&secret),
                    self.keys.seal(secret.as_bytes(), &holder.slot())?,
                )),
            )
            .await?;
        holder.record(db, event, &self.actor).await?;
        Ok(MagicLink {
            public_company_id,
            secret,
        })
    }
}

/// Revokes a link: it answers 404 from now on. `CONFLICT` when there is no link to revoke; a
/// later `createCompanyMagicLink` / `createConnectionEditLink` issues a new, different one.
pub struct RevokeLink {
    pub actor: Actor,
    pub organization_id: Uuid,
    pub of: LinkOf,
}

impl Command for RevokeLink {
    type Output = ();

    async fn execute(&self, work: &Work) -> Result<(), DomainError> {
        let db = work.txn();
        let holder = Holder::find(db, self.organization_id, self.of).await?;
        if holder.sealed().is_none() {
            return Err(DomainError::Conflict("there is no link to revoke".into()));
        }
        holder.store(db, None).await?;
        holder
            .record(db, MagicLinkEventType::Revoked, &self.actor)
            .await
    }
}

/// A company's legacy-link activity, oldest first: at most `window.first + 1` events after the
/// cursor (the extra one tells the caller that another page follows).
pub async fn events(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    company_id: Uuid,
    window: EventWindow,
) -> Result<Vec<magic_link_events::Model>, DomainError> {
    let mut query = magic_link_events::Entity::find()
        .filter(magic_link_events::Column::OrganizationId.eq(organization_id))
        .filter(magic_link_events::Column::CompanyId.eq(company_id));
    if let Some(after) = window.after {
        query = query.filter(magic_link_events::Column::Id.gt(after));
    }
    Ok(crate::finders::all_with_limit(
        db,
        query.order_by_asc(magic_link_events::Column::Id),
        window.first + 1,
    )
    .await?)
}

/// What a link opens, or `NOT_FOUND` (a wrong secret is indistinguishable from no link).
pub async fn resolve(
    db: &impl ConnectionTrait,
    public_company_id: &str,
    secret: &str,
    edit: bool,
) -> Result<Target, DomainError> {
    if secret.is_empty() || secret.len() > 128 || public_company_id.len() > 64 {
        return Err(DomainError::NotFound);
    }
    let company = companies::Entity::find()
        .filter(companies::Column::PublicId.eq(public_company_id))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound)?;
    let hash = hash_token(secret);
    if !edit {
        return match &company.magic_link_secret_hash {
            Some(h) if crate::crypto::constant_time_eq(h, &hash) => Ok(Target::Company(company)),
            _ => Err(DomainError::NotFound),
        };
    }
    let connection = connections::Entity::find()
        .filter(connections::Column::EditLinkSecretHash.eq(hash.as_str()))
        .filter(connections::Column::CompanyId.eq(company.id))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok(Target::Connection(company, Box::new(connection)))
}

/// Submits through a legacy link: a new PENDING connection for a company link, new credentials
/// for an edit link, with their webhooks, and a `SUBMITTED` event in the company's legacy-link
/// activity (for an edit link, with what changed and the previous username). No invitation, so
/// nothing is counted. A wrong secret is `NOT_FOUND`.
pub struct Submit<'a> {
    pub keys: &'a Keyring,
    pub public_company_id: String,
    pub secret: String,
    pub edit: bool,
    pub submission: Submission,
}

impl Command for Submit<'_> {
    type Output = connections::Model;

    async fn execute(&self, work: &Work) -> Result<Self::Output, DomainError> {
        let target = resolve(work.txn(), &self.public_company_id, &self.secret, self.edit).await?;
        let input = self.submission.clone();
        let db = work.txn();
        match target {
            Target::Company(company) => {
                let details: ConnectionDetails = input.into();
                let created = create_connection(
                    work,
                    self.keys,
                    company.organization_id,
                    company.id,
                    details,
                    None,
                )
                .await?;
                record(
                    db,
                    &company,
                    MagicLinkType::CompanyLink,
                    Some(created.id),
                    MagicLinkEventType::Submitted,
                    &Actor::Recipient,
                    json!({}),
                )
                .await?;
                Ok(created)
            }
            Target::Connection(company, before) => {
                let after = reconnect(
                    work,
                    self.keys,
                    company.organization_id,
                    before.id,
                    &input,
                    None,
                )
                .await?;
                record(
                    db,
                    &company,
                    MagicLinkType::EditLink,
                    Some(after.id),
                    MagicLinkEventType::Submitted,
                    &Actor::Recipient,
                    changes(&before, &after),
                )
                .await?;
                Ok(after)
            }
        }
    }
}

/// What an edit-link submit changed, and the previous values (never the password's).
fn changes(before: &connections::Model, after: &connections::Model) -> Value {
    let mut changed = vec!["utilityPassword"];
    let mut previous = serde_json::Map::new();
    if before.utility_username != after.utility_username {
        changed.push("utilityUsername");
        previous.insert("utilityUsername".into(), json!(before.utility_username));
    }
    if before.mfa_forwarding != after.mfa_forwarding {
        changed.push("mfaForwarding");
        previous.insert("mfaForwarding".into(), json!(before.mfa_forwarding));
    }
    json!({ "changedFields": changed, "previousValues": previous })
}
