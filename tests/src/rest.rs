//! A small REST client for the tests: JSON in, status, headers and JSON out.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A client for the REST API at `base`, optionally with an API key (`X-API-Key`).
#[derive(Clone, Debug)]
pub struct Rest {
    base: String,
    key: Option<String>,
    client: reqwest::Client,
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct RestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// The JSON body (`Null` when empty, a JSON string holding the raw text if not JSON).
    pub body: Value,
}

impl RestResponse {
    /// The body's error `code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }

    /// Asserts the status, code and field of an error answer.
    pub fn assert_error(&self, status: u16, code: &str, field: Option<&str>) {
        assert_eq!(self.status, status, "unexpected answer: {:?}", self.body);
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected answer: {:?}",
            self.body
        );
        assert_eq!(self.body["field"].as_str(), field, "{:?}", self.body);
        assert!(self.body["detail"].is_string(), "{:?}", self.body);
    }
}

impl Rest {
    pub fn new(base: &str, key: Option<&str>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key: key.map(str::to_owned),
            client: crate::graphql::client(),
        }
    }

    /// Sends `method path` with `headers`, and `body` as `application/json` when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> RestResponse {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("x-api-key", key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("REST request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("REST body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        RestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> RestResponse {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> RestResponse {
        self.send(Method::POST, path, Some(body), &[]).await
    }
}
