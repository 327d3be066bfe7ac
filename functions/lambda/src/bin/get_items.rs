//! The `get-items` Lambda: `GET /items` and `GET /items/{id}`.

use std::sync::Arc;

use items_aws::apigw::get_items;
use items_aws::compose::{self, Settings};
use items_aws::cursor::HmacCursorCodec;
use items_aws::dynamodb::DynamoReadModel;
use items_aws::lambda_env;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let read_model = DynamoReadModel::new(lambda_env::dynamodb_client().await, lambda_env::required("ITEMS_TABLE")?);
    let cursors = HmacCursorCodec::new(lambda_env::required("CURSOR_SIGNING_KEY")?.as_bytes());
    let service = compose::get_items(Arc::new(read_model), Arc::new(cursors), &Settings::from_env()?);
    let service = &service;
    items_lambda::run_api("get-items", async |request, deadline| get_items(service, request, deadline).await).await
}
