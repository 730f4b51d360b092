use async_graphql::{Context, ID, Object, Result};
use entity::DomainError;
use serde_json::json;

use crate::graphql::context::{store, viewer};
use crate::graphql::error::{GqlResult, bad_input};
use crate::graphql::ids::parse_id;
use crate::graphql::inputs::{InvitationInput, ResendInvitationInput};
use crate::graphql::object::Invitation;
use crate::operations::{self, InvitationFor};

/// Most invitations one bulk call may create.
pub const MAX_BULK: usize = 100;

#[derive(Default)]
pub struct InvitationMutation;

#[Object]
impl InvitationMutation {
    /// Creates a contributor invitation: submitting it creates a new connection for the company.
    async fn create_contributor_invitation(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        input: InvitationInput,
    ) -> Result<Invitation> {
        let target = InvitationFor::Company(parse_id("companyId", &company_id)?);
        let created = operations::create_invitation(store(ctx)?, viewer(ctx)?, target, input);
        Ok(Invitation::from(created.await.gql()?))
    }

    /// Creates a reconnect invitation for a connection: submitting it updates its credentials.
    async fn create_reconnect_invitation(
        &self,
        ctx: &Context<'_>,
        connection_id: ID,
        input: InvitationInput,
    ) -> Result<Invitation> {
        let target = InvitationFor::Connection(parse_id("connectionId", &connection_id)?);
        let created = operations::create_invitation(store(ctx)?, viewer(ctx)?, target, input);
        Ok(Invitation::from(created.await.gql()?))
    }

    /// Creates up to 100 contributor invitations for one company, all or nothing. An error names
    /// the item: `extensions.field` is e.g. `inputs[3].allowedEmails[0]`.
    #[graphql(complexity = "inputs.len() * child_complexity + 1")]
    async fn create_contributor_invitations(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        inputs: Vec<InvitationInput>,
        idempotency_key: Option<String>,
    ) -> Result<Vec<Invitation>> {
        let org = viewer(ctx)?.organization_id;
        if inputs.is_empty() || inputs.len() > MAX_BULK {
            return Err(bad_input(
                "inputs",
                format!("give 1 to {MAX_BULK} invitations"),
            ));
        }
        let request = json!({ "companyId": company_id, "inputs": inputs });
        let company = parse_id("companyId", &company_id)?;
        let items = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| {
                let prefix = format!("inputs[{i}].");
                if input.idempotency_key.is_some() {
                    return Err(DomainError::invalid(
                        format!("{prefix}idempotencyKey"),
                        "use the idempotencyKey argument of the bulk call",
                    ));
                }
                input
                    .into_domain(org, Some(company), None)
                    .map_err(|e| e.within(&prefix))
            })
            .collect::<Result<Vec<_>, _>>()
            .gql()?;
        let created = operations::create_invitations(
            store(ctx)?,
            viewer(ctx)?,
            "createContributorInvitations",
            items,
            true,
            idempotency_key.as_deref(),
            &request,
        );
        Ok(created
            .await
            .gql()?
            .into_iter()
            .map(Invitation::from)
            .collect())
    }

    /// Revokes an ACTIVE invitation; its link stops working at once. Revoking anything else is a
    /// `CONFLICT` naming its status, unless the call repeats an earlier `idempotencyKey`.
    async fn revoke_invitation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Invitation> {
        let revoked = operations::revoke_invitation(
            store(ctx)?,
            viewer(ctx)?,
            parse_id("id", &id)?,
            reason,
            idempotency_key.as_deref(),
        );
        Ok(Invitation::from(revoked.await.gql()?))
    }

    /// Emails the link again, without a new link unless `rotateToken`. See `ResendInvitationInput`.
    async fn resend_invitation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: Option<ResendInvitationInput>,
    ) -> Result<Invitation> {
        let id = parse_id("id", &id)?;
        let input = input.unwrap_or_default();
        let resent = operations::resend_invitation(store(ctx)?, viewer(ctx)?, id, input);
        Ok(Invitation::from(resent.await.gql()?))
    }
}
