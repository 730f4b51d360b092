//! Companies, sites and connections of an organization.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use crate::crypto::{Keyring, Slot, generate_token};
use crate::entities::{companies, connection_sites, connections, sites};
use crate::scope::{Owned, find_owned};
use crate::work::{Command, Work};
use crate::{ConnectionStatus, DomainError, UtilityType, UtilityTypes, email, now};

/// Longest free-text value (names, addresses, usernames) accepted.
pub const MAX_TEXT_LEN: usize = 200;

/// Trims `value` and checks it is non-empty and at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, DomainError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    optional_text(field, Some(value), max).map(|v| v.unwrap_or_default())
}

/// Like [`required_text`] for optional values; blank becomes `None`.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.chars().count() > max => Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(v) if v.chars().any(char::is_control) => Err(DomainError::invalid(
            field,
            "must not contain control characters",
        )),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

pub async fn create_company(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    name: &str,
    display_name: Option<&str>,
) -> Result<companies::Model, DomainError> {
    let name = required_text("name", name, MAX_TEXT_LEN)?;
    let display_name = optional_text("displayName", display_name, MAX_TEXT_LEN)?;
    Ok(companies::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        name: Set(name),
        display_name: Set(display_name),
        // Public, unguessable and unrelated to the internal id (legacy links show it).
        public_id: Set(generate_token().chars().take(22).collect()),
        magic_link_secret_hash: Set(None),
        magic_link_secret_sealed: Set(None),
        created_at: Set(now()),
    }
    .insert(db)
    .await?)
}

/// A page of the organization's companies, oldest first: at most `limit`, after the company
/// `after`.
pub async fn list_companies(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<companies::Model>, DomainError> {
    let mut query = companies::Entity::find_in(organization_id);
    if let Some(after) = after {
        query = query.filter(crate::finders::created_after::<companies::Entity>(
            organization_id,
            after,
            companies::Column::OrganizationId,
            companies::Column::CreatedAt,
            companies::Column::Id,
        ));
    }
    Ok(crate::finders::all_with_limit(
        db,
        query
            .order_by_asc(companies::Column::CreatedAt)
            .order_by_asc(companies::Column::Id),
        limit,
    )
    .await?)
}

pub async fn create_site(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    company_id: Uuid,
    name: &str,
    address: Option<&str>,
) -> Result<sites::Model, DomainError> {
    let name = required_text("name", name, MAX_TEXT_LEN)?;
    let address = optional_text("address", address, 500)?;
    find_owned::<companies::Entity>(db, organization_id, company_id).await?;
    Ok(sites::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        company_id: Set(company_id),
        name: Set(name),
        address: Set(address),
        created_at: Set(now()),
    }
    .insert(db)
    .await?)
}

/// The details of a connection, as an organization registers it or a recipient submits it.
#[derive(Debug, Clone, Default)]
pub struct ConnectionDetails {
    pub datasource_id: Option<String>,
    pub provider_name: Option<String>,
    pub provider_url: Option<String>,
    pub country: Option<String>,
    pub utility_types: Vec<UtilityType>,
    pub site_ids: Vec<Uuid>,
    pub owner_email: Option<String>,
    pub data_collection_start_date: Option<chrono::NaiveDate>,
    pub utility_username: String,
    pub utility_password: String,
    pub mfa_forwarding: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// Username and password checked and ready to store (the password sealed).
pub struct Credentials {
    pub username: String,
    pub password_sealed: String,
}

/// Checks and seals utility credentials for the connection `connection_id`. The password is
/// never stored or logged in clear.
pub fn seal_credentials(
    keys: &Keyring,
    connection_id: Uuid,
    username: &str,
    password: &str,
) -> Result<Credentials, DomainError> {
    let username = required_text("utilityUsername", username, 500)?;
    if password.is_empty() {
        return Err(DomainError::invalid("utilityPassword", "must not be empty"));
    }
    if password.len() > 1000 {
        return Err(DomainError::invalid(
            "utilityPassword",
            "must be at most 1000 bytes",
        ));
    }
    Ok(Credentials {
        username,
        password_sealed: keys.seal(
            password.as_bytes(),
            &Slot::connection_password(connection_id),
        )?,
    })
}

/// Registers a connection with credentials the organization already has.
pub struct CreateConnection<'a> {
    pub keys: &'a Keyring,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub details: ConnectionDetails,
}

impl Command for CreateConnection<'_> {
    type Output = connections::Model;

    async fn execute(&self, work: &Work) -> Result<Self::Output, DomainError> {
        let details = self.details.clone();
        create_connection(
            work,
            self.keys,
            self.organization_id,
            self.company_id,
            details,
            None,
        )
        .await
    }
}

/// Creates a PENDING connection for a company of the organization (sites must belong to it),
/// and its `connection.created` webhooks.
pub async fn create_connection(
    work: &Work,
    keys: &Keyring,
    organization_id: Uuid,
    company_id: Uuid,
    details: ConnectionDetails,
    invitation_id: Option<Uuid>,
) -> Result<connections::Model, DomainError> {
    let db = work.txn();
    find_owned::<companies::Entity>(db, organization_id, company_id).await?;
    let id = Uuid::now_v7();
    let credentials = seal_credentials(
        keys,
        id,
        &details.utility_username,
        &details.utility_password,
    )?;
    let datasource_id = optional_text("datasourceId", details.datasource_id.as_deref(), 100)?;
    let provider_name = optional_text(
        "providerName",
        details.provider_name.as_deref(),
        MAX_TEXT_LEN,
    )?;
    let provider_url = optional_text("providerUrl", details.provider_url.as_deref(), 2000)?;
    if datasource_id.is_none() && provider_url.is_none() && provider_name.is_none() {
        return Err(DomainError::invalid(
            "datasourceId",
            "name the utility provider by datasourceId, providerUrl or providerName",
        ));
    }
    if let Some(url) = &provider_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(DomainError::invalid(
            "providerUrl",
            "must be an http(s) URL",
        ));
    }
    let country = match details.country.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
            Some(c.to_ascii_uppercase())
        }
        Some(_) => {
            return Err(DomainError::invalid(
                "country",
                "must be an ISO 3166-1 alpha-2 code",
            ));
        }
    };
    let owner_email = details
        .owner_email
        .as_deref()
        .map(|e| email::normalize(e).map_err(|m| DomainError::invalid("ownerEmail", m)))
        .transpose()?;
    let mut utility_types = details.utility_types.clone();
    utility_types.dedup();
    check_sites(
        db,
        organization_id,
        company_id,
        &details.site_ids,
        "siteIds",
    )
    .await?;
    let at = now();
    let row = connections::ActiveModel {
        id: Set(id),
        organization_id: Set(organization_id),
        company_id: Set(company_id),
        datasource_id: Set(datasource_id),
        provider_name: Set(provider_name),
        provider_url: Set(provider_url),
        country: Set(country),
        status: Set(ConnectionStatus::Pending),
        utility_types: Set(UtilityTypes(utility_types)),
        owner_email: Set(owner_email),
        data_collection_start_date: Set(details.data_collection_start_date),
        utility_username: Set(Some(credentials.username)),
        password_sealed: Set(Some(credentials.password_sealed)),
        mfa_forwarding: Set(details.mfa_forwarding),
        created_by_invitation_id: Set(invitation_id),
        last_invitation_id: Set(invitation_id),
        edit_link_secret_hash: Set(None),
        edit_link_secret_sealed: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?;
    let site_ids = dedup(&details.site_ids);
    for site_id in &site_ids {
        connection_sites::ActiveModel {
            connection_id: Set(row.id),
            site_id: Set(*site_id),
        }
        .insert(db)
        .await?;
    }
    crate::webhook::events::connection_created(work, &row, &site_ids).await?;
    Ok(row)
}

fn dedup(ids: &[Uuid]) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

/// Every site must belong to `company_id` of the organization; the error names the index.
pub async fn check_sites(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    company_id: Uuid,
    site_ids: &[Uuid],
    field: &str,
) -> Result<(), DomainError> {
    if site_ids.is_empty() {
        return Ok(());
    }
    if site_ids.len() > 100 {
        return Err(DomainError::invalid(field, "at most 100 sites"));
    }
    let found: Vec<Uuid> = sites::Entity::find_in(organization_id)
        .filter(sites::Column::CompanyId.eq(company_id))
        .filter(sites::Column::Id.is_in(site_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    match site_ids.iter().position(|id| !found.contains(id)) {
        Some(i) => Err(DomainError::invalid(
            format!("{field}[{i}]"),
            "site not found for this company",
        )),
        None => Ok(()),
    }
}
