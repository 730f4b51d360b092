use crate::pg::{Backend, TestDatabase};
use sea_orm::ConnectionTrait;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_pg_redis() {
    let name;
    {
        let db = TestDatabase::new(Backend::Postgres).await;
        name = db.name().to_owned();
        eprintln!("{db:?} {}", db.url());
        let conn = db.connect().await;
        conn.execute_unprepared("CREATE TABLE x (id int)")
            .await
            .unwrap();
        // keep conn open during drop to test FORCE
        std::mem::forget(conn);
    }
    let admin = sea_orm::Database::connect(crate::pg::admin_url())
        .await
        .unwrap();
    let row = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!("SELECT COUNT(*) AS n FROM pg_database WHERE datname = '{name}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0, "database dropped");
    let s = TestDatabase::sqlite();
    let c = s.connect().await;
    c.execute_unprepared("CREATE TABLE x (id int)")
        .await
        .unwrap();
    let dir = std::path::Path::new(s.name()).parent().unwrap().to_owned();
    drop(c);
    drop(s);
    assert!(!dir.exists());
    let url = crate::redis_env::redis_url();
    crate::redis_env::require_redis(&url).await;
    let p = crate::redis_env::unique_prefix();
    let mut conn = crate::redis_env::connect(&url).await;
    let _: () = redis::cmd("SET")
        .arg(format!("{p}a"))
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        crate::redis_env::keys_with_prefix(&url, &p).await,
        vec![format!("{p}a")]
    );
    assert_eq!(crate::redis_env::delete_prefix(&url, &p).await, 1);
    let mut n = 0;
    let v = crate::poll::eventually("n to reach 3", Duration::from_secs(2), || {
        n += 1;
        let k = n;
        async move { (k >= 3).then_some(k) }
    })
    .await;
    assert_eq!(v, 3);
    let r: Result<(), String> = Err("nope".into());
    let res = tokio::spawn(async move {
        crate::poll::eventually("never", Duration::from_millis(200), || {
            let r = r.clone();
            async move { r }
        })
        .await
    })
    .await;
    let msg = *res.unwrap_err().into_panic().downcast::<String>().unwrap();
    eprintln!("{msg}");
    assert!(msg.contains("never") && msg.contains("nope"));
    let r =
        tokio::spawn(async { crate::redis_env::require_redis("redis://127.0.0.1:1").await }).await;
    eprintln!(
        "{}",
        r.unwrap_err().into_panic().downcast::<String>().unwrap()
    );
    let r = tokio::spawn(async {
        unsafe_env();
        TestDatabase::postgres().await;
    })
    .await;
    eprintln!(
        "{}",
        r.unwrap_err().into_panic().downcast::<String>().unwrap()
    );
    let g = crate::graphql::Gql::new("http://127.0.0.1:1").with_api_key("k");
    let r = tokio::spawn(async move {
        g.query("{ a }", serde_json::json!({})).await;
    })
    .await;
    eprintln!(
        "{}",
        r.unwrap_err().into_panic().downcast::<String>().unwrap()
    );
}
fn unsafe_env() {}
