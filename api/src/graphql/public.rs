//! Shared pieces of the recipient (public) operations: rate limits and the submit input.

use std::net::IpAddr;

use async_graphql::{Context, ID, InputObject, Result};
use entity::crypto::hash_token;
use entity::recipient::Submission;

use super::context::state;
use super::enums::UtilityType;
use super::error::rate_limited;
use super::ids::{parse_date, parse_ids};
use crate::ratelimit::{Limit, PER_CLIENT, PER_TOKEN};

/// The client's address, put into each request by the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// Applies the per-client and per-token limits of public operations. Tokens are hashed before
/// they become counter keys, so Redis never holds a live link.
pub async fn guard(ctx: &Context<'_>, token: &str) -> Result<()> {
    let state = state(ctx)?;
    if let Some(ClientAddr(ip)) = ctx.data_opt::<ClientAddr>() {
        state
            .limiter
            .hit(&format!("ip:{ip}"), PER_CLIENT)
            .await
            .map_err(rate_limited)?;
    }
    let key = format!("tok:{}", &hash_token(token)[..32]);
    state
        .limiter
        .hit(&key, PER_TOKEN)
        .await
        .map_err(rate_limited)
}

/// One more limit on a key derived from secret material (hashed like tokens).
pub async fn limit(ctx: &Context<'_>, scope: &str, material: &str, limit: Limit) -> Result<()> {
    let key = format!("{scope}:{}", &hash_token(material)[..32]);
    state(ctx)?
        .limiter
        .hit(&key, limit)
        .await
        .map_err(rate_limited)
}

/// The details of a utility account: what a recipient submits on the hosted page, or what an
/// organization registers with `createConnection`. Reconnect submits use only the credentials
/// and `mfaForwarding`.
#[derive(InputObject)]
pub struct ConnectionInput {
    /// The utility provider, by id, website or name (contributor).
    pub datasource_id: Option<String>,
    pub provider_url: Option<String>,
    pub provider_name: Option<String>,
    /// ISO 3166-1 alpha-2 (contributor).
    pub country: Option<String>,
    pub utility_types: Option<Vec<UtilityType>>,
    /// Sites of the company (contributor).
    pub site_ids: Option<Vec<ID>>,
    /// Who owns the resulting connection (contributor).
    pub owner_email: Option<String>,
    /// `YYYY-MM-DD` (contributor).
    pub data_collection_start_date: Option<String>,
    pub utility_username: String,
    /// Encrypted at rest, never returned, never logged.
    #[graphql(secret)]
    pub utility_password: String,
    /// Forward MFA prompts to the account holder.
    pub mfa_forwarding: Option<bool>,
}

impl ConnectionInput {
    pub fn into_submission(self) -> Result<Submission> {
        Ok(Submission {
            datasource_id: self.datasource_id,
            provider_url: self.provider_url,
            provider_name: self.provider_name,
            country: self.country,
            utility_types: self
                .utility_types
                .map(|t| t.into_iter().map(Into::into).collect()),
            site_ids: self
                .site_ids
                .map(|ids| parse_ids("siteIds", &ids))
                .transpose()?,
            owner_email: self.owner_email,
            data_collection_start_date: parse_date(
                "dataCollectionStartDate",
                self.data_collection_start_date.as_deref(),
            )?,
            utility_username: self.utility_username,
            utility_password: self.utility_password,
            mfa_forwarding: self.mfa_forwarding.unwrap_or(false),
        })
    }
}
