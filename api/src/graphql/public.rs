//! Shared pieces of the recipient (public) operations: rate limits and the submit input.

use std::net::IpAddr;

use async_graphql::{Context, Guard, ID, InputObject, Result};
use entity::crypto::hash_token;
use entity::recipient::Submission;

use super::context::state;
use super::enums::UtilityType;
use super::error::{internal, rate_limited};
use super::ids::{parse_date, parse_ids};
use crate::ratelimit::{
    CODES_PER_EMAIL, CODES_PER_INVITATION, Limit, PER_CLIENT, PER_TOKEN, RENEWALS_PER_EMAIL,
};

/// The client's address, put into each request's data by the HTTP layer and into each
/// WebSocket connection's data by the socket.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// The rate limits of a public operation, as a field guard
/// (`#[graphql(guard = "RateLimited::token(&token)")]`): it runs before the resolver on every
/// transport that executes the schema. Counts per client address first, then per token (or
/// legacy secret), then any further limit, and stops at the first one exceeded. Tokens and other
/// secret material are hashed before they become counter keys, so Redis never holds a live link.
pub struct RateLimited {
    counters: Vec<(String, Limit)>,
}

impl RateLimited {
    /// The per-client and per-token limits every public operation has.
    pub fn token(token: &str) -> Self {
        Self {
            counters: Vec::new(),
        }
        .and_on("tok", token, PER_TOKEN)
    }

    /// Verification codes: also per invitation and per invitation and address.
    pub fn code_request(token: &str, email: &str) -> Self {
        Self::token(token)
            .and_on("codes", token, CODES_PER_INVITATION)
            .and_on("codes-email", &per_email(token, email), CODES_PER_EMAIL)
    }

    /// Renewal requests: also per invitation and address.
    pub fn renewal_request(token: &str, email: &str) -> Self {
        Self::token(token).and_on("renewal", &per_email(token, email), RENEWALS_PER_EMAIL)
    }

    /// One more limit, on a key derived from secret material.
    fn and_on(mut self, scope: &str, material: &str, limit: Limit) -> Self {
        self.counters
            .push((format!("{scope}:{}", &hash_token(material)[..32]), limit));
        self
    }
}

fn per_email(token: &str, email: &str) -> String {
    format!("{token}\n{}", email.trim().to_lowercase())
}

impl Guard for RateLimited {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let state = state(ctx)?;
        // Every transport must say who the client is; one that forgot would lift the limit.
        let ClientAddr(ip) = *ctx
            .data_opt::<ClientAddr>()
            .ok_or_else(|| internal(&"no client address in the request data"))?;
        state
            .limiter
            .hit(&format!("ip:{ip}"), PER_CLIENT)
            .await
            .map_err(rate_limited)?;
        for (key, limit) in &self.counters {
            state.limiter.hit(key, *limit).await.map_err(rate_limited)?;
        }
        Ok(())
    }
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
    /// Forward MFA prompts to the account holder. Omitted: a reconnect keeps the connection's
    /// current choice; a new connection does not forward.
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
            mfa_forwarding: self.mfa_forwarding,
        })
    }
}
