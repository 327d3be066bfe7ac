//! AWS SDK clients, configured the standard way (region, credentials and
//! `AWS_ENDPOINT_URL[_DYNAMODB]` from the environment), with conveniences for
//! DynamoDB Local.

use aws_config::{BehaviorVersion, Region};

/// The DynamoDB endpoint override, from the flag or the SDK's standard settings.
pub fn dynamodb_endpoint(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|url| !url.is_empty())
}

/// How many records the events table holds, as DynamoDB last counted them
/// (updated about every six hours): sizes progress bars and parallel Scans.
/// Fails when the table cannot be described (missing, no access).
pub async fn approximate_events(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<u64> {
    let described =
        client.describe_table().table_name(table).send().await.map_err(|e| {
            anyhow::anyhow!("events table {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e))
        })?;
    Ok(described.table.and_then(|t| t.item_count).unwrap_or(0).max(0) as u64)
}

pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
}

/// Clients for DynamoDB and its streams. With an endpoint override (DynamoDB
/// Local) and no credentials or region in the environment, placeholder ones are
/// used: DynamoDB Local accepts any.
pub async fn clients(endpoint: Option<String>) -> Clients {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(endpoint) = &endpoint {
        loader = loader.endpoint_url(endpoint.clone());
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && std::env::var_os("AWS_PROFILE").is_none() {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "dynamodb-local",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    let config = loader.load().await;
    Clients { dynamodb: aws_sdk_dynamodb::Client::new(&config), streams: aws_sdk_dynamodbstreams::Client::new(&config) }
}
