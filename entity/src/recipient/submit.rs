//! What a recipient submits, merged with the invitation's prefill, and the use it counts.

use sea_orm::{ActiveModelTrait, Set};
use uuid::Uuid;

use super::check_grant;
use super::find_active;
use crate::activity::{Actor, EventExtra};
use crate::company::{ConnectionDetails, create_connection, seal_credentials};
use crate::crypto::Keyring;
use crate::entities::{connections, invitations};
use crate::invitation::record_use;
use crate::scope::find_owned;
use crate::work::{Command, Work};
use crate::{ConnectionStatus, DomainError, InvitationType, UtilityType, email, now};

/// What the recipient submits. Contributor submits use every field; reconnect submits only the
/// credentials and the MFA choice.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub datasource_id: Option<String>,
    pub provider_url: Option<String>,
    pub provider_name: Option<String>,
    pub country: Option<String>,
    pub utility_types: Option<Vec<UtilityType>>,
    pub site_ids: Option<Vec<Uuid>>,
    pub owner_email: Option<String>,
    pub data_collection_start_date: Option<chrono::NaiveDate>,
    pub utility_username: String,
    pub utility_password: String,
    /// `None` keeps what the connection has (reconnect) or leaves it off (new connection).
    pub mfa_forwarding: Option<bool>,
}

/// A submission taken as it is (no invitation prefill to merge): legacy links and connections
/// the organization registers itself.
impl From<Submission> for ConnectionDetails {
    fn from(input: Submission) -> Self {
        Self {
            datasource_id: input.datasource_id,
            provider_name: input.provider_name,
            provider_url: input.provider_url,
            country: input.country,
            utility_types: input.utility_types.unwrap_or_default(),
            site_ids: input.site_ids.unwrap_or_default(),
            owner_email: input.owner_email,
            data_collection_start_date: input.data_collection_start_date,
            utility_username: input.utility_username,
            utility_password: input.utility_password,
            mfa_forwarding: input.mfa_forwarding.unwrap_or(false),
        }
    }
}

/// Merges one field: a locked field keeps its prefilled value, and a submitted value that
/// differs from it (or any value, when the organization locked the field empty) is refused;
/// otherwise the submitted value wins, else the prefilled one.
fn merge<T: PartialEq>(
    field: &str,
    locked: &[String],
    prefilled: Option<T>,
    submitted: Option<T>,
) -> Result<Option<T>, DomainError> {
    merge_by(field, locked, prefilled, submitted, |a, b| a == b)
}

fn merge_by<T>(
    field: &str,
    locked: &[String],
    prefilled: Option<T>,
    submitted: Option<T>,
    same: impl Fn(&T, &T) -> bool,
) -> Result<Option<T>, DomainError> {
    if !locked.iter().any(|l| l == field) {
        return Ok(submitted.or(prefilled));
    }
    match (prefilled, submitted) {
        (Some(p), Some(s)) if !same(&p, &s) => Err(DomainError::invalid(
            field,
            "this field is locked by the organization",
        )),
        (None, Some(_)) => Err(DomainError::invalid(
            field,
            "this field is locked by the organization and must stay empty",
        )),
        (p, _) => Ok(p),
    }
}

/// [`merge`] for a list that is a set (utility types, sites): order and repeats do not count,
/// so a locked `[GAS, ELECTRICITY]` accepts `[ELECTRICITY, GAS]`. An empty list counts as no
/// value, so a form that sends every list (empty or not) passes a field locked empty.
fn merge_set<T: PartialEq + Clone>(
    field: &str,
    locked: &[String],
    prefilled: &[T],
    submitted: Option<Vec<T>>,
) -> Result<Vec<T>, DomainError> {
    let is_locked = locked.iter().any(|l| l == field);
    let submitted = submitted.filter(|s| !is_locked || !s.is_empty());
    let prefilled = (!prefilled.is_empty()).then(|| prefilled.to_vec());
    let same =
        |a: &Vec<T>, b: &Vec<T>| a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x));
    Ok(merge_by(field, locked, prefilled, submitted, same)?.unwrap_or_default())
}

/// The result of a submit: the invitation after the use, and the connection.
pub struct Submitted {
    pub invitation: invitations::Model,
    pub connection: connections::Model,
}

/// Submits through an invitation: creates (contributor) or repairs (reconnect) a connection and
/// counts the use. `grant` (from the email gate) is required when the allow-list is not empty.
pub struct Submit<'a> {
    pub keys: &'a Keyring,
    pub token: String,
    pub grant: Option<String>,
    pub submission: Submission,
}

impl Command for Submit<'_> {
    type Output = Submitted;

    async fn execute(&self, work: &Work) -> Result<Submitted, DomainError> {
        let row = find_active(work.txn(), &self.token).await?;
        let verified = self
            .grant
            .as_deref()
            .map(|g| check_grant(self.keys, g, row.id))
            .transpose()?;
        submit(work, self.keys, row, verified, self.submission.clone()).await
    }
}

async fn submit(
    work: &Work,
    keys: &Keyring,
    row: invitations::Model,
    verified_email: Option<String>,
    input: Submission,
) -> Result<Submitted, DomainError> {
    if !row.allowed_emails.0.is_empty() {
        match &verified_email {
            Some(e) if row.allowed_emails.0.contains(e) => {}
            Some(_) => return Err(DomainError::EmailNotVerified("GRANT_INVALID")),
            None => return Err(DomainError::EmailNotVerified("GRANT_REQUIRED")),
        }
    }
    let connection = match row.invitation_type {
        InvitationType::CreateConnection => {
            let p = &row.prefill;
            let locked = &row.locked_fields.0;
            let sites = merge_set("initialSites", locked, &p.initial_sites, input.site_ids)?;
            let types = merge_set(
                "utilityTypes",
                locked,
                &p.utility_types,
                input.utility_types,
            )?;
            let details = ConnectionDetails {
                datasource_id: merge(
                    "datasourceId",
                    locked,
                    p.datasource_id.clone(),
                    input.datasource_id,
                )?,
                provider_url: merge("url", locked, p.url.clone(), input.provider_url)?,
                provider_name: input.provider_name,
                country: merge(
                    "country",
                    locked,
                    p.country.clone(),
                    input.country.map(|c| c.trim().to_ascii_uppercase()),
                )?,
                utility_types: types,
                site_ids: sites,
                owner_email: merge(
                    "connectionOwnerEmail",
                    locked,
                    p.connection_owner_email.clone(),
                    input
                        .owner_email
                        .map(|e| {
                            email::normalize(&e).map_err(|m| DomainError::invalid("ownerEmail", m))
                        })
                        .transpose()?,
                )?,
                data_collection_start_date: merge(
                    "dataCollectionStartDate",
                    locked,
                    p.data_collection_start_date,
                    input.data_collection_start_date,
                )?,
                utility_username: input.utility_username,
                utility_password: input.utility_password,
                mfa_forwarding: input.mfa_forwarding.unwrap_or(false),
            };
            create_connection(
                work,
                keys,
                row.organization_id,
                row.company_id,
                details,
                Some(row.id),
            )
            .await?
        }
        InvitationType::EditConnection => {
            let connection_id = row.connection_id.ok_or(DomainError::NotFound)?;
            reconnect(
                work,
                keys,
                row.organization_id,
                connection_id,
                &input,
                Some(row.id),
            )
            .await?
        }
    };
    let extra = EventExtra {
        email: verified_email,
        connection_id: Some(connection.id),
        detail: None,
    };
    let invitation = record_use(work, row.id, extra, &Actor::Recipient).await?;
    Ok(Submitted {
        invitation,
        connection,
    })
}

/// New credentials for an existing connection: it keeps its history and sites and goes back to
/// PENDING, and `connection.updated` goes to webhooks.
pub async fn reconnect(
    work: &Work,
    keys: &Keyring,
    organization_id: Uuid,
    connection_id: Uuid,
    input: &Submission,
    invitation_id: Option<Uuid>,
) -> Result<connections::Model, DomainError> {
    let txn = work.txn();
    let existing = find_owned::<connections::Entity>(txn, organization_id, connection_id).await?;
    let credentials = seal_credentials(
        keys,
        connection_id,
        &input.utility_username,
        &input.utility_password,
    )?;
    let mut active: connections::ActiveModel = existing.clone().into();
    active.utility_username = Set(Some(credentials.username));
    active.password_sealed = Set(Some(credentials.password_sealed));
    // A submit that does not mention MFA keeps the connection's choice.
    if let Some(mfa) = input.mfa_forwarding {
        active.mfa_forwarding = Set(mfa);
    }
    active.status = Set(ConnectionStatus::Pending);
    if invitation_id.is_some() {
        active.last_invitation_id = Set(invitation_id);
    }
    active.updated_at = Set(now());
    let updated = active.update(txn).await?;
    crate::webhook::events::connection_updated(work, &existing, &updated, invitation_id).await?;
    Ok(updated)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn locked_fields_keep_their_prefill() {
        let locked = vec!["country".to_owned()];
        assert_eq!(
            merge("country", &locked, Some("DE"), None).unwrap(),
            Some("DE")
        );
        assert_eq!(
            merge("country", &locked, Some("DE"), Some("DE")).unwrap(),
            Some("DE")
        );
        assert!(merge("country", &locked, Some("DE"), Some("FR")).is_err());
        assert_eq!(
            merge("url", &locked, Some("a"), Some("b")).unwrap(),
            Some("b")
        );
        assert_eq!(merge::<&str>("url", &locked, None, None).unwrap(), None);
    }

    #[test]
    fn a_field_locked_empty_stays_empty() {
        let locked = vec!["country".to_owned(), "utilityTypes".to_owned()];
        assert!(merge::<&str>("country", &locked, None, Some("FR")).is_err());
        assert_eq!(merge::<&str>("country", &locked, None, None).unwrap(), None);
        assert!(merge_set("utilityTypes", &locked, &[], Some(vec![UtilityType::Gas])).is_err());
        assert_eq!(
            merge_set::<UtilityType>("utilityTypes", &locked, &[], Some(vec![])).unwrap(),
            vec![]
        );
    }

    #[test]
    fn locked_lists_compare_as_sets() {
        use UtilityType::{Electricity, Gas, Water};
        let locked = vec!["utilityTypes".to_owned()];
        let prefilled = [Gas, Electricity];
        assert_eq!(
            merge_set(
                "utilityTypes",
                &locked,
                &prefilled,
                Some(vec![Electricity, Gas])
            )
            .unwrap(),
            vec![Gas, Electricity]
        );
        assert_eq!(
            merge_set("utilityTypes", &locked, &prefilled, None).unwrap(),
            vec![Gas, Electricity]
        );
        assert!(merge_set("utilityTypes", &locked, &prefilled, Some(vec![Gas])).is_err());
        assert!(
            merge_set(
                "utilityTypes",
                &locked,
                &prefilled,
                Some(vec![Gas, Electricity, Water])
            )
            .is_err()
        );
        // Unlocked: the recipient's choice, even none at all.
        assert_eq!(
            merge_set("utilityTypes", &[], &prefilled, Some(vec![])).unwrap(),
            Vec::<UtilityType>::new()
        );
    }
}
