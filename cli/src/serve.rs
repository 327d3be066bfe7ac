//! `items serve`: the local API Gateway in front of the same handlers as the
//! Lambdas, on the embedded store (default) or DynamoDB.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use items_aws::compose::{self, Settings};
use items_aws::cursor::HmacCursorCodec;
use items_aws::dynamodb::TableNames;
use items_aws::response_headers::{CORS_SETTING, CorsPolicy};
use items_local::auth::dev_idp::{DEV_CLIENT_ID, DEV_MACHINE_CLIENT_ID, DevIdentityProvider};
use items_local::auth::{AccessTokenVerifier, VerifierConfig};
use items_local::backend::{Backend, Store};
use items_local::data_dir::{create_private_dir, publish_secret, read_secret};
use items_local::gateway::{DEV_JWKS_PATH, Functions, GatewayConfig, router};
use items_local::server::ServerLimits;

use crate::aws::{clients, dynamodb_endpoint};
use crate::settings::{DEV_ISSUER, default_data_dir};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ITEMS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Local state: the database (event log, read model), the development
    /// signing key, the cursor key, the Hosted UI's users.
    #[arg(long, env = "ITEMS_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Keep everything in memory (lost when the server stops), instead of the
    /// durable SQLite store in the data dir.
    #[arg(long, conflicts_with_all = ["dynamodb", "dynamodb_endpoint"])]
    pub in_memory: bool,
    /// Use DynamoDB (e.g. DynamoDB Local) instead of the embedded store.
    #[arg(long)]
    pub dynamodb: bool,
    /// DynamoDB endpoint, such as DynamoDB Local's (implies `--dynamodb`, as
    /// for every command); defaults to `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL`.
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    #[arg(long, env = "EVENTS_TABLE", default_value_t = TableNames::default().events)]
    pub events_table: String,
    #[arg(long, env = "ITEMS_TABLE", default_value_t = TableNames::default().items)]
    pub items_table: String,
    /// Trust this issuer (e.g. `https://cognito-idp.<region>.amazonaws.com/<pool id>`)
    /// instead of the built-in development identity provider.
    #[arg(long, env = "ITEMS_ISSUER", requires = "jwks_url")]
    pub issuer: Option<String>,
    /// The issuer's JWKS URL (for Cognito: `<issuer>/.well-known/jwks.json`).
    #[arg(long, env = "ITEMS_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Accepted app client ids (comma-separated); empty accepts any.
    #[arg(long, env = "ITEMS_CLIENT_IDS", value_delimiter = ',')]
    pub client_ids: Vec<String>,
    /// Origins allowed by CORS (comma-separated; `*` allows any): the Lambdas' setting.
    #[arg(long, env = CORS_SETTING, value_delimiter = ',', alias = "cors-origins")]
    pub cors_allowed_origins: Vec<String>,
    /// More `Host` names (with their port) the server answers for, e.g. the
    /// address a phone uses with `--addr 0.0.0.0:3000` (comma-separated). The
    /// bound address and `localhost:<port>` always are; any other `Host` is
    /// refused (DNS rebinding).
    #[arg(long, env = "ITEMS_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Serve `GET /metrics` to every client, not only to this machine's
    /// (with `--addr 0.0.0.0` anyone on the network could watch activity).
    #[arg(long, env = "ITEMS_PUBLIC_METRICS")]
    pub public_metrics: bool,
    /// Clock skew tolerated on token times, in seconds.
    #[arg(long, default_value_t = 60)]
    pub token_leeway: u64,
    /// The browser page at `/` and the local Hosted UI.
    #[command(flatten)]
    pub web: crate::web::WebArgs,
}

/// Reads the cursor signing key from the data dir, creating it on first use.
fn cursor_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(key) = std::env::var("CURSOR_SIGNING_KEY") {
        // An empty key would sign every cursor with nothing secret.
        anyhow::ensure!(!key.trim().is_empty(), "CURSOR_SIGNING_KEY is empty: unset it, or give it a secret");
        return Ok(key.into_bytes());
    }
    data_dir_secret(data_dir, "cursor.key")
}

/// A random secret kept in `data_dir/name` (0600), made on first use.
pub(crate) fn data_dir_secret(data_dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    match read_secret(&path) {
        Ok(key) => Ok(key),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
            let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()).into_bytes();
            publish_secret(&path, &key).with_context(|| format!("writing {}", path.display()))?;
            Ok(read_secret(&path)?)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

impl ServeArgs {
    /// DynamoDB when asked for, by `--dynamodb` or an endpoint: the same
    /// store flags mean the same for `serve` as for `replay`, `export` and
    /// `import` (`LogArgs::on_dynamodb`). Before, an endpoint alone served
    /// the SQLite store without a word.
    pub fn on_dynamodb(&self) -> bool {
        self.dynamodb || self.dynamodb_endpoint.is_some()
    }
}

/// Connections this machine may hold open on a loopback bind.
const LOOPBACK_CONNECTIONS: usize = 512;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Registered before anything else, so a SIGTERM during start-up is a clean stop too.
    let shutdown = shutdown_signal()?;
    let (store, backend) = if args.on_dynamodb() {
        let endpoint = dynamodb_endpoint(args.dynamodb_endpoint.as_deref());
        let clients = clients(endpoint.clone()).await;
        let backend = format!(
            "DynamoDB at {} (tables {}, {})",
            endpoint.as_deref().unwrap_or("the default AWS endpoint"),
            args.events_table,
            args.items_table
        );
        let store = Store::Dynamo {
            dynamodb: clients.dynamodb,
            streams: clients.streams,
            events_table: args.events_table.clone(),
            items_table: args.items_table.clone(),
        };
        (store, backend)
    } else if args.in_memory {
        (Store::Volatile, "in memory (volatile: everything is lost when the server stops)".to_owned())
    } else {
        let path = args.data_dir.join(items_local::sqlite::DATABASE_FILE);
        (Store::Sqlite(args.data_dir.clone()), format!("SQLite at {} (durable)", path.display()))
    };
    let Backend { events, read_model, projection } = items_local::backend::open(store).await?;

    // After the store: a second server on the same data dir is told so, whatever its port.
    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");

    if let Some(jwks_url) = &args.jwks_url {
        items_local::auth::jwks::check_jwks_url(jwks_url).map_err(anyhow::Error::msg)?;
    }
    let leeway = Duration::from_secs(args.token_leeway);
    let (dev_idp, verifier_config) = match (&args.issuer, &args.jwks_url) {
        (Some(issuer), Some(jwks_url)) => {
            (None, VerifierConfig::issuer(issuer, jwks_url, args.client_ids.clone()).with_leeway(leeway))
        }
        _ => {
            let idp = DevIdentityProvider::load_or_create(&args.data_dir, DEV_ISSUER)?;
            // The page's client and the machine client (client_credentials).
            let client_ids = if args.client_ids.is_empty() {
                vec![DEV_CLIENT_ID.to_owned(), DEV_MACHINE_CLIENT_ID.to_owned()]
            } else {
                args.client_ids.clone()
            };
            // Fetched over loopback: bound to every address, the server's
            // own name (`0.0.0.0`) is no `Host` it answers (security review 13).
            let jwks_url = format!("http://{}{DEV_JWKS_PATH}", loopback(addr));
            (Some(Arc::new(idp)), VerifierConfig::development(DEV_ISSUER, jwks_url, client_ids).with_leeway(leeway))
        }
    };
    let issuer = verifier_config.issuer.clone();
    let cursors = Arc::new(HmacCursorCodec::new(&cursor_key(&args.data_dir)?));
    let settings = Settings::from_env()?;
    let mut web = crate::web::build(&args.web, addr, dev_idp.clone(), &args.data_dir, &args.client_ids)?;
    let gateway = router(GatewayConfig {
        verifier: Arc::new(match &dev_idp {
            Some(idp) => AccessTokenVerifier::new(verifier_config).with_keys(&idp.jwks()),
            None => AccessTokenVerifier::new(verifier_config),
        }),
        // The Lambdas' own compositions, from the same settings.
        functions: Functions {
            post_item: Arc::new(compose::post_item(events.clone(), &settings)),
            item_commands: Arc::new(compose::item_commands(events.clone(), &settings)),
            get_items: Arc::new(compose::get_items(read_model, events, cursors, &settings)),
        },
        dev_idp: dev_idp.clone(),
        cors: CorsPolicy::new(args.cors_allowed_origins.clone()),
        function_timeout: items_aws::limits::INTEGRATION_TIMEOUT,
        public_metrics: args.public_metrics,
        buffered: items_local::gateway::body_budget(items_local::gateway::MAX_BUFFERED_BYTES),
    });
    // The page and the Hosted UI are explicit routes: they win over the API's
    // fallback. They get the whole request within the gateway's body time
    // (the API's routes have their own limits and API Gateway's timeout).
    let web_routes = std::mem::take(&mut web.router).layer(tower_http::timeout::TimeoutLayer::with_status_code(
        http::StatusCode::REQUEST_TIMEOUT,
        items_local::gateway::BODY_READ_TIMEOUT,
    ));
    let gateway = gateway.merge(web_routes);

    print_banner(&base_url, &backend, &issuer, dev_idp.is_some(), &args.data_dir);
    web.print_banner(&base_url, &args.data_dir);
    tracing::info!(%addr, backend, "listening");
    let mut limits =
        ServerLimits { allowed_hosts: allowed_hosts(addr, &args.allowed_hosts), ..ServerLimits::default() };
    if addr.ip().is_loopback() {
        // Only this machine can connect, as one client: a high cap (load
        // tests open hundreds at once) that still leaves room for others
        // on a shared machine (security review N7).
        limits.max_connections_per_address = LOOPBACK_CONNECTIONS;
    }
    items_local::server::serve(listener, gateway, limits, shutdown).await?;
    projection.stop();
    tracing::info!("stopped");
    Ok(())
}

/// The bound address, or loopback when bound to every address.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// The `Host` values served: the bound address (loopback when bound to all
/// addresses) and `localhost`, with the port or without (a rebinding page
/// comes with its own name, never these), and the configured ones.
fn allowed_hosts(addr: SocketAddr, configured: &[String]) -> Vec<String> {
    let port = addr.port();
    let bound = loopback(addr).to_string();
    let bound_ip = bound.rsplit_once(':').map_or(bound.clone(), |(ip, _)| ip.to_owned());
    let mut hosts = vec![bound, bound_ip, format!("localhost:{port}"), "localhost".to_owned()];
    hosts.extend(configured.iter().map(|host| host.trim().to_ascii_lowercase()).filter(|host| !host.is_empty()));
    hosts
}

fn print_banner(base_url: &str, backend: &str, issuer: &str, dev_idp: bool, data_dir: &Path) {
    println!("Items API listening on {base_url}");
    println!("  store:  {backend}");
    println!("  tokens: issuer {issuer}");
    if dev_idp {
        let data_dir = data_dir.display();
        println!();
        println!("Get an access token (another terminal):");
        println!("  TOKEN=$(cargo run -q --bin items -- token --data-dir '{data_dir}')");
        println!("Create and list items:");
        println!(
            "  curl -i -X POST {base_url}/items -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"name\":\"Pen\"}}'"
        );
        println!("  curl -s {base_url}/items -H \"Authorization: Bearer $TOKEN\"");
        println!("A read-only token: items token --scope items/read");
    }
    println!();
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {},
            _ = terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
