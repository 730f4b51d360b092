//! REST errors: a JSON body `{detail, code, field?}` with the stable codes of the GraphQL API
//! (`crate::graphql::error::code`) and the HTTP status that matches the code. Internal failures
//! are logged with their detail and answered with an opaque 500.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use entity::DomainError;
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use crate::graphql::error::code;

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub detail: String,
    /// Stable code, the same as the GraphQL API's `extensions.code`: `BAD_USER_INPUT`,
    /// `UNAUTHENTICATED`, `NOT_FOUND`, `CONFLICT`, `INVITATION_NOT_ACTIVE`, `RATE_LIMITED`,
    /// `INTERNAL_SERVER_ERROR`.
    pub code: String,
    /// The input the error is about (`BAD_USER_INPUT`), e.g. `allowedEmails[2]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why an invitation cannot be used (`INVITATION_NOT_ACTIVE`): `EXPIRED`, `REVOKED`,
    /// `FULFILLED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds to wait (`RATE_LIMITED`); also in the `Retry-After` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                detail: detail.into(),
                code: code.to_owned(),
                field: None,
                reason: None,
                retry_after: None,
            },
        }
    }

    pub fn bad_input(field: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, code::BAD_USER_INPUT, detail);
        e.body.field = Some(field.to_owned());
        e
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "a valid API key is required in the X-API-Key header",
        )
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::BAD_USER_INPUT,
            "the request body is too large",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::BAD_USER_INPUT,
            "the request body must be application/json",
        )
    }

    /// Logs the detail and returns the opaque error.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_SERVER_ERROR,
            "internal server error",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound => Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, "not found"),
            DomainError::Conflict(message) => {
                Self::new(StatusCode::CONFLICT, code::CONFLICT, message)
            }
            DomainError::InvalidInput { field, message } => Self::bad_input(&field, message),
            DomainError::NotActive(status) => {
                let reason = status.as_str();
                let mut e = Self::new(
                    StatusCode::CONFLICT,
                    code::INVITATION_NOT_ACTIVE,
                    format!("invitation is {reason}"),
                );
                e.body.reason = Some(reason.to_owned());
                e
            }
            DomainError::EmailNotVerified(reason) => {
                let mut e = Self::new(
                    StatusCode::FORBIDDEN,
                    code::EMAIL_NOT_VERIFIED,
                    "the email address is not verified",
                );
                e.body.reason = Some(reason.to_owned());
                e
            }
            DomainError::RateLimited { retry_after } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    code::RATE_LIMITED,
                    format!("too many requests; retry in {retry_after} s"),
                );
                e.body.retry_after = Some(retry_after);
                e
            }
            DomainError::Db(e) => Self::internal(&e),
            DomainError::Crypto => Self::internal(&"sealed value could not be opened"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.body.retry_after;
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Documented error answers, each with an [`ErrorBody`].
fn documented(answers: &[(u16, &str)]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    answers
        .iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// The errors every operation may answer: a bad id or parameter, no valid key, an unknown id.
pub struct CommonErrors;

impl IntoResponses for CommonErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        documented(&[
            (400, "Invalid input (`field` names it)"),
            (401, "Missing or unknown API key"),
            (
                404,
                "No such object in the organization (another organization's ids too)",
            ),
        ])
    }
}

/// The errors of an operation that takes a JSON body.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        documented(&[
            (413, "The body is larger than the limit"),
            (415, "The body is not `application/json`"),
        ])
    }
}

/// The errors of a change: those of every operation with a body, and 409.
pub struct ChangeErrors;

impl IntoResponses for ChangeErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut answers = CommonErrors::responses();
        answers.extend(BodyErrors::responses());
        answers.extend(documented(&[(
            409,
            "Conflicts with the invitation's state (the detail names it), or the idempotency key was used for another request",
        )]));
        answers
    }
}
