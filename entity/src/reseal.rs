//! Binding sealed values to their row and column, for values sealed before sealing did
//! (`v1.` values carry no associated data, so a database writer could move them between rows or
//! columns). Migrations never see the secret key, so the application does this once after
//! migrating, at start, and records it in `maintenance`. Each value is replaced by a conditional
//! update (only if it is still the value read), so replicas starting together do no harm.
//! From then on only bound values open.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::crypto::{Keyring, Slot};
use crate::entities::{
    companies, connections, email_deliveries, invitations, maintenance, webhook_endpoints,
};
use crate::outbox::email::VerificationCodePayload;
use crate::{DeliveryKind, DomainError, now};

const TASK: &str = "reseal-bound-v2";
const BATCH: u64 = 500;

/// Re-seals every unbound value, once per database; returns how many were re-sealed.
pub async fn run(db: &DatabaseConnection, keys: &Keyring) -> Result<u64, DomainError> {
    if maintenance::Entity::find_by_id(TASK)
        .one(db)
        .await?
        .is_some()
    {
        return Ok(0);
    }
    let mut done = 0;
    done += column::<invitations::Entity>(
        db,
        keys,
        invitations::Column::Id,
        invitations::Column::TokenSealed,
        Slot::invitation_token,
    )
    .await?;
    done += column::<connections::Entity>(
        db,
        keys,
        connections::Column::Id,
        connections::Column::PasswordSealed,
        Slot::connection_password,
    )
    .await?;
    done += column::<connections::Entity>(
        db,
        keys,
        connections::Column::Id,
        connections::Column::EditLinkSecretSealed,
        Slot::connection_edit_link,
    )
    .await?;
    done += column::<companies::Entity>(
        db,
        keys,
        companies::Column::Id,
        companies::Column::MagicLinkSecretSealed,
        Slot::company_magic_link,
    )
    .await?;
    done += column::<webhook_endpoints::Entity>(
        db,
        keys,
        webhook_endpoints::Column::Id,
        webhook_endpoints::Column::SecretSealed,
        Slot::webhook_secret,
    )
    .await?;
    done += column::<webhook_endpoints::Entity>(
        db,
        keys,
        webhook_endpoints::Column::Id,
        webhook_endpoints::Column::PreviousSecretSealed,
        Slot::webhook_previous_secret,
    )
    .await?;
    done += codes(db, keys).await?;
    maintenance::Entity::insert(maintenance::ActiveModel {
        name: Set(TASK.to_owned()),
        done_at: Set(now()),
    })
    .on_conflict_do_nothing_on([maintenance::Column::Name])
    .exec_without_returning(db)
    .await?;
    Ok(done)
}

/// One sealed text column, in batches by id.
async fn column<E: EntityTrait>(
    db: &DatabaseConnection,
    keys: &Keyring,
    id: E::Column,
    sealed: E::Column,
    slot: fn(Uuid) -> Slot,
) -> Result<u64, DomainError> {
    let mut done = 0;
    let mut last: Option<Uuid> = None;
    loop {
        let mut query = E::find()
            .select_only()
            .column(id)
            .column(sealed)
            .filter(sealed.like("v1.%"));
        if let Some(last) = last {
            query = query.filter(id.gt(last));
        }
        let rows: Vec<(Uuid, String)> = query
            .order_by_asc(id)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some((tail, _)) = rows.last() else {
            return Ok(done);
        };
        last = Some(*tail);
        for (row, old) in rows {
            // A value this key cannot open stays as it is: it could not be read before either.
            let Ok(plain) = keys.open_unbound(&old) else {
                continue;
            };
            let new = keys.seal(&plain, &slot(row))?;
            done += E::update_many()
                .col_expr(sealed, Expr::value(new))
                .filter(id.eq(row))
                .filter(sealed.eq(old))
                .exec(db)
                .await?
                .rows_affected;
        }
    }
}

/// The codes in verification-code deliveries' payloads.
async fn codes(db: &DatabaseConnection, keys: &Keyring) -> Result<u64, DomainError> {
    let mut done = 0;
    let mut last: Option<Uuid> = None;
    loop {
        let mut query = email_deliveries::Entity::find()
            .filter(email_deliveries::Column::Kind.eq(DeliveryKind::VerificationCode));
        if let Some(last) = last {
            query = query.filter(email_deliveries::Column::Id.gt(last));
        }
        let rows = query
            .order_by_asc(email_deliveries::Column::Id)
            .limit(BATCH)
            .all(db)
            .await?;
        let Some(tail) = rows.last() else {
            return Ok(done);
        };
        last = Some(tail.id);
        for row in rows {
            let Ok(mut payload) = VerificationCodePayload::from_json(&row.payload) else {
                continue;
            };
            if !Keyring::is_unbound(&payload.sealed_code) {
                continue;
            }
            let Ok(code) = keys.open_unbound(&payload.sealed_code) else {
                continue;
            };
            let slot = Slot::verification_code(row.invitation_id, &row.recipient);
            payload.sealed_code = keys.seal(&code, &slot)?;
            done += email_deliveries::Entity::update_many()
                .col_expr(
                    email_deliveries::Column::Payload,
                    Expr::value(payload.to_json()),
                )
                .filter(email_deliveries::Column::Id.eq(row.id))
                .exec(db)
                .await?
                .rows_affected;
        }
    }
}
