//! The `get-items` Lambda: `GET /items` and `GET /items/{id}`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use items_aws::apigw::get_items;
use items_aws::cursor::HmacCursorCodec;
use items_aws::dynamodb::DynamoReadModel;
use items_aws::lambda_env;
use items_aws::response_headers::{decorate, origin};
use items_domain::service::QueryService;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let read_model = DynamoReadModel::new(lambda_env::dynamodb_client().await, lambda_env::required("ITEMS_TABLE")?);
    let cursors = HmacCursorCodec::new(lambda_env::required("CURSOR_SIGNING_KEY")?.as_bytes());
    let service =
        QueryService::new(Arc::new(read_model), Arc::new(cursors)).with_list_budget(lambda_env::list_budget());
    let cors = lambda_env::cors_policy();
    let (service, cors) = (&service, &cors);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
        let request_origin = origin(&event.payload.headers).map(str::to_owned);
        let mut response = get_items(service, event.payload).await;
        decorate(&mut response.headers, request_origin.as_deref(), cors);
        // EMF on stdout: CloudWatch makes metrics of it, no API call.
        items_aws::metrics::flush_emf("get-items");
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
