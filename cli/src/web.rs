//! The browser side of `items serve`: the page at `/` and, with the
//! development identity provider, the local Hosted UI it signs in on.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use items_local::auth::dev_idp::{DEV_CLIENT_ID, DEV_MACHINE_CLIENT_ID, DevIdentityProvider};
use items_local::hosted_ui::users::UserStore;
use items_local::hosted_ui::{self, HostedUi, HostedUiConfig, MachineClient};
use items_local::web_app::{self, WebAppConfig};

/// The development machine client's secret, in the data dir (0600).
pub const MACHINE_SECRET_FILE: &str = "machine-client.secret";

#[derive(Debug, Clone, clap::Args)]
pub struct WebArgs {
    /// More callback and sign-out URLs the local Hosted UI allows (comma-separated);
    /// `http://127.0.0.1:<port>/` and `http://localhost:<port>/` always are.
    #[arg(long, env = "ITEMS_REDIRECT_URIS", value_delimiter = ',')]
    pub redirect_uris: Vec<String>,
    /// Lifetime of the tokens the local Hosted UI issues, in seconds.
    #[arg(long, env = "ITEMS_TOKEN_TTL", default_value_t = 3600)]
    pub token_ttl: u64,
    /// The page signs in on this Hosted UI instead of the local one: a Cognito
    /// domain such as `https://<prefix>.auth.<region>.amazoncognito.com`.
    #[arg(long, env = "ITEMS_HOSTED_UI_URL")]
    pub hosted_ui_url: Option<String>,
    /// The app client the page signs in with (default: the development client,
    /// or the first of `--client-ids`).
    #[arg(long, env = "ITEMS_WEB_CLIENT_ID")]
    pub web_client_id: Option<String>,
    /// How the page signs in: `code` (authorization code with PKCE) or `token` (implicit).
    #[arg(long, env = "ITEMS_WEB_RESPONSE_TYPE", default_value = "code", value_parser = ["code", "token"])]
    pub web_response_type: String,
}

/// The routes to merge into the gateway, and what to tell the person.
pub struct Web {
    pub router: Router,
    /// Where the page signs in; `None` when it has nowhere to (no page then).
    hosted_ui: Option<String>,
    local: Option<(UserStore, Vec<String>)>,
}

/// The callback URLs of a server on `addr`: its own, by IP and by `localhost`.
pub fn default_redirect_uris(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut uris = Vec::new();
    if addr.ip().is_unspecified() {
        uris.push(format!("http://127.0.0.1:{port}/"));
    } else {
        uris.push(format!("http://{addr}/"));
    }
    uris.push(format!("http://localhost:{port}/"));
    uris
}

pub fn build(
    args: &WebArgs,
    addr: SocketAddr,
    dev_idp: Option<Arc<DevIdentityProvider>>,
    data_dir: &Path,
    client_ids: &[String],
) -> anyhow::Result<Web> {
    let client_id = args.web_client_id.clone().or_else(|| client_ids.first().cloned());
    let page = |hosted_ui_url: String, client_id: String| WebAppConfig {
        hosted_ui_url,
        client_id,
        scopes: WebAppConfig::DEFAULT_SCOPES.to_owned(),
        response_type: args.web_response_type.clone(),
        api_url: String::new(),
        redirect_uri: None,
    };
    match (&args.hosted_ui_url, dev_idp) {
        (Some(url), _) => {
            let url = url.trim_end_matches('/').to_owned();
            let Some(client_id) = client_id else {
                bail!("--hosted-ui-url needs the app client id: --web-client-id (or --client-ids)");
            };
            let router = web_app::router(&page(url.clone(), client_id));
            Ok(Web { router, hosted_ui: Some(url), local: None })
        }
        (None, Some(idp)) => {
            let client_id = client_id.unwrap_or_else(|| DEV_CLIENT_ID.to_owned());
            let mut redirect_uris = default_redirect_uris(addr);
            for uri in &args.redirect_uris {
                if !redirect_uris.contains(uri) {
                    redirect_uris.push(uri.clone());
                }
            }
            let users = UserStore::in_dir(data_dir);
            let mut config = HostedUiConfig::new(client_id.clone(), redirect_uris.clone(), users.clone());
            config.token_ttl = Duration::from_secs(args.token_ttl);
            let secret = crate::serve::data_dir_secret(data_dir, MACHINE_SECRET_FILE)?;
            config.machine_client = Some(MachineClient {
                client_id: DEV_MACHINE_CLIENT_ID.to_owned(),
                client_secret: String::from_utf8(secret).context("the machine client's secret is not text")?,
                allowed_scopes: vec![
                    items_aws::routes::READ_SCOPE.to_owned(),
                    items_aws::routes::WRITE_SCOPE.to_owned(),
                ],
            });
            let ui = HostedUi::new(config, idp).context("the local Hosted UI's settings")?;
            let router = web_app::router(&page(String::new(), client_id)).merge(hosted_ui::router(Arc::new(ui)));
            Ok(Web { router, hosted_ui: Some("the local Hosted UI".to_owned()), local: Some((users, redirect_uris)) })
        }
        (None, None) => Ok(Web { router: Router::new(), hosted_ui: None, local: None }),
    }
}

impl Web {
    /// Lines for `items serve`'s banner.
    pub fn print_banner(&self, base_url: &str, data_dir: &Path) {
        match &self.hosted_ui {
            Some(hosted_ui) => println!("In a browser: {base_url}/ (signs in on {hosted_ui})"),
            None => println!("In a browser: no page without a Hosted UI (set --hosted-ui-url and --web-client-id)"),
        }
        if let Some((users, redirect_uris)) = &self.local {
            println!("  callback URLs: {}", redirect_uris.join(", "));
            println!(
                "  machine client (client_credentials at {base_url}/oauth2/token): id {DEV_MACHINE_CLIENT_ID}, secret in {}",
                data_dir.join(MACHINE_SECRET_FILE).display()
            );
            match users.list() {
                Ok(list) if list.is_empty() => {
                    println!("  no users yet: add one (another terminal), then sign in:");
                    println!("    cargo run -q --bin items -- user add alice --data-dir '{}'", data_dir.display());
                }
                Ok(list) => {
                    let names: Vec<&str> = list.iter().map(|u| u.username.as_str()).collect();
                    println!("  users: {} (more with `items user add NAME`)", names.join(", "));
                }
                Err(error) => println!("  users: {error}"),
            }
        }
        println!();
    }
}
