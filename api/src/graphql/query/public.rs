use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::magic_link::{self, Target};

use crate::graphql::context::state;
use crate::graphql::enums::{InvitationType, PrefillField};
use crate::graphql::error::GqlResult;
use crate::graphql::object::Prefill;
use crate::graphql::public::RateLimited;

#[derive(Default)]
pub struct PublicQuery;

/// What the recipient page may show about an invitation. Never the allow-list.
#[derive(SimpleObject)]
pub struct PublicInvitation {
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
}

/// What the page of a legacy magic link may show.
#[derive(SimpleObject)]
pub struct PublicMagicLink {
    pub invitation_type: InvitationType,
    pub company_name: String,
    pub connection_provider: Option<String>,
    pub connection_username: Option<String>,
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
        let db = &state(ctx)?.db;
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
        Ok(PublicInvitation {
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
        let target = magic_link::resolve(&state(ctx)?.db, &public_company_id, &secret, edit)
            .await
            .gql()?;
        Ok(match target {
            Target::Company(c) => PublicMagicLink {
                invitation_type: InvitationType::CreateConnection,
                company_name: company_name(&c),
                connection_provider: None,
                connection_username: None,
            },
            Target::Connection(c, conn) => PublicMagicLink {
                invitation_type: InvitationType::EditConnection,
                company_name: company_name(&c),
                connection_provider: provider(&conn),
                connection_username: conn.utility_username,
            },
        })
    }
}
