//! Settings shared by the binaries.

use std::path::PathBuf;

use anyhow::Context;

/// A required environment variable, with a clear error when it is missing.
pub fn required_env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("the environment variable {name} must be set"))
}

/// `CORS_ALLOWED_ORIGINS`: comma-separated origins whose pages may read the API's responses.
pub fn cors_origins_from_env() -> Vec<String> {
    std::env::var("CORS_ALLOWED_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `IDEMPOTENCY_TTL_SECONDS` (how long idempotency keys are remembered), default 24 h.
pub fn idempotency_ttl_from_env() -> anyhow::Result<chrono::TimeDelta> {
    match std::env::var("IDEMPOTENCY_TTL_SECONDS") {
        Err(_) => Ok(items_domain::service::DEFAULT_IDEMPOTENCY_TTL),
        Ok(text) => {
            let seconds: i64 =
                text.trim().parse().context("IDEMPOTENCY_TTL_SECONDS must be a whole number of seconds")?;
            chrono::TimeDelta::try_seconds(seconds.max(0)).context("IDEMPOTENCY_TTL_SECONDS is too large")
        }
    }
}

/// Where local state lives (the development signing key, the cursor key):
/// `$ITEMS_DATA_DIR`, else `$XDG_DATA_HOME/items-api`, else `~/.local/share/items-api`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ITEMS_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".local/share")
    });
    base.join("items-api")
}

/// The development identity provider's issuer. A fixed name, not an address:
/// the JWKS URL is a separate setting, as it is for a real user pool.
pub const DEV_ISSUER: &str = "https://dev-idp.items-api.localhost";

/// Log setup for the CLI: human-readable, or JSON with `ITEMS_LOG_FORMAT=json`;
/// level from `RUST_LOG` (default `info`).
pub fn init_cli_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("ITEMS_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
