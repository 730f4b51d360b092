//! The GraphQL input types, by domain, with their conversion to the domain's inputs. Resolvers
//! and REST handlers (which parse their bodies into these types first) only take them from here.

mod company;
mod invitation;
mod organization;
mod webhook;

pub use company::{ConnectionInput, CreateCompanyInput, CreateSiteInput};
pub use invitation::{InvitationFilter, InvitationInput, PrefillInput, ResendInvitationInput};
pub use organization::UpdateOrganizationInput;
pub use webhook::{CreateWebhookEndpointInput, UpdateWebhookEndpointInput, WebhookDeliveryFilter};
