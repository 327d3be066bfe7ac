//! The functions' settings, read from their environment (Pulumi sets them),
//! and the AWS SDK configuration they build once at init.

use chrono::TimeDelta;

use crate::response_headers::{CORS_SETTING, CorsPolicy};

/// `IDEMPOTENCY_TTL_SECONDS`: how long idempotency keys are remembered.
pub const IDEMPOTENCY_TTL_SETTING: &str = "IDEMPOTENCY_TTL_SECONDS";

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

fn parse_ttl(text: &str) -> Result<TimeDelta, SettingError> {
    let invalid = |reason| SettingError::Invalid { name: IDEMPOTENCY_TTL_SETTING.to_owned(), reason };
    let seconds: i64 = text.trim().parse().map_err(|_| invalid("must be a whole number of seconds"))?;
    TimeDelta::try_seconds(seconds.max(0)).ok_or_else(|| invalid("is too large"))
}

/// The SDK configuration for a function: built once, at init.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The DynamoDB client a function uses for its whole life.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_whole_seconds_and_never_negative() {
        assert_eq!(parse_ttl(" 90 "), Ok(TimeDelta::seconds(90)));
        assert_eq!(parse_ttl("-5"), Ok(TimeDelta::zero()));
        assert!(matches!(parse_ttl("1.5"), Err(SettingError::Invalid { .. })));
        assert!(matches!(parse_ttl(&i64::MAX.to_string()), Err(SettingError::Invalid { .. })));
    }
}
