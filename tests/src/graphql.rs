//! A small GraphQL-over-HTTP client for the tests.

use std::time::Duration;

use serde_json::{Value, json};

/// A GraphQL client for `{base}/graphql`, optionally with an API key (`X-API-Key`).
#[derive(Clone, Debug)]
pub struct Gql {
    base: String,
    headers: Vec<(String, String)>,
    client: reqwest::Client,
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct GqlResponse {
    /// HTTP status code.
    pub status: u16,
    /// The JSON body (a JSON string holding the raw text if the body was not JSON).
    pub body: Value,
    /// The `Content-Type` of the response, if any.
    pub content_type: Option<String>,
}

/// The HTTP client of the test clients: no proxy, a 30 s bound on every request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

impl Gql {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:1234`), without credentials.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            headers: Vec::new(),
            client: client(),
        }
    }

    /// A copy that sends `X-API-Key: key` (replacing any earlier key).
    pub fn with_api_key(&self, key: &str) -> Self {
        self.with_header("x-api-key", key)
    }

    /// A copy that also sends `Authorization: Bearer key`.
    pub fn with_bearer(&self, key: &str) -> Self {
        self.with_header("authorization", &format!("Bearer {key}"))
    }

    /// A copy that sends the header `name: value` (replacing a header of the same name).
    pub fn with_header(&self, name: &str, value: &str) -> Self {
        let mut copy = self.clone();
        copy.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        copy.headers.push((name.to_owned(), value.to_owned()));
        copy
    }

    /// `{base}/graphql`.
    pub fn endpoint(&self) -> String {
        format!("{}/graphql", self.base)
    }

    /// POSTs `{"query", "variables"}` as `application/json`, accepting
    /// `application/graphql-response+json, application/json`. Panics if the server cannot be
    /// reached (GraphQL and HTTP errors are returned, not panicked on).
    pub async fn query(&self, query: &str, variables: Value) -> GqlResponse {
        self.post(json!({ "query": query, "variables": variables }))
            .await
    }

    /// Like [`Gql::query`] with an `operationName`.
    pub async fn query_named(
        &self,
        query: &str,
        operation_name: &str,
        variables: Value,
    ) -> GqlResponse {
        self.post(
            json!({ "query": query, "operationName": operation_name, "variables": variables }),
        )
        .await
    }

    /// POSTs an arbitrary JSON request body to the endpoint (same headers as [`Gql::query`]).
    pub async fn post(&self, body: Value) -> GqlResponse {
        let mut request = self
            .client
            .post(self.endpoint())
            .header("content-type", "application/json")
            .header(
                "accept",
                "application/graphql-response+json, application/json",
            )
            .body(body.to_string());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GraphQL request to {} failed: {e}", self.endpoint()));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_else(|e| {
            panic!(
                "reading the GraphQL response from {} failed: {e}",
                self.endpoint()
            )
        });
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        GqlResponse {
            status,
            body,
            content_type,
        }
    }
}

impl GqlResponse {
    /// `data`, after asserting there were no errors (the errors and status are printed).
    pub fn data(&self) -> &Value {
        let errors = self.errors();
        assert!(
            errors.is_empty(),
            "unexpected GraphQL errors (HTTP {}): {}",
            self.status,
            Value::Array(errors)
        );
        assert!(
            self.body.get("data").is_some(),
            "GraphQL response without data (HTTP {}): {}",
            self.status,
            self.body
        );
        &self.body["data"]
    }

    /// The `errors` array (empty when there is none).
    pub fn errors(&self) -> Vec<Value> {
        self.body["errors"].as_array().cloned().unwrap_or_default()
    }

    /// `extensions.code` of the first error.
    pub fn error_code(&self) -> Option<String> {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned)
    }

    /// `extensions.field` of the first error.
    pub fn error_field(&self) -> Option<String> {
        self.body["errors"][0]["extensions"]["field"]
            .as_str()
            .map(str::to_owned)
    }

    /// `message` of the first error.
    pub fn error_message(&self) -> Option<String> {
        self.body["errors"][0]["message"]
            .as_str()
            .map(str::to_owned)
    }

    /// Every error's `extensions.code`, in order (`""` where missing).
    pub fn error_codes(&self) -> Vec<String> {
        self.errors()
            .iter()
            .map(|e| {
                e["extensions"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// Asserts the first error's code (and field, when given), printing the body otherwise.
    pub fn assert_error(&self, code: &str, field: Option<&str>) {
        assert_eq!(self.error_code().as_deref(), Some(code), "{}", self.body);
        if let Some(field) = field {
            assert_eq!(self.error_field().as_deref(), Some(field), "{}", self.body);
        }
    }
}
