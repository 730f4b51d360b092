//! Command-line interface of the `invitations` binary.
#![allow(clippy::print_stdout)] // printing is this module's job

use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use serde_json::json;
use uuid::Uuid;

use crate::config::Settings;
use crate::error::StartupError;
use crate::startup::{self, Roles};
use crate::{db, telemetry};

#[derive(Debug, Parser)]
#[command(name = "invitations", version, about = "Invitations gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default), with the workers in-process unless --no-workers.
    Serve {
        #[arg(long)]
        no_workers: bool,
    },
    /// Run only the background workers.
    Worker,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        action: OrgAction,
    },
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Print the REST API's OpenAPI document (JSON).
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back migrations (all of them unless --steps).
    Down {
        #[arg(long)]
        steps: Option<u32>,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum OrgAction {
    /// Create an organization and its first API key (shown once).
    Create {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyAction {
    /// Create an API key (shown once).
    Create {
        #[arg(long)]
        org: Uuid,
        #[arg(long, default_value = "cli")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the keys of an organization (prefixes only; keys are never stored).
    List {
        #[arg(long)]
        org: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key.
    Revoke {
        #[arg(long)]
        org: Uuid,
        id: Uuid,
    },
}

pub async fn run(cli: Cli) -> Result<(), StartupError> {
    let command = cli.command.unwrap_or(Command::Serve { no_workers: false });
    match command {
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            return Ok(());
        }
        Command::Openapi => {
            print!(
                "{}",
                crate::rest::openapi_json().map_err(StartupError::failed)?
            );
            return Ok(());
        }
        _ => {}
    }
    let settings = Settings::from_env()?;
    // Flushes the exported spans when the command ends.
    let _telemetry = telemetry::init(&settings.log);
    match command {
        Command::Serve { no_workers } => serve(settings, !no_workers).await,
        Command::Worker => {
            let app = startup::build(
                settings,
                None,
                Roles {
                    http: false,
                    workers: true,
                },
            )
            .await?;
            tracing::info!("workers running");
            app.run(startup::termination_signal()).await
        }
        Command::Migrate { action } => migrate(settings, action).await,
        Command::Org { action } => org(settings, action).await,
        Command::ApiKey { action } => api_key(settings, action).await,
        Command::Schema | Command::Openapi => Ok(()),
    }
}

async fn serve(settings: Settings, workers: bool) -> Result<(), StartupError> {
    let base = settings.public_base_url.clone();
    let app = startup::build(
        settings,
        None,
        Roles {
            http: true,
            workers,
        },
    )
    .await?;
    println!("Invitations gateway listening on port {}", app.port());
    println!(
        "GraphQL endpoint and GraphiQL: {}",
        base.join("graphql").map_err(StartupError::failed)?
    );
    let console = base.join("console").map_err(StartupError::failed)?;
    println!("Console: {console}");
    if let Some(key) = startup::bootstrap(&app.state.store.db).await? {
        println!();
        println!(
            "First start: created organization {}",
            key.row.organization_id
        );
        println!("Bootstrap API key (shown once, store it now): {}", key.key);
        println!("Open {console} and sign in with this key to manage invitations.");
        println!();
    }
    app.run(startup::termination_signal()).await
}

async fn migrate(settings: Settings, action: MigrateAction) -> Result<(), StartupError> {
    settings.prepare_data_dir()?;
    let conn = db::connect(&settings).await?;
    match action {
        MigrateAction::Up => {
            db::migrate(&conn).await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            Migrator::down(&conn, steps).await?;
            println!("migrations rolled back");
        }
        MigrateAction::Status => {
            for m in Migrator::get_migration_with_status(&conn).await? {
                println!("{:?}\t{}", m.status(), m.name());
            }
        }
    }
    Ok(())
}

async fn org(settings: Settings, action: OrgAction) -> Result<(), StartupError> {
    let state = startup::prepare(settings).await?;
    match action {
        OrgAction::Create { name, json } => {
            let org = entity::organization::create(&state.store.db, &name).await?;
            let key =
                entity::organization::create_api_key(&state.store.db, org.id, "default").await?;
            if json {
                println!("{}", json!({ "organizationId": org.id, "apiKey": key.key }));
            } else {
                println!("organization {} ({})", org.name, org.id);
                println!("API key (shown once): {}", key.key);
            }
        }
    }
    Ok(())
}

async fn api_key(settings: Settings, action: ApiKeyAction) -> Result<(), StartupError> {
    let state = startup::prepare(settings).await?;
    let db = &state.store.db;
    match action {
        ApiKeyAction::Create { org, name, json } => {
            let key = entity::organization::create_api_key(db, org, &name).await?;
            if json {
                println!(
                    "{}",
                    json!({ "organizationId": org, "apiKeyId": key.row.id, "apiKey": key.key })
                );
            } else {
                println!("API key {} (shown once): {}", key.row.id, key.key);
            }
        }
        ApiKeyAction::List { org, json } => {
            let keys = entity::organization::list_api_keys(db, org).await?;
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({
                            "id": k.id, "name": k.name, "prefix": k.prefix,
                            "createdAt": k.created_at, "lastUsedAt": k.last_used_at,
                            "revokedAt": k.revoked_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for k in keys {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!("{}\t{}…\t{}\t{}", k.id, k.prefix, k.name, state);
                }
            }
        }
        ApiKeyAction::Revoke { org, id } => {
            entity::organization::revoke_api_key(db, org, id).await?;
            println!("API key {id} revoked");
        }
    }
    Ok(())
}
