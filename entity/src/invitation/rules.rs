//! The create-time rules of an invitation (SPEC §3.1, §3.4): every raw value is checked and
//! normalized here, before anything is written.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{DomainError, InvitationType, Prefill, email};

/// Shortest lifetime an invitation may be given.
pub const MIN_EXPIRES_IN_SECONDS: i64 = 60;
/// Longest lifetime (about ten years): far enough for any real use, near enough that
/// `createdAt + expiresInSeconds` can never overflow a timestamp.
pub const MAX_EXPIRES_IN_SECONDS: i64 = 10 * 366 * 24 * 3600;
/// Upper bound of `maxUses`; larger values are meaningless and would risk counter overflow.
pub const MAX_USES_LIMIT: i32 = 1_000_000;
/// Most addresses one allow-list may hold.
pub const MAX_ALLOWED_EMAILS: usize = 100;
/// Prefill fields an organization may lock (SPEC §3.4), in their API spelling.
pub const LOCKABLE_FIELDS: [&str; 7] = [
    "datasourceId",
    "url",
    "country",
    "initialSites",
    "utilityTypes",
    "connectionOwnerEmail",
    "dataCollectionStartDate",
];

/// Validated create-time input (SPEC §3.1). Raw values go in; [`create`] checks every rule.
#[derive(Debug, Clone, Default)]
pub struct CreateInvitation {
    pub organization_id: Uuid,
    /// Contributor invitations name the company; reconnect invitations name the connection.
    pub company_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    pub allowed_emails: Vec<String>,
    pub expires_in_seconds: Option<i64>,
    pub max_uses: Option<i64>,
    pub send_email: bool,
    pub prefill: Option<Prefill>,
    pub locked_fields: Option<Vec<String>>,
    pub remind_before_expiry_seconds: Option<i64>,
}

pub(super) struct Checked {
    pub(super) allowed_emails: Vec<String>,
    pub(super) expires_at: Option<DateTime<Utc>>,
    pub(super) max_uses: Option<i32>,
    pub(super) prefill: Prefill,
    pub(super) locked_fields: Vec<String>,
    pub(super) remind_before_expiry_seconds: Option<i64>,
}

pub(super) fn check_input(
    input: &CreateInvitation,
    invitation_type: InvitationType,
    at: DateTime<Utc>,
) -> Result<Checked, DomainError> {
    if input.allowed_emails.len() > MAX_ALLOWED_EMAILS {
        return Err(DomainError::invalid(
            "allowedEmails",
            format!("at most {MAX_ALLOWED_EMAILS} addresses"),
        ));
    }
    let allowed_emails = email::normalize_list(&input.allowed_emails, "allowedEmails")?;
    if input.send_email && allowed_emails.is_empty() {
        return Err(DomainError::invalid(
            "sendEmail",
            "sendEmail needs at least one address in allowedEmails",
        ));
    }
    let expires_at = match input.expires_in_seconds {
        None => None,
        Some(s) if !(MIN_EXPIRES_IN_SECONDS..=MAX_EXPIRES_IN_SECONDS).contains(&s) => {
            return Err(DomainError::invalid(
                "expiresInSeconds",
                format!("must be between {MIN_EXPIRES_IN_SECONDS} and {MAX_EXPIRES_IN_SECONDS}"),
            ));
        }
        Some(s) => Some(at + Duration::seconds(s)),
    };
    let max_uses = match input.max_uses {
        None => None,
        Some(n) if !(1..=i64::from(MAX_USES_LIMIT)).contains(&n) => {
            return Err(DomainError::invalid(
                "maxUses",
                format!("must be between 1 and {MAX_USES_LIMIT}"),
            ));
        }
        Some(n) => i32::try_from(n).ok(),
    };
    if let Some(r) = input.remind_before_expiry_seconds {
        match input.expires_in_seconds {
            None => {
                return Err(DomainError::invalid(
                    "remindBeforeExpirySeconds",
                    "a reminder needs expiresInSeconds",
                ));
            }
            Some(e) if r < 1 || r >= e => {
                return Err(DomainError::invalid(
                    "remindBeforeExpirySeconds",
                    "must be positive and less than expiresInSeconds",
                ));
            }
            Some(_) if allowed_emails.is_empty() => {
                return Err(DomainError::invalid(
                    "remindBeforeExpirySeconds",
                    "a reminder needs at least one address in allowedEmails",
                ));
            }
            Some(_) => {}
        }
    }
    if invitation_type == InvitationType::EditConnection {
        if input.prefill.is_some() {
            return Err(DomainError::invalid(
                "prefill",
                "prefill applies to contributor invitations only",
            ));
        }
        if input.locked_fields.is_some() {
            return Err(DomainError::invalid(
                "lockedFields",
                "lockedFields applies to contributor invitations only",
            ));
        }
    }
    let prefill = input.prefill.clone().unwrap_or_default();
    check_prefill(&prefill)?;
    let mut locked_fields: Vec<String> = Vec::new();
    for (i, field) in input.locked_fields.iter().flatten().enumerate() {
        if !LOCKABLE_FIELDS.contains(&field.as_str()) {
            return Err(DomainError::invalid(
                format!("lockedFields[{i}]"),
                format!("unknown field; one of {}", LOCKABLE_FIELDS.join(", ")),
            ));
        }
        // A lock on nothing would only ever refuse the recipient: name it instead.
        if !is_prefilled(&prefill, field) {
            return Err(DomainError::invalid(
                format!("lockedFields[{i}]"),
                format!(
                    "{field} is locked but has no prefilled value: give prefill.{field} or do not lock it"
                ),
            ));
        }
        if !locked_fields.contains(field) {
            locked_fields.push(field.clone());
        }
    }
    Ok(Checked {
        allowed_emails,
        expires_at,
        max_uses,
        prefill,
        locked_fields,
        remind_before_expiry_seconds: input.remind_before_expiry_seconds,
    })
}

/// Whether `prefill` has a value for the lockable field `field` (API spelling).
fn is_prefilled(prefill: &Prefill, field: &str) -> bool {
    match field {
        "datasourceId" => prefill.datasource_id.is_some(),
        "url" => prefill.url.is_some(),
        "country" => prefill.country.is_some(),
        "initialSites" => !prefill.initial_sites.is_empty(),
        "utilityTypes" => !prefill.utility_types.is_empty(),
        "connectionOwnerEmail" => prefill.connection_owner_email.is_some(),
        "dataCollectionStartDate" => prefill.data_collection_start_date.is_some(),
        _ => false,
    }
}

fn check_prefill(prefill: &Prefill) -> Result<(), DomainError> {
    if prefill
        .datasource_id
        .as_ref()
        .is_some_and(|d| d.is_empty() || d.len() > 100)
    {
        return Err(DomainError::invalid(
            "prefill.datasourceId",
            "must be 1 to 100 characters",
        ));
    }
    if let Some(u) = &prefill.url {
        let ok = u.len() <= 2000
            && (u.starts_with("https://") || u.starts_with("http://"))
            && !u.contains(char::is_whitespace);
        if !ok {
            return Err(DomainError::invalid(
                "prefill.url",
                "must be an http(s) URL of at most 2000 characters",
            ));
        }
    }
    if let Some(c) = &prefill.country
        && (c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()))
    {
        return Err(DomainError::invalid(
            "prefill.country",
            "must be an ISO 3166-1 alpha-2 code in upper case",
        ));
    }
    if prefill.initial_sites.len() > 100 {
        return Err(DomainError::invalid(
            "prefill.initialSites",
            "at most 100 sites",
        ));
    }
    if let Some(owner) = &prefill.connection_owner_email {
        email::normalize(owner)
            .map_err(|m| DomainError::invalid("prefill.connectionOwnerEmail", m))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::Duration;
    use uuid::Uuid;

    use super::*;
    use crate::now;

    fn input() -> CreateInvitation {
        CreateInvitation {
            company_id: Some(Uuid::now_v7()),
            ..Default::default()
        }
    }

    fn field_of(r: Result<Checked, DomainError>) -> String {
        match r {
            Err(DomainError::InvalidInput { field, .. }) => field,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("input was accepted"),
        }
    }

    #[test]
    fn input_rules_name_the_field() {
        let t = now();
        let c = InvitationType::CreateConnection;
        let e = InvitationType::EditConnection;
        let case = |f: &dyn Fn(&mut CreateInvitation)| {
            let mut i = input();
            f(&mut i);
            i
        };
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.expires_in_seconds = Some(59)),
                c,
                t
            )),
            "expiresInSeconds"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.expires_in_seconds = Some(MAX_EXPIRES_IN_SECONDS + 1)),
                c,
                t
            )),
            "expiresInSeconds"
        );
        assert_eq!(
            field_of(check_input(&case(&|i| i.max_uses = Some(0)), c, t)),
            "maxUses"
        );
        assert_eq!(
            field_of(check_input(&case(&|i| i.send_email = true), c, t)),
            "sendEmail"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.allowed_emails = vec!["x".into()]),
                c,
                t
            )),
            "allowedEmails[0]"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.prefill = Some(Prefill::default())),
                e,
                t
            )),
            "prefill"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.locked_fields = Some(vec![])),
                e,
                t
            )),
            "lockedFields"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.locked_fields = Some(vec!["password".into()])),
                c,
                t
            )),
            "lockedFields[0]"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.remind_before_expiry_seconds = Some(10)),
                c,
                t
            )),
            "remindBeforeExpirySeconds"
        );
        // A locked field needs a prefilled value (here the second lock has none).
        let country_only = Prefill {
            country: Some("FR".into()),
            ..Default::default()
        };
        assert_eq!(
            field_of(check_input(
                &case(&|i| {
                    i.prefill = Some(country_only.clone());
                    i.locked_fields = Some(vec!["country".into(), "utilityTypes".into()]);
                }),
                c,
                t
            )),
            "lockedFields[1]"
        );
        let bad_country = Prefill {
            country: Some("usa".into()),
            ..Default::default()
        };
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.prefill = Some(bad_country.clone())),
                c,
                t
            )),
            "prefill.country"
        );
    }

    #[test]
    fn valid_input_is_normalized() {
        let t = now();
        let mut i = input();
        i.allowed_emails = vec![" A@X.com".into(), "a@x.com".into()];
        i.expires_in_seconds = Some(3600);
        i.max_uses = Some(3);
        let checked = check_input(&i, InvitationType::CreateConnection, t).unwrap();
        assert_eq!(checked.allowed_emails, ["a@x.com"]);
        assert_eq!(checked.expires_at, Some(t + Duration::seconds(3600)));
        assert_eq!(checked.max_uses, Some(3));
    }
}
