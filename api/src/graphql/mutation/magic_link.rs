//! Legacy magic links on the organization's side: issue (deprecated), rotate and revoke.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use entity::magic_link::{LinkChange, LinkOf, MagicLink, RevokeLink};
use serde::Serialize;

use crate::config::Settings;
use crate::graphql::context::{actor, settings, store, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::parse_id;

#[derive(Default)]
pub struct MagicLinkMutation;

// Also the REST API's answer, hence `Serialize` and `ToSchema`.
/// A legacy company link.
#[derive(SimpleObject, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanyMagicLink {
    pub public_company_id: String,
    pub company_magic_link_secret: String,
    pub magic_link_url: String,
}

// Also part of the REST API's answer, hence `Serialize` and `ToSchema`.
/// A legacy connection edit link.
#[derive(SimpleObject, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionEditLink {
    pub public_company_id: String,
    pub connection_magic_link_secret: String,
    pub magic_link_url: String,
}

impl CompanyMagicLink {
    pub fn new(settings: &Settings, link: MagicLink) -> Self {
        Self {
            magic_link_url: settings.magic_link_url(&link.public_company_id, &link.secret, false),
            public_company_id: link.public_company_id,
            company_magic_link_secret: link.secret,
        }
    }
}

impl ConnectionEditLink {
    pub fn new(settings: &Settings, link: MagicLink) -> Self {
        Self {
            magic_link_url: settings.magic_link_url(&link.public_company_id, &link.secret, true),
            public_company_id: link.public_company_id,
            connection_magic_link_secret: link.secret,
        }
    }
}

/// Which link an argument names.
fn company(id: &ID) -> Result<LinkOf> {
    Ok(LinkOf::Company(parse_id("companyId", id)?))
}

fn connection(id: &ID) -> Result<LinkOf> {
    Ok(LinkOf::Connection(parse_id("connectionId", id)?))
}

async fn issue<'a>(
    ctx: &'a Context<'_>,
    of: LinkOf,
    change: LinkChange,
) -> Result<(MagicLink, &'a Settings)> {
    let link = crate::operations::issue_link(store(ctx)?, viewer(ctx)?, of, change);
    Ok((link.await.gql()?, settings(ctx)?))
}

async fn revoke(ctx: &Context<'_>, of: LinkOf) -> Result<bool> {
    let command = RevokeLink {
        actor: actor(ctx)?,
        organization_id: viewer(ctx)?.organization_id,
        of,
    };
    store(ctx)?.run(&command).await.gql()?;
    Ok(true)
}

#[Object]
impl MagicLinkMutation {
    /// The legacy company link (the same link on every call, until rotated or revoked).
    #[graphql(deprecation = "Magic links are deprecated; use createContributorInvitation")]
    async fn create_company_magic_link(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
    ) -> Result<CompanyMagicLink> {
        let (link, settings) = issue(ctx, company(&company_id)?, LinkChange::Get).await?;
        Ok(CompanyMagicLink::new(settings, link))
    }

    /// The legacy edit link of a connection (the same link on every call, until rotated or
    /// revoked).
    #[graphql(deprecation = "Magic links are deprecated; use createReconnectInvitation")]
    async fn create_connection_edit_link(
        &self,
        ctx: &Context<'_>,
        connection_id: ID,
    ) -> Result<ConnectionEditLink> {
        let (link, settings) = issue(ctx, connection(&connection_id)?, LinkChange::Get).await?;
        Ok(ConnectionEditLink::new(settings, link))
    }

    /// A new secret for the company's legacy link: the old link stops working at once.
    /// Recorded in the company's `magicLinkEvents` (`ROTATED`).
    async fn rotate_company_magic_link(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
    ) -> Result<CompanyMagicLink> {
        let (link, settings) = issue(ctx, company(&company_id)?, LinkChange::Rotate).await?;
        Ok(CompanyMagicLink::new(settings, link))
    }

    /// Revokes the company's legacy link: it answers 404 from now on (`REVOKED` in
    /// `magicLinkEvents`). `CONFLICT` when the company has no link.
    async fn revoke_company_magic_link(&self, ctx: &Context<'_>, company_id: ID) -> Result<bool> {
        revoke(ctx, company(&company_id)?).await
    }

    /// A new secret for a connection's legacy edit link: the old link stops working at once.
    async fn rotate_connection_edit_link(
        &self,
        ctx: &Context<'_>,
        connection_id: ID,
    ) -> Result<ConnectionEditLink> {
        let (link, settings) = issue(ctx, connection(&connection_id)?, LinkChange::Rotate).await?;
        Ok(ConnectionEditLink::new(settings, link))
    }

    /// Revokes a connection's legacy edit link. `CONFLICT` when the connection has none.
    async fn revoke_connection_edit_link(
        &self,
        ctx: &Context<'_>,
        connection_id: ID,
    ) -> Result<bool> {
        revoke(ctx, connection(&connection_id)?).await
    }
}
