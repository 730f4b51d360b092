use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::magic_link::{self, Target};

use crate::graphql::context::store;
use crate::graphql::enums::{InvitationType, PrefillField};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::id;
use crate::graphql::object::Prefill;
use crate::graphql::public::RateLimited;

#[derive(Default)]
pub struct PublicQuery;

/// What the recipient page may show about an invitation. Never the allow-list.
#[derive(SimpleObject)]
pub struct PublicInvitation {
    /// The invitation's id, so a page embedded in the organization's product can tell it which
    /// invitation an event is about.
    pub invitation_id: ID,
    pub invitation_type: InvitationType,
    /// Display name of the company asking.
    pub company_name: String,
    pub prefill: Prefill,
    pub locked_fields: Vec<PrefillField>,
    /// Whether the recipient must prove an email address before submitting.
    pub email_verification_required: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// Provider and account of the connection to repair (reconnect invitations).
    pub connection_provider: Option<String>,
    pub connection_username: Option<String>,
    /// The connection's current MFA forwarding choice (reconnect invitations); a submit that
    /// omits `mfaForwarding` keeps it.
    pub connection_mfa_forwarding: Option<bool>,
    /// The sites of the company, to attach the new connection to (contributor invitations).
    pub sites: Vec<PublicSite>,
}

/// A site the recipient may attach a new connection to: its id and name only.
#[derive(SimpleObject)]
pub struct PublicSite {
    pub id: ID,
    pub name: String,
}

/// What the page of a legacy magic link may show.
#[derive(SimpleObject)]
pub struct PublicMagicLink {
    pub invitation_type: InvitationType,
    pub company_name: String,
    pub connection_provider: Option<String>,
    pub connection_username: Option<String>,
    pub connection_mfa_forwarding: Option<bool>,
    pub sites: Vec<PublicSite>,
}

fn company_name(c: &entity::entities::companies::Model) -> String {
    c.display_name.clone().unwrap_or_else(|| c.name.clone())
}

fn provider(c: &entity::entities::connections::Model) -> Option<String> {
    c.provider_name
        .clone()
        .or_else(|| c.provider_url.clone())
        .or_else(|| c.datasource_id.clone())
}

/// The sites of a contributor flow's company; none for a reconnect (it keeps its sites).
async fn sites(
    db: &sea_orm::DatabaseConnection,
    company: &entity::entities::companies::Model,
    contributor: bool,
) -> Result<Vec<PublicSite>> {
    if !contributor {
        return Ok(Vec::new());
    }
    // Bounded like every list; a company with more sites than a form can show gets the oldest.
    let rows = entity::finders::sites_of_company(
        db,
        company.organization_id,
        company.id,
        crate::graphql::paging::MAX_PAGE as u64,
    )
    .await
    .map_err(entity::DomainError::from)
    .gql()?;
    Ok(rows
        .into_iter()
        .map(|s| PublicSite {
            id: id(s.id),
            name: s.name,
        })
        .collect())
}

#[Object]
impl PublicQuery {
    /// The public view of an invitation: `INVITATION_NOT_ACTIVE` (with `reason`) when it can no
    /// longer be used, `NOT_FOUND` for an unknown token.
    #[graphql(guard = "RateLimited::token(&token)")]
    async fn public_invitation(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> Result<PublicInvitation> {
        let db = &store(ctx)?.db;
        let row = entity::recipient::find_active(db, &token).await.gql()?;
        let company = entity::scope::find_owned::<entity::entities::companies::Entity>(
            db,
            row.organization_id,
            row.company_id,
        )
        .await
        .gql()?;
        let connection = match row.connection_id {
            Some(id) => Some(
                entity::scope::find_owned::<entity::entities::connections::Entity>(
                    db,
                    row.organization_id,
                    id,
                )
                .await
                .gql()?,
            ),
            None => None,
        };
        let contributor = row.invitation_type == entity::InvitationType::CreateConnection;
        Ok(PublicInvitation {
            invitation_id: id(row.id),
            sites: sites(db, &company, contributor).await?,
            invitation_type: row.invitation_type.into(),
            company_name: company_name(&company),
            prefill: (&row.prefill).into(),
            locked_fields: row
                .locked_fields
                .0
                .iter()
                .filter_map(|f| PrefillField::from_api_name(f))
                .collect(),
            email_verification_required: !row.allowed_emails.0.is_empty(),
            expires_at: row.expires_at,
            connection_provider: connection.as_ref().and_then(provider),
            connection_mfa_forwarding: connection.as_ref().map(|c| c.mfa_forwarding),
            connection_username: connection.and_then(|c| c.utility_username),
        })
    }

    /// The public view of a legacy magic link; `NOT_FOUND` for a wrong secret.
    #[graphql(
        deprecation = "Magic links are replaced by invitations; use publicInvitation",
        guard = "RateLimited::magic_link(&public_company_id, &secret, edit)"
    )]
    async fn public_magic_link(
        &self,
        ctx: &Context<'_>,
        public_company_id: String,
        secret: String,
        #[graphql(default = false, desc = "True for an edit (reconnect) link.")] edit: bool,
    ) -> Result<PublicMagicLink> {
        let db = &store(ctx)?.db;
        let target = magic_link::resolve(db, &public_company_id, &secret, edit)
            .await
            .gql()?;
        Ok(match target {
            Target::Company(c) => PublicMagicLink {
                invitation_type: InvitationType::CreateConnection,
                company_name: company_name(&c),
                connection_provider: None,
                connection_username: None,
                connection_mfa_forwarding: None,
                sites: sites(db, &c, true).await?,
            },
            Target::Connection(c, conn) => PublicMagicLink {
                invitation_type: InvitationType::EditConnection,
                company_name: company_name(&c),
                connection_provider: provider(&conn),
                connection_mfa_forwarding: Some(conn.mfa_forwarding),
                connection_username: conn.utility_username,
                sites: Vec::new(),
            },
        })
    }
}
