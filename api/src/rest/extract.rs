//! What a REST handler takes from a request, each with errors in the REST shape: the caller (API
//! key), an id from the path, the `Idempotency-Key` header, a JSON body and query parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::PartialSchema;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use uuid::Uuid;

use super::error::ApiError;
use crate::auth::{Viewer, presented_key};
use crate::state::AppState;

/// The authenticated caller: the API key in `X-API-Key` (or `Authorization: Bearer`), checked
/// through the same cache as GraphQL requests.
pub struct Caller(pub Viewer);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = presented_key(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        match state
            .guards
            .key_cache
            .authenticate(&state.store.db, &key)
            .await
        {
            Ok(Some(viewer)) => Ok(Self(viewer)),
            Ok(None) => Err(ApiError::unauthenticated()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The one id in the request's path; a malformed one is `BAD_USER_INPUT` naming the parameter.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let Some((name, value)) = params.iter().next() else {
            return Err(ApiError::internal(&"a route without an id parameter"));
        };
        Uuid::parse_str(value)
            .map(Self)
            .map_err(|_| ApiError::bad_input(name, "not a valid id"))
    }
}

/// The `Idempotency-Key` header, if sent: a repeated request with the same key returns the
/// first result and changes nothing (the rules of GraphQL's `idempotencyKey`).
pub struct IdempotencyKey(pub Option<String>);

/// The header's name, as documented.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Documents the header on the operations that take it.
impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let description = "A repeated request with the same key returns the first result and \
            changes nothing; the same key with another request is 409";
        vec![
            ParameterBuilder::new()
                .name(IDEMPOTENCY_KEY)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(String::schema()))
                .build(),
        ]
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(IDEMPOTENCY_KEY)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::bad_input(IDEMPOTENCY_KEY, "must be visible ASCII"))
            })
            .transpose()
            .map(Self)
    }
}

/// A JSON body whose fields are all optional: an empty body (no bytes at all) or `null` is the
/// default value. A body in another media type is 415, one over the size limit 413, and one
/// that does not parse 400.
pub struct JsonBody<T>(pub T);

fn is_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(&request);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(),
                _ => ApiError::bad_input("body", "the request body could not be read"),
            })?;
        // Only a body with no bytes at all stands for "all defaults": one of whitespace alone
        // is not a JSON document, and answers 400 like any other that does not parse
        // (Schemathesis sent a lone line feed).
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(ApiError::unsupported_media_type());
        }
        let invalid =
            |e: serde_json::Error| ApiError::bad_input("body", format!("invalid JSON body: {e}"));
        match serde_json::from_slice(&bytes).map_err(invalid)? {
            Value::Null => Ok(Self(T::default())),
            // Derived deserializers also take a struct from an array of its fields.
            body @ Value::Object(_) => T::deserialize(body).map(Self).map_err(invalid),
            _ => Err(ApiError::bad_input(
                "body",
                "the body must be a JSON object",
            )),
        }
    }
}

/// Query parameters; ones that do not parse are `BAD_USER_INPUT`.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::bad_input("query", e.body_text()))
    }
}
