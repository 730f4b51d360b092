//! `/graphql` over HTTP per the GraphQL-over-HTTP specification: content negotiation between
//! `application/graphql-response+json` and `application/json`, 4xx for request errors under the
//! former, GET for queries only, and GraphiQL for browsers.

use async_graphql::http::GraphiQLSource;
use async_graphql::{Name, Value as ConstValue};
use axum::body::Bytes;
use axum::extract::{FromRequest, Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use std::net::SocketAddr;

use axum::extract::ConnectInfo;

use super::documents::{Known, Persisted};
use super::endpoint::GraphqlEndpoint;
use super::error::{classify_request_error, code};
use super::json::{RenderJson, mergeless, response_body};
use super::loader::{Loaders, RequestLoader};
use super::public::ClientAddr;
use crate::auth::presented_key;
use async_graphql::dataloader::HashMapCache;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostBody {
    query: Option<String>,
    operation_name: Option<String>,
    #[serde(default)]
    variables: Sent<BTreeMap<Name, ConstValue>>,
    #[serde(default)]
    extensions: Sent<serde_json::Map<String, Value>>,
}

/// `variables` or `extensions` as the request sent it. Both are maps when present (GraphQL over
/// HTTP); anything else makes the request malformed. Variables are read straight into
/// async-graphql's values rather than through a `serde_json::Value` first.
#[derive(Debug, Default)]
enum Sent<T> {
    /// Absent or `null`.
    #[default]
    Absent,
    Object(T),
    NotAnObject,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sent<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Sent<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Sent<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Sent::Object)
            }

            fn visit_unit<E>(self) -> Result<Sent<T>, E> {
                Ok(Sent::Absent)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Sent<T>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Sent::NotAnObject)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Sent<T>, E> {
                Ok(Sent::NotAnObject)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Sent<T>, E> {
                Ok(Sent::NotAnObject)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Sent<T>, E> {
                Ok(Sent::NotAnObject)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Sent<T>, E> {
                Ok(Sent::NotAnObject)
            }

            fn visit_str<E>(self, _: &str) -> Result<Sent<T>, E> {
                Ok(Sent::NotAnObject)
            }
        }

        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// Which media type the client asked for; `None` when it accepts neither.
fn negotiate(headers: &HeaderMap) -> Option<&'static str> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(JSON);
    };
    let types = || {
        accept
            .split(',')
            .map(|t| t.split(';').next().unwrap_or_default().trim())
    };
    if types().any(|t| t == GRAPHQL_RESPONSE) {
        Some(GRAPHQL_RESPONSE)
    } else if types().any(|t| t == JSON || t == "*/*" || t == "application/*") {
        Some(JSON)
    } else {
        None
    }
}

fn error_response(status: StatusCode, media: &'static str, message: &str, code: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(media))],
        body.to_string(),
    )
        .into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// `GET /graphql`: a WebSocket upgrade (subscriptions), GraphiQL for a browser, or a query.
pub async fn graphiql_or_get(
    State(endpoint): State<GraphqlEndpoint>,
    client: ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let client = client_addr(&endpoint, client, &parts.headers);
    let is_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        return super::ws::upgrade(endpoint, client, &mut parts).await;
    }
    let headers = std::mem::take(&mut parts.headers);
    let Ok(UrlQuery(params)) = UrlQuery::<GetParams>::try_from_uri(&parts.uri) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if params.query.is_none() && wants_html(&headers) {
        if !endpoint.state.settings.graphql.graphiql {
            return StatusCode::NOT_FOUND.into_response();
        }
        return Html(GraphiQLSource::build().endpoint("/graphql").finish()).into_response();
    }
    let Some(media) = negotiate(&headers) else {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    };
    let variables = match json_param(params.variables.as_deref(), "variables", media) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let extensions = match json_param(params.extensions.as_deref(), "extensions", media) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let body = PostBody {
        query: params.query,
        operation_name: params.operation_name,
        variables,
        extensions,
    };
    execute(&endpoint, client, &headers, Method::GET, body, media).await
}

/// A JSON-encoded GET parameter (`variables`, `extensions`).
fn json_param<'a, T: Deserialize<'a>>(
    raw: Option<&'a str>,
    what: &str,
    media: &'static str,
) -> Result<Sent<T>, Box<Response>> {
    let Some(raw) = raw else {
        return Ok(Sent::Absent);
    };
    serde_json::from_str(raw).map_err(|_| {
        Box::new(error_response(
            StatusCode::BAD_REQUEST,
            media,
            &format!("{what} is not valid JSON"),
            code::BAD_USER_INPUT,
        ))
    })
}

pub async fn post(
    State(endpoint): State<GraphqlEndpoint>,
    client: ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    // The headers are taken out of the request rather than extracted, which would copy them.
    let (mut parts, body) = request.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let body = match Bytes::from_request(axum::extract::Request::from_parts(parts, body), &()).await
    {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(media) = negotiate(&headers) else {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case(JSON)
        });
    if !json {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "Content-Type must be application/json",
            code::BAD_USER_INPUT,
        );
    }
    let body: PostBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                "body is not a valid GraphQL request",
                code::BAD_USER_INPUT,
            );
        }
    };
    execute(
        &endpoint,
        client_addr(&endpoint, client, &headers),
        &headers,
        Method::POST,
        body,
        media,
    )
    .await
}

fn client_addr(
    endpoint: &GraphqlEndpoint,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: &HeaderMap,
) -> ClientAddr {
    let proxies = &endpoint.state.settings.http.trusted_proxies;
    ClientAddr(proxies.client(peer.ip(), headers))
}

async fn execute(
    endpoint: &GraphqlEndpoint,
    client: ClientAddr,
    headers: &HeaderMap,
    method: Method,
    body: PostBody,
    media: &'static str,
) -> Response {
    // Anything but a map is a malformed request, refused before a persisted query is looked up
    // or anything runs.
    for (what, malformed) in [
        ("variables", matches!(body.variables, Sent::NotAnObject)),
        ("extensions", matches!(body.extensions, Sent::NotAnObject)),
    ] {
        if malformed {
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                &format!("{what} must be an object"),
                code::BAD_USER_INPUT,
            );
        }
    }
    let extensions = match body.extensions {
        Sent::Object(extensions) => Some(extensions),
        _ => None,
    };
    let query = match endpoint
        .documents
        .resolve(body.query.as_deref(), extensions.as_ref())
    {
        None => body.query,
        Some(Persisted::Query(text)) => Some(text),
        // Apollo clients stop using persisted queries after a 400, so "not found" stays a 200
        // whatever the media type: the client then sends the text.
        Some(Persisted::Refused(message, code::PERSISTED_QUERY_NOT_FOUND)) => {
            return error_response(
                StatusCode::OK,
                media,
                message,
                code::PERSISTED_QUERY_NOT_FOUND,
            );
        }
        Some(Persisted::Refused(message, code)) => {
            return error_response(StatusCode::BAD_REQUEST, media, message, code);
        }
    };
    let Some(query) = query.filter(|q| !q.trim().is_empty()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            media,
            "query is missing",
            code::BAD_USER_INPUT,
        );
    };
    // A query seen before skips the parser (and, where it can, full validation); a new one is
    // parsed here so that it can be remembered once it has run without a request error.
    let (mut request, known, unseen) = match endpoint.documents.parsed(&query) {
        // The gateway takes the document from `known`.
        Some(known) => (async_graphql::Request::new(query), Some(known), None),
        None => {
            let mut request = async_graphql::Request::new(query.clone());
            let unseen = async_graphql::parser::parse_query(&query).ok().map(|doc| {
                request.set_parsed_query(doc.clone());
                (query, doc)
            });
            (request, None, unseen)
        }
    };
    if let Some(name) = body.operation_name {
        request = request.operation_name(name);
    }
    if let Sent::Object(values) = body.variables {
        let mut variables = async_graphql::Variables::default();
        *variables = values;
        request = request.variables(variables);
    }
    if let Some(ext) = extensions {
        for (k, v) in ext {
            if let Ok(value) = async_graphql::Value::from_json(v) {
                request.extensions.insert(k, value);
            }
        }
    }
    // Mutations over GET would let a link or an <img> change state.
    if method == Method::GET && !is_query(&mut request, known.as_deref()) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, HeaderValue::from_static("POST"))],
        )
            .into_response();
    }
    let viewer = match presented_key(headers) {
        None => None,
        Some(key) => {
            let state = &endpoint.state;
            match state
                .guards
                .key_cache
                .authenticate(&state.store.db, &key)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, "API key lookup failed");
                    return error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        media,
                        "internal server error",
                        code::INTERNAL_SERVER_ERROR,
                    );
                }
            }
        }
    };
    if let Some(v) = &viewer {
        let loaders = Loaders {
            db: endpoint.state.store.reads.clone(),
            organization_id: v.organization_id,
        };
        // The cache lives for this request only, so it never serves another tenant or stale rows.
        request = request.data(RequestLoader::with_cache(
            loaders,
            tokio::spawn,
            HashMapCache::default(),
        ));
    }
    request = request.data(viewer);
    request = request.data(client);
    if known.as_ref().is_some_and(|k| k.mergeless) {
        request = request.data(RenderJson);
    }
    let gateway = &endpoint.gateway;
    let response = match &known {
        Some(known) => gateway.execute_known(request, known).await,
        None => async_graphql::Executor::execute(gateway, request).await,
    };
    let request_error = is_request_error(&response);
    if let Some((query, doc)) = unseen
        && !request_error
    {
        let uses = gateway.uses(&doc);
        let mergeless = mergeless(&doc);
        let direct = gateway.runs_directly(&doc);
        endpoint.documents.remember(
            query,
            Known {
                doc,
                uses,
                mergeless,
                direct,
            },
        );
    }
    render(response, request_error, media)
}

/// A request error (parse, validation, variables) leaves no `data`; field errors carry a path.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// Whether the operation to run is a query (a parse error, or no operation to run, is
/// reported by `execute` later).
fn is_query(request: &mut async_graphql::Request, known: Option<&Known>) -> bool {
    use async_graphql::parser::types::OperationType;
    let name = request.operation_name.clone();
    let doc = match known {
        Some(known) => &known.doc,
        None => match request.parsed_query() {
            Ok(doc) => doc,
            Err(_) => return true,
        },
    };
    super::selected_operation(doc, name.as_deref())
        .is_none_or(|(_, op)| op.node.ty == OperationType::Query)
}

/// The response in the negotiated media type: a request error without `data`, and with 400
/// under `application/graphql-response+json`.
fn render(
    mut response: async_graphql::Response,
    request_error: bool,
    media: &'static str,
) -> Response {
    let (status, body) = if request_error {
        response.errors.iter_mut().for_each(classify_request_error);
        let status = if media == GRAPHQL_RESPONSE {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        (
            status,
            serde_json::to_vec(&json!({ "errors": response.errors })),
        )
    } else {
        (StatusCode::OK, response_body(&response))
    };
    let body = body.unwrap_or_else(|e| {
        tracing::error!(error = %e, "response serialization failed");
        br#"{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#.to_vec()
    });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(media))],
        body,
    )
        .into_response()
}
