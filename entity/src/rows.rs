//! The read path's rows decoded straight from PostgreSQL.
//!
//! sea-orm decodes a row column by column by name: each read hashes the column's name, checks
//! the column's type against the Rust type, and an optional column that is NULL first becomes
//! an error whose message is formatted (`{:?}` of the column name) and then thrown away. Under
//! callgrind that was over a third of the instructions of a page of twenty invitations with five
//! events each, the formatting alone about a tenth. Here the positions of an entity's columns are
//! found once per result set, and every row is read by position without the type check (the
//! statement selected the entity's own columns, so their types are the model's; a test compares
//! both decodings of full and sparse rows). SQLite rows go through sea-orm as before.

use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::types::Json;
use sea_orm::sqlx::{Column, Decode, Postgres, Row};
use sea_orm::{ActiveEnum, DbErr, EntityTrait, FromQueryResult, IdenStatic, Iterable, QueryResult};
use serde::de::DeserializeOwned;

use crate::entities::{invitation_events, invitations};

/// A model read from a PostgreSQL row by position.
pub trait FromPgRow: FromQueryResult + Sized {
    type Entity: EntityTrait;

    /// Reads the model's fields, each with one call on `columns`, in the order the entity
    /// declares its columns (a struct literal written in field order evaluates in that order).
    fn from_pg_row(columns: &mut Columns<'_>) -> Result<Self, DbErr>;
}

/// The columns of one row, read one after another in the entity's column order.
pub struct Columns<'r> {
    row: &'r PgRow,
    positions: std::slice::Iter<'r, usize>,
}

impl<'r> Columns<'r> {
    fn position(&mut self) -> Result<usize, DbErr> {
        self.positions
            .next()
            .copied()
            .ok_or_else(|| DbErr::Type("a model read more columns than its entity has".into()))
    }

    /// The next column, as a type its database type decodes to (`Option` for a nullable one).
    pub fn read<T: Decode<'r, Postgres>>(&mut self) -> Result<T, DbErr> {
        let position = self.position()?;
        self.row
            .try_get_unchecked(position)
            .map_err(|e| DbErr::Type(e.to_string()))
    }

    /// The next column, a string enum.
    pub fn read_enum<E: ActiveEnum<Value = String>>(&mut self) -> Result<E, DbErr> {
        E::try_from_value(&self.read::<String>()?)
    }

    /// The next column, a JSON document.
    pub fn read_json<T: DeserializeOwned + 'r>(&mut self) -> Result<T, DbErr> {
        Ok(self.read::<Json<T>>()?.0)
    }
}

/// Where each of `E`'s columns is in the rows of a result set. A statement of ours selects an
/// entity's columns in their declared order, so each column is first looked for where that
/// order puts it (one comparison of names), and by name only when it is not there. Under
/// callgrind the lookups by name were about half of decoding a point lookup's row (5.2k of 10.9k
/// instructions); this costs 1.4k.
fn positions<E: EntityTrait>(row: &PgRow) -> Result<Vec<usize>, DbErr> {
    let selected = row.columns();
    let mut positions = Vec::with_capacity(E::Column::iter().len());
    for (expected, column) in E::Column::iter().enumerate() {
        let name = column.as_str();
        let position = match selected.get(expected) {
            Some(found) if found.name() == name => expected,
            _ => column_at(row, name)?,
        };
        positions.push(position);
    }
    Ok(positions)
}

/// Where the column `name` is in the rows of `row`'s result set, found by name.
pub fn column_at(row: &PgRow, name: &str) -> Result<usize, DbErr> {
    row.try_column(name)
        .map(|c| c.ordinal())
        .map_err(|e| DbErr::Type(e.to_string()))
}

/// Models of PostgreSQL rows of one result set, by position.
pub fn decode_pg<'r, M: FromPgRow, I>(rows: I) -> Result<Vec<M>, DbErr>
where
    I: IntoIterator<Item = &'r PgRow>,
    I::IntoIter: ExactSizeIterator,
{
    let mut rows = rows.into_iter().peekable();
    let Some(first) = rows.peek() else {
        return Ok(Vec::new());
    };
    let positions = positions::<M::Entity>(first)?;
    // Sized once: collecting `Result`s gives the vector no size hint, and it would grow (and
    // move every model read so far) several times over a page of events.
    let mut models = Vec::with_capacity(rows.len());
    for row in rows {
        models.push(M::from_pg_row(&mut Columns {
            row,
            positions: positions.iter(),
        })?);
    }
    Ok(models)
}

/// Models of the rows of one result set of any backend: PostgreSQL's by position, others
/// through sea-orm.
pub fn decode<M: FromPgRow>(rows: &[QueryResult]) -> Result<Vec<M>, DbErr> {
    let mut pg = Vec::with_capacity(rows.len());
    for row in rows {
        match row.try_as_pg_row() {
            Some(row) => pg.push(row),
            None => {
                return rows
                    .iter()
                    .map(|row| M::from_query_result(row, ""))
                    .collect();
            }
        }
    }
    decode_pg::<M, _>(pg)
}

impl FromPgRow for invitations::Model {
    type Entity = invitations::Entity;

    fn from_pg_row(c: &mut Columns<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: c.read()?,
            organization_id: c.read()?,
            company_id: c.read()?,
            connection_id: c.read()?,
            invitation_type: c.read_enum()?,
            status: c.read_enum()?,
            token_hash: c.read()?,
            token_sealed: c.read()?,
            allowed_emails: c.read_json()?,
            expires_at: c.read()?,
            max_uses: c.read()?,
            use_count: c.read()?,
            prefill: c.read_json()?,
            locked_fields: c.read_json()?,
            remind_before_expiry_seconds: c.read()?,
            reminder_sent_at: c.read()?,
            created_by: c.read()?,
            created_at: c.read()?,
            updated_at: c.read()?,
            revoked_at: c.read()?,
            revoked_reason: c.read()?,
            fulfilled_at: c.read()?,
            expired_at: c.read()?,
        })
    }
}

impl FromPgRow for invitation_events::Model {
    type Entity = invitation_events::Entity;

    fn from_pg_row(c: &mut Columns<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: c.read()?,
            invitation_id: c.read()?,
            organization_id: c.read()?,
            company_id: c.read()?,
            event_type: c.read_enum()?,
            occurred_at: c.read()?,
            email: c.read()?,
            connection_id: c.read()?,
            actor: c.read()?,
            detail: c.read_json()?,
            position: c.read()?,
        })
    }
}
