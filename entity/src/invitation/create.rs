//! Creating invitations: one, or a bulk batch that is all or nothing.

use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use super::rules::check_input;
use crate::activity::{self, Actor, EventExtra};
use crate::crypto::{Keyring, Slot, generate_token, hash_token};
use crate::entities::{companies, connections, invitations};
use crate::scope::find_owned;
use crate::work::{Command, Stored, Work};
use crate::{
    DeliveryKind, DomainError, EventType, InvitationStatus, InvitationType, StringList, email, now,
};

use super::CreateInvitation;
use crate::outbox::email::{SendQuota, check_quota};

/// Creates invitations with their `CREATED` events and, where `sendEmail` asks for it, their
/// invitation emails. A bulk batch names the failing item in errors (`inputs[3].maxUses`).
pub struct Create<'a> {
    pub keys: &'a Keyring,
    pub actor: Actor,
    pub items: Vec<CreateInvitation>,
    pub bulk: bool,
    pub email_quota: SendQuota,
}

impl Command for Create<'_> {
    type Output = Vec<invitations::Model>;

    async fn execute(&self, work: &Work) -> Result<Self::Output, DomainError> {
        let mut created = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            let c = create(work, self.keys, item.clone(), &self.actor).await;
            created.push(match c {
                Ok(c) => c.invitation,
                Err(e) if self.bulk => return Err(e.within(&format!("inputs[{i}]."))),
                Err(e) => return Err(e),
            });
        }
        if let Some(first) = created.first()
            && self.items.iter().any(|i| i.send_email)
        {
            check_quota(work, first.organization_id, self.email_quota).await?;
        }
        Ok(created)
    }
}

/// Invitation results are stored under an idempotency key as their ids and read again on
/// replay, so a replay shows their current state.
impl Stored for Vec<invitations::Model> {
    fn to_stored(&self) -> Value {
        let ids: Vec<Uuid> = self.iter().map(|r| r.id).collect();
        json!({ "invitationIds": ids })
    }

    async fn from_stored(
        work: &Work,
        organization_id: Uuid,
        stored: Value,
    ) -> Result<Self, DomainError> {
        let ids: Vec<Uuid> =
            serde_json::from_value(stored["invitationIds"].clone()).unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(find_owned::<invitations::Entity>(work.txn(), organization_id, id).await?);
        }
        Ok(out)
    }
}

/// A created invitation with its token, which exists in clear only here.
pub struct Created {
    pub invitation: invitations::Model,
    pub token: String,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("invitation", &self.invitation)
            .finish_non_exhaustive()
    }
}

/// Creates one invitation, records `CREATED` and writes its emails, in the caller's unit of work.
pub async fn create(
    work: &Work,
    keys: &Keyring,
    input: CreateInvitation,
    actor: &Actor,
) -> Result<Created, DomainError> {
    let at = now();
    let org = input.organization_id;
    let (invitation_type, company_id, connection_id) = match (input.company_id, input.connection_id)
    {
        (Some(company_id), None) => {
            find_owned::<companies::Entity>(work.txn(), org, company_id).await?;
            (InvitationType::CreateConnection, company_id, None)
        }
        (None, Some(connection_id)) => {
            let connection =
                find_owned::<connections::Entity>(work.txn(), org, connection_id).await?;
            (
                InvitationType::EditConnection,
                connection.company_id,
                Some(connection_id),
            )
        }
        _ => {
            return Err(DomainError::invalid(
                "companyId",
                "give exactly one of companyId (contributor) or connectionId (reconnect)",
            ));
        }
    };
    let mut checked = check_input(&input, invitation_type, at)?;
    crate::company::check_sites(
        work.txn(),
        org,
        company_id,
        &checked.prefill.initial_sites,
        "prefill.initialSites",
    )
    .await?;
    if let Some(owner) = checked.prefill.connection_owner_email.take() {
        checked.prefill.connection_owner_email = email::normalize(&owner).ok();
    }

    let token = generate_token();
    let id = Uuid::now_v7();
    let row = invitations::ActiveModel {
        id: Set(id),
        organization_id: Set(org),
        company_id: Set(company_id),
        connection_id: Set(connection_id),
        invitation_type: Set(invitation_type),
        status: Set(InvitationStatus::Active),
        token_hash: Set(hash_token(&token)),
        token_sealed: Set(keys.seal(token.as_bytes(), &Slot::invitation_token(id))?),
        allowed_emails: Set(StringList(checked.allowed_emails)),
        expires_at: Set(checked.expires_at),
        max_uses: Set(checked.max_uses),
        use_count: Set(0),
        prefill: Set(checked.prefill),
        locked_fields: Set(StringList(checked.locked_fields)),
        remind_before_expiry_seconds: Set(checked.remind_before_expiry_seconds),
        reminder_sent_at: Set(None),
        created_by: Set(actor.label().to_owned()),
        created_at: Set(at),
        updated_at: Set(at),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        fulfilled_at: Set(None),
        expired_at: Set(None),
    }
    .insert(work.txn())
    .await?;
    super::list::index_new(work.txn(), &row).await?;
    activity::record(work, &row, EventType::Created, actor, EventExtra::default()).await?;
    if input.send_email {
        let recipients = row.allowed_emails.0.clone();
        crate::outbox::email::enqueue(
            work,
            &row,
            DeliveryKind::Invitation,
            &recipients,
            json!({}),
            None,
        )
        .await?;
    }
    Ok(Created {
        invitation: row,
        token,
    })
}
