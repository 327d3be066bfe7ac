//! `items token`: prints an access token from the development identity provider.

use std::path::PathBuf;
use std::time::Duration;

use items_local::auth::dev_idp::{DEV_CLIENT_ID, DevIdentityProvider, TokenRequest};

use crate::settings::{DEV_ISSUER, default_data_dir};

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Username; the default `sub` is derived from it, so it is stable.
    #[arg(long, default_value = "dev-user")]
    pub username: String,
    /// The token's `sub` (Cognito user id).
    #[arg(long)]
    pub sub: Option<String>,
    /// Space-separated scopes.
    #[arg(long, default_value = "items/read items/write")]
    pub scope: String,
    /// A Cognito group to put in the token's `cognito:groups` (repeatable),
    /// e.g. `items-admins`, whose members may change anyone's items.
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Where the development signing key lives (same as `items serve`).
    #[arg(long, env = "ITEMS_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

/// A stable user id for a development username (the local Hosted UI uses it too).
pub use items_local::auth::dev_idp::dev_subject;

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let idp = DevIdentityProvider::load_or_create(&args.data_dir, DEV_ISSUER)?;
    let token = idp.issue_access_token(&TokenRequest {
        subject: args.sub.unwrap_or_else(|| dev_subject(&args.username)),
        username: args.username,
        scopes: args.scope.split_whitespace().map(str::to_owned).collect(),
        client_id: DEV_CLIENT_ID.to_owned(),
        ttl: Duration::from_secs(args.ttl),
        groups: args.groups,
    })?;
    println!("{token}");
    Ok(())
}
