//! The functions' settings, read from their environment (Pulumi sets them),
//! and the AWS SDK configuration they build once at init.

use chrono::TimeDelta;
use items_domain::event::EventSchemas;

use crate::response_headers::{CORS_SETTING, CorsPolicy};

/// `IDEMPOTENCY_TTL_SECONDS`: how long idempotency keys are remembered.
pub const IDEMPOTENCY_TTL_SETTING: &str = "IDEMPOTENCY_TTL_SECONDS";

/// `WRITE_EVENT_SCHEMAS`: the event schema set writers may write (1 or 2;
/// the newest when unset). An older set while readers are being upgraded:
/// the two-step rollout of docs/deploy.md.
pub const WRITE_EVENT_SCHEMAS_SETTING: &str = "WRITE_EVENT_SCHEMAS";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("the environment variable {0} must be set")]
    Missing(String),
    #[error("{name} {reason}")]
    Invalid { name: String, reason: &'static str },
}

/// A required setting, with a clear error when it is missing.
pub fn required(name: &str) -> Result<String, SettingError> {
    std::env::var(name).map_err(|_| SettingError::Missing(name.to_owned()))
}

/// The origins allowed by CORS (`CORS_ALLOWED_ORIGINS`); none when unset.
pub fn cors_policy() -> CorsPolicy {
    CorsPolicy::parse(&std::env::var(CORS_SETTING).unwrap_or_default())
}

/// `IDEMPOTENCY_TTL_SECONDS`, default 24 h.
pub fn idempotency_ttl() -> Result<TimeDelta, SettingError> {
    match std::env::var(IDEMPOTENCY_TTL_SETTING) {
        Err(_) => Ok(items_domain::service::DEFAULT_IDEMPOTENCY_TTL),
        Ok(text) => parse_ttl(&text),
    }
}

/// `WRITE_EVENT_SCHEMAS`, default [`EventSchemas::CURRENT`].
pub fn write_event_schemas() -> Result<EventSchemas, SettingError> {
    match std::env::var(WRITE_EVENT_SCHEMAS_SETTING) {
        Err(_) => Ok(EventSchemas::CURRENT),
        Ok(text) => parse_event_schemas(&text),
    }
}

fn parse_event_schemas(text: &str) -> Result<EventSchemas, SettingError> {
    text.trim().parse().ok().and_then(EventSchemas::numbered).ok_or_else(|| SettingError::Invalid {
        name: WRITE_EVENT_SCHEMAS_SETTING.to_owned(),
        reason: "must name an event schema set this code knows (1 or 2)",
    })
}

fn parse_ttl(text: &str) -> Result<TimeDelta, SettingError> {
    let invalid = |reason| SettingError::Invalid { name: IDEMPOTENCY_TTL_SETTING.to_owned(), reason };
    let seconds: i64 = text.trim().parse().map_err(|_| invalid("must be a whole number of seconds"))?;
    TimeDelta::try_seconds(seconds.max(0)).ok_or_else(|| invalid("is too large"))
}

/// `get-items`' listing budget: [`crate::limits::LIST_BUDGET`], lowered by
/// `ITEMS_LIST_MAX_BODY_BYTES` when set.
pub fn list_budget() -> items_domain::service::ListBudget {
    crate::limits::list_budget(std::env::var(crate::limits::LIST_MAX_BODY_SETTING).ok().as_deref())
}

/// The DynamoDB client a function uses for its whole life, built once at init.
///
/// In Lambda the runtime hands the function its region and credentials in the
/// environment, so the client is built from them directly: no profile files,
/// no credential or region provider chain, no IMDS client. It trusts only the
/// roots AWS endpoints chain to (`certs/`), not the system's whole CA bundle,
/// which a cold start would otherwise read and parse (an endpoint override over
/// HTTPS keeps the system store). Outside Lambda (no credentials in the
/// environment) it falls back to the SDK's default configuration.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    match LambdaEnvironment::read(|name| std::env::var(name).ok()) {
        Some(environment) => aws_sdk_dynamodb::Client::from_conf(environment.dynamodb_config()),
        None => {
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            aws_sdk_dynamodb::Client::new(&config)
        }
    }
}

/// What the Lambda runtime puts in a function's environment for the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LambdaEnvironment {
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// `AWS_ENDPOINT_URL_DYNAMODB`, else `AWS_ENDPOINT_URL`, as the SDK reads them.
    endpoint_url: Option<String>,
}

/// The roots AWS service endpoints chain to (see `certs/README.md`).
const AWS_ROOTS: [&[u8]; 5] = [
    include_bytes!("../certs/Amazon_Root_CA_1.pem"),
    include_bytes!("../certs/Amazon_Root_CA_2.pem"),
    include_bytes!("../certs/Amazon_Root_CA_3.pem"),
    include_bytes!("../certs/Amazon_Root_CA_4.pem"),
    include_bytes!("../certs/Starfield_Services_Root_Certificate_Authority_-_G2.pem"),
];

impl LambdaEnvironment {
    fn read(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let ignore_endpoints =
            var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Some(Self {
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"))?,
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
            endpoint_url: if ignore_endpoints {
                None
            } else {
                var("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| var("AWS_ENDPOINT_URL"))
            },
        })
    }

    /// Whether the client only ever talks to AWS's own endpoints or plain HTTP
    /// (DynamoDB Local), so that the AWS roots are all it needs.
    fn aws_roots_suffice(&self) -> bool {
        self.endpoint_url.as_deref().is_none_or(|url| url.starts_with("http://"))
    }

    fn dynamodb_config(&self) -> aws_sdk_dynamodb::Config {
        use aws_sdk_dynamodb::config::retry::RetryConfig;
        use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

        let credentials = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "LambdaEnvironment",
        );
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(credentials)
            // What `aws_config::load_defaults` sets: three attempts, a 3.1 s connect timeout.
            .retry_config(RetryConfig::standard())
            .timeout_config(TimeoutConfig::builder().connect_timeout(std::time::Duration::from_millis(3100)).build());
        if self.aws_roots_suffice() {
            builder = builder.http_client(aws_roots_client());
        }
        if let Some(endpoint) = &self.endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        builder.build()
    }
}

fn aws_roots_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let roots = AWS_ROOTS.iter().fold(TrustStore::empty(), |store, pem| store.with_pem_certificate(*pem));
    let builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
    match TlsContext::builder().with_trust_store(roots).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Cannot happen with a fixed trust store; the default context still works.
        Err(_) => builder.build_https(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_gate_names_a_known_schema_set() {
        assert_eq!(parse_event_schemas("1"), Ok(EventSchemas::SET_1));
        assert_eq!(parse_event_schemas(" 2 "), Ok(EventSchemas::SET_2));
        for bad in ["0", "3", "two", ""] {
            assert!(parse_event_schemas(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ttl_is_whole_seconds_and_never_negative() {
        assert_eq!(parse_ttl(" 90 "), Ok(TimeDelta::seconds(90)));
        assert_eq!(parse_ttl("-5"), Ok(TimeDelta::zero()));
        assert!(matches!(parse_ttl("1.5"), Err(SettingError::Invalid { .. })));
        assert!(matches!(parse_ttl(&i64::MAX.to_string()), Err(SettingError::Invalid { .. })));
    }

    fn environment(pairs: &[(&str, &str)]) -> Option<LambdaEnvironment> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        LambdaEnvironment::read(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ];

    #[test]
    fn the_lambda_runtimes_environment_is_read_as_the_sdk_reads_it() {
        let env = environment(LAMBDA).unwrap();
        assert_eq!((env.region.as_str(), env.session_token.as_deref()), ("eu-west-1", Some("token")));
        assert_eq!(env.endpoint_url, None);
        assert!(env.aws_roots_suffice());

        let with = |extra: &[(&str, &str)]| environment(&[LAMBDA, extra].concat()).unwrap();
        let local = with(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:8000")]);
        assert_eq!(local.endpoint_url.as_deref(), Some("http://127.0.0.1:8000"));
        assert!(local.aws_roots_suffice(), "plain HTTP needs no roots");
        let specific = with(&[("AWS_ENDPOINT_URL", "http://a"), ("AWS_ENDPOINT_URL_DYNAMODB", "https://b")]);
        assert_eq!(specific.endpoint_url.as_deref(), Some("https://b"));
        assert!(!specific.aws_roots_suffice(), "another HTTPS endpoint keeps the system's roots");
        let ignored = with(&[("AWS_ENDPOINT_URL", "http://a"), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")]);
        assert_eq!(ignored.endpoint_url, None);
    }

    #[test]
    fn without_credentials_or_region_it_is_not_lambda() {
        assert_eq!(environment(&LAMBDA[1..]), None);
        assert_eq!(environment(&LAMBDA[..1]), None);
        let blank_key: Vec<_> =
            LAMBDA.iter().map(|&(k, v)| if k == "AWS_ACCESS_KEY_ID" { (k, " ") } else { (k, v) }).collect();
        assert_eq!(environment(&blank_key), None);
    }

    #[test]
    fn the_config_carries_region_endpoint_and_retries() {
        let mut pairs = LAMBDA.to_vec();
        pairs.push(("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"));
        let config = environment(&pairs).unwrap().dynamodb_config();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(3));
    }
}
