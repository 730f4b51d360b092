//! Write operations, split by domain and merged into `Mutation`.

mod company;
mod invitation;
pub mod magic_link;
mod organization;
mod public;
mod webhook;

use async_graphql::MergedObject;

/// Write operations.
#[derive(MergedObject, Default)]
pub struct Mutation(
    company::CompanyMutation,
    invitation::InvitationMutation,
    magic_link::MagicLinkMutation,
    organization::OrganizationMutation,
    public::PublicMutation,
    webhook::WebhookMutation,
);
