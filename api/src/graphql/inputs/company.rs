//! The company, site and connection inputs. `ConnectionInput` serves both a recipient's submit
//! and an organization's `createConnection`.

use async_graphql::{ID, InputObject, Result};
use entity::recipient::Submission;

use crate::graphql::enums::UtilityType;
use crate::graphql::ids::{parse_date, parse_ids};

/// A new company.
#[derive(InputObject)]
pub struct CreateCompanyInput {
    /// 1 to 200 characters.
    pub name: String,
    /// Name shown to recipients; defaults to `name`.
    pub display_name: Option<String>,
}

/// A new site of a company.
#[derive(InputObject)]
pub struct CreateSiteInput {
    pub name: String,
    pub address: Option<String>,
}

/// The details of a utility account: what a recipient submits on the hosted page, or what an
/// organization registers with `createConnection`. Reconnect submits use only the credentials
/// and `mfaForwarding`.
#[derive(InputObject)]
pub struct ConnectionInput {
    /// The utility provider, by id, website or name (contributor).
    pub datasource_id: Option<String>,
    pub provider_url: Option<String>,
    pub provider_name: Option<String>,
    /// ISO 3166-1 alpha-2 (contributor).
    pub country: Option<String>,
    pub utility_types: Option<Vec<UtilityType>>,
    /// Sites of the company (contributor).
    pub site_ids: Option<Vec<ID>>,
    /// Who owns the resulting connection (contributor).
    pub owner_email: Option<String>,
    /// `YYYY-MM-DD` (contributor).
    pub data_collection_start_date: Option<String>,
    pub utility_username: String,
    /// Encrypted at rest, never returned, never logged.
    #[graphql(secret)]
    pub utility_password: String,
    /// Forward MFA prompts to the account holder. Omitted: a reconnect keeps the connection's
    /// current choice; a new connection does not forward.
    pub mfa_forwarding: Option<bool>,
}

impl ConnectionInput {
    pub fn into_submission(self) -> Result<Submission> {
        Ok(Submission {
            datasource_id: self.datasource_id,
            provider_url: self.provider_url,
            provider_name: self.provider_name,
            country: self.country,
            utility_types: self
                .utility_types
                .map(|t| t.into_iter().map(Into::into).collect()),
            site_ids: self
                .site_ids
                .map(|ids| parse_ids("siteIds", &ids))
                .transpose()?,
            owner_email: self.owner_email,
            data_collection_start_date: parse_date(
                "dataCollectionStartDate",
                self.data_collection_start_date.as_deref(),
            )?,
            utility_username: self.utility_username,
            utility_password: self.utility_password,
            mfa_forwarding: self.mfa_forwarding,
        })
    }
}
