//! Shared pieces of the recipient (public) operations: the client address and rate limits.

use std::net::IpAddr;

use async_graphql::{Context, Guard, Result};
use entity::crypto::hash_token;

use super::context::{guards, store};
use super::error::{internal, rate_limited};
use crate::ratelimit::{
    CODES_PER_EMAIL, CODES_PER_INVITATION, Limit, PER_CLIENT, PER_TOKEN, RECIPIENT_EVENTS,
    RENEWALS_PER_EMAIL, client_key,
};

/// The client's address, put into each request's data by the HTTP layer and into each
/// WebSocket connection's data by the socket (behind trusted proxies, the address they report;
/// see `crate::client`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// What opens the page an operation acts on.
enum Credential {
    Token(String),
    MagicLink {
        public_company_id: String,
        secret: String,
        edit: bool,
    },
}

/// The rate limits of a public operation, as a field guard
/// (`#[graphql(guard = "RateLimited::token(&token)")]`): it runs before the resolver on every
/// transport that executes the schema. Counts per client address first; then, only if the token
/// (or legacy link) exists, per token and any further limit, and stops at the first one
/// exceeded. So made-up tokens create no counters: a flood of them cannot crowd out the ones
/// that matter. Tokens and other secret material are hashed before they become counter keys,
/// so Redis never holds a live link.
pub struct RateLimited {
    credential: Credential,
    counters: Vec<(String, Limit)>,
}

impl RateLimited {
    /// The per-client and per-token limits every public operation has.
    pub fn token(token: &str) -> Self {
        Self {
            credential: Credential::Token(token.to_owned()),
            counters: Vec::new(),
        }
        .and_on(token, PER_TOKEN)
    }

    /// The same limits for a legacy magic link (the secret is its token).
    pub fn magic_link(public_company_id: &str, secret: &str, edit: bool) -> Self {
        Self {
            credential: Credential::MagicLink {
                public_company_id: public_company_id.to_owned(),
                secret: secret.to_owned(),
                edit,
            },
            counters: Vec::new(),
        }
        .and_on(secret, PER_TOKEN)
    }

    /// Verification codes: also per invitation and per invitation and address.
    pub fn code_request(token: &str, email: &str) -> Self {
        Self::token(token)
            .and_on(token, CODES_PER_INVITATION)
            .and_on(&per_email(token, email), CODES_PER_EMAIL)
    }

    /// Renewal requests: also per invitation and address.
    pub fn renewal_request(token: &str, email: &str) -> Self {
        Self::token(token).and_on(&per_email(token, email), RENEWALS_PER_EMAIL)
    }

    /// One more limit, on a key derived from secret material.
    fn and_on(mut self, material: &str, limit: Limit) -> Self {
        self.counters.push((counter_key(material), limit));
        self
    }

    /// Whether the token or link opens anything (whatever its status).
    async fn exists(&self, db: &sea_orm::DatabaseConnection) -> Result<bool> {
        let found = match &self.credential {
            Credential::Token(token) => entity::recipient::find_by_token(db, token)
                .await
                .map(|_| ()),
            Credential::MagicLink {
                public_company_id,
                secret,
                edit,
            } => entity::magic_link::resolve(db, public_company_id, secret, *edit)
                .await
                .map(|_| ()),
        };
        match found {
            Ok(()) => Ok(true),
            Err(entity::DomainError::NotFound) => Ok(false),
            Err(e) => Err(internal(&e)),
        }
    }
}

fn counter_key(material: &str) -> String {
    hash_token(material)[..32].to_owned()
}

fn per_email(token: &str, email: &str) -> String {
    format!("{token}\n{}", email.trim().to_lowercase())
}

/// Whether a link holder may still add an activity event (a view, a pre-verified link) to
/// this invitation; past [`RECIPIENT_EVENTS`] the operation answers as usual and records
/// nothing, so a script cannot fill the log.
/// A made-up token gets no counter (and its operation fails on its own).
pub async fn may_record(ctx: &Context<'_>, token: &str) -> Result<bool> {
    if !RateLimited::token(token).exists(&store(ctx)?.db).await? {
        return Ok(false);
    }
    Ok(guards(ctx)?
        .limiter
        .hit(&counter_key(token), RECIPIENT_EVENTS)
        .await
        .is_ok())
}

impl Guard for RateLimited {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let limiter = &guards(ctx)?.limiter;
        // Every transport must say who the client is; one that forgot would lift the limit.
        let ClientAddr(ip) = *ctx
            .data_opt::<ClientAddr>()
            .ok_or_else(|| internal(&"no client address in the request data"))?;
        limiter
            .hit(&client_key(ip), PER_CLIENT)
            .await
            .map_err(rate_limited)?;
        if !self.exists(&store(ctx)?.db).await? {
            return Ok(());
        }
        for (key, limit) in &self.counters {
            limiter.hit(key, *limit).await.map_err(rate_limited)?;
        }
        Ok(())
    }
}
