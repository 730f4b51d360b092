//! Raw SQL that the application sends, with its values written into the text: for `EXPLAIN` in
//! tests and for pgbench scripts in benchmarks, so both run exactly what the server runs.
//! (Statements built by sea-query inline their values with `to_string` instead.)

use sea_orm::sea_query::{PostgresQueryBuilder, QueryBuilder, SqliteQueryBuilder};
use sea_orm::{DatabaseBackend, Statement, Value};

/// A value as an SQL literal of `backend`: sea-query's, except UUIDs on SQLite, which the
/// driver binds as 16-byte blobs.
fn literal(backend: DatabaseBackend, value: &Value) -> String {
    match (backend, value) {
        (DatabaseBackend::Sqlite, Value::Uuid(Some(u))) => format!("X'{}'", u.simple()),
        (DatabaseBackend::Postgres, v) => PostgresQueryBuilder.value_to_string(v),
        (_, v) => SqliteQueryBuilder.value_to_string(v),
    }
}

/// `statement` with every placeholder (`$n` on PostgreSQL, `?` on SQLite) replaced by its value.
pub fn inline(statement: &Statement) -> String {
    let values = statement
        .values
        .as_ref()
        .map(|v| v.0.clone())
        .unwrap_or_default();
    let backend = statement.db_backend;
    match backend {
        DatabaseBackend::Postgres => {
            let mut sql = statement.sql.clone();
            // Highest numbers first, so $1 does not replace the start of $12.
            for (i, v) in values.iter().enumerate().rev() {
                sql = sql.replace(&format!("${}", i + 1), &literal(backend, v));
            }
            sql
        }
        _ => {
            let mut parts = statement.sql.split('?');
            let mut sql = parts.next().unwrap_or_default().to_owned();
            for (part, v) in parts.zip(&values) {
                sql.push_str(&literal(backend, v));
                sql.push_str(part);
            }
            sql
        }
    }
}
