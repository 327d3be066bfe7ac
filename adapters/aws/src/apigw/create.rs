//! `POST /items` (the `post-item` function).

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::HeaderMap;
use http::header::{HeaderValue, LOCATION};
use items_domain::command::CreateItem;
use items_domain::service::{CreateError, CreateItemService, Created};
use serde::Serialize;

use super::{ApiError, Caller, REPEAT_HEADER, answer, collection_path, idempotency_key, json_body, json_response};
use crate::routes::Function;

/// The `post-item` function's handler.
pub async fn post_item(service: &CreateItemService, request: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
    answer(Function::PostItem, request, async |caller, _, request| create(service, caller, request).await).await
}

async fn create(
    service: &CreateItemService,
    caller: &Caller,
    request: &ApiGatewayProxyRequest,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    let body = json_body(request)?;
    let command = CreateItem::from_json(&body)?;
    let key = idempotency_key(&request.headers)?;
    let created = match &key {
        Some(key) => service.create_idempotent(&caller.subject, command, key).await,
        None => service.create(&caller.subject, command).await.map(Created::New),
    }?;
    let item = created.item();
    match created {
        Created::New(_) => crate::metrics::count(crate::metrics::Counter::ItemsCreated, 1),
        Created::Repeated(_) => crate::metrics::count(crate::metrics::Counter::IdempotentRepeats, 1),
    }
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("{}/{}", collection_path(request), item.id)) {
        headers.insert(LOCATION, location);
    }
    if matches!(created, Created::Repeated(_)) {
        headers.insert(REPEAT_HEADER, HeaderValue::from_static("true"));
    }
    Ok(json_response(201, &Stored { message: "Item stored", item }, headers))
}

/// The classic response shape, `message` first.
#[derive(Serialize)]
struct Stored<'a> {
    message: &'static str,
    item: &'a items_domain::Item,
}

impl From<CreateError> for ApiError {
    fn from(error: CreateError) -> Self {
        match error {
            CreateError::Store(error) => ApiError::from(error),
            CreateError::KeyReused => ApiError::new(422, "Idempotency-Key was already used with a different request"),
            refused @ CreateError::NotWritableYet { .. } => ApiError::new(400, refused.to_string()),
            CreateError::Conflict(conflict) => {
                tracing::error!(%conflict, "new item's stream already existed");
                ApiError::new(500, "Internal server error")
            }
        }
    }
}
