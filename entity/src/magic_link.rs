//! Legacy magic links (SPEC §5): stateless, deprecated, and working forever.
//!
//! A company link behaves like a contributor invitation with no allow-list, no expiry and
//! unlimited uses; an edit link like a reconnect invitation for one connection. Secrets are
//! stored hashed (lookup) and sealed (so asking for the link again returns the same one).

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::DomainError;
use crate::company::{ConnectionDetails, create_connection};
use crate::crypto::{Keyring, Slot, generate_token, hash_token};
use crate::entities::{companies, connections};
use crate::recipient::{Submission, reconnect};
use crate::scope::find_owned;
use crate::work::{Command, Work};

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

/// The company link, created on first use and the same ever after.
pub async fn company_link(
    db: &impl ConnectionTrait,
    keys: &Keyring,
    organization_id: Uuid,
    company_id: Uuid,
) -> Result<MagicLink, DomainError> {
    let company = find_owned::<companies::Entity>(db, organization_id, company_id).await?;
    if let Some(sealed) = &company.magic_link_secret_sealed {
        return Ok(MagicLink {
            secret: keys.open_string(sealed, &Slot::company_magic_link(company.id))?,
            public_company_id: company.public_id,
        });
    }
    let secret = generate_token();
    let public_company_id = company.public_id.clone();
    let mut active: companies::ActiveModel = company.into();
    active.magic_link_secret_hash = Set(Some(hash_token(&secret)));
    active.magic_link_secret_sealed = Set(Some(
        keys.seal(secret.as_bytes(), &Slot::company_magic_link(company_id))?,
    ));
    active.update(db).await?;
    Ok(MagicLink {
        public_company_id,
        secret,
    })
}

/// The edit link of a connection, created on first use and the same ever after.
pub async fn edit_link(
    db: &impl ConnectionTrait,
    keys: &Keyring,
    organization_id: Uuid,
    connection_id: Uuid,
) -> Result<MagicLink, DomainError> {
    let connection = find_owned::<connections::Entity>(db, organization_id, connection_id).await?;
    let company =
        find_owned::<companies::Entity>(db, organization_id, connection.company_id).await?;
    if let Some(sealed) = &connection.edit_link_secret_sealed {
        return Ok(MagicLink {
            public_company_id: company.public_id,
            secret: keys.open_string(sealed, &Slot::connection_edit_link(connection.id))?,
        });
    }
    let secret = generate_token();
    let mut active: connections::ActiveModel = connection.into();
    active.edit_link_secret_hash = Set(Some(hash_token(&secret)));
    active.edit_link_secret_sealed = Set(Some(keys.seal(
        secret.as_bytes(),
        &Slot::connection_edit_link(connection_id),
    )?));
    active.update(db).await?;
    Ok(MagicLink {
        public_company_id: company.public_id,
        secret,
    })
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
/// for an edit link, with their webhooks. No invitation, so nothing is counted or logged against
/// one. A wrong secret is `NOT_FOUND`.
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
        match target {
            Target::Company(company) => {
                let details: ConnectionDetails = input.into();
                create_connection(
                    work,
                    self.keys,
                    company.organization_id,
                    company.id,
                    details,
                    None,
                )
                .await
            }
            Target::Connection(company, connection) => {
                reconnect(
                    work,
                    self.keys,
                    company.organization_id,
                    connection.id,
                    &input,
                    None,
                )
                .await
            }
        }
    }
}
