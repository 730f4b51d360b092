//! Write operations, split by domain and merged into `Mutation`.

mod company;
mod invitation;
mod public;
mod webhook;

use async_graphql::MergedObject;

/// Write operations.
#[derive(MergedObject, Default)]
pub struct Mutation(
    company::CompanyMutation,
    invitation::InvitationMutation,
    public::PublicMutation,
    webhook::WebhookMutation,
);
