//! `/healthz` (the process answers) and `/readyz` (its dependencies answer).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::state::{Outbound, Store};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The public `/readyz`: the database and Redis (when configured).
pub async fn readyz(
    State(store): State<Arc<Store>>,
    State(outbound): State<Arc<Outbound>>,
) -> (StatusCode, Json<Value>) {
    check(&store, &outbound, false).await
}

/// `/readyz` on `METRICS_ADDR`: also the mail server when this process runs the workers (a
/// worker that cannot reach it cannot do its job).
pub async fn readyz_ops(State(ops): State<Ops>) -> (StatusCode, Json<Value>) {
    check(&ops.store, &ops.outbound, ops.workers).await
}

/// What the operations listener serves from.
#[derive(Clone)]
pub struct Ops {
    pub store: Arc<Store>,
    pub outbound: Arc<Outbound>,
    pub workers: bool,
}

async fn check(store: &Store, outbound: &Outbound, smtp: bool) -> (StatusCode, Json<Value>) {
    let database = tokio::time::timeout(CHECK_TIMEOUT, store.db.execute_unprepared("SELECT 1"))
        .await
        .is_ok_and(|r| r.is_ok());
    let redis = match &outbound.redis {
        None => None,
        Some(conn) => {
            let mut conn = conn.clone();
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            Some(
                tokio::time::timeout(CHECK_TIMEOUT, ping)
                    .await
                    .is_ok_and(|r| r.is_ok()),
            )
        }
    };
    let smtp = if smtp {
        tokio::time::timeout(CHECK_TIMEOUT, outbound.mailer.reachable())
            .await
            .unwrap_or(Some(false))
    } else {
        None
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let ready = database && redis.unwrap_or(true) && smtp.unwrap_or(true);
    let mut body = json!({
        "status": word(ready),
        "database": word(database),
        "redis": redis.map_or("not configured", word),
    });
    if let Some(smtp) = smtp {
        body["smtp"] = json!(word(smtp));
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
