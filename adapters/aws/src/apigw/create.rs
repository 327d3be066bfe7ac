//! `POST /items` (the `post-item` function).

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::HeaderMap;
use http::header::{HeaderValue, LOCATION};
use items_domain::command::CreateItem;
use items_domain::service::{CreateError, CreateItemService, Created};
use serde::Serialize;

use super::{
    ApiError, Caller, REPEAT_HEADER, answer, collection_path, idempotency_key, json_body, json_response, route,
};
use crate::routes::Function;

/// The `post-item` function's handler.
pub async fn post_item(service: &CreateItemService, request: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
    answer(request, async |caller, request| create(service, caller, request).await).await
}

async fn create(
    service: &CreateItemService,
    caller: Option<&Caller>,
    request: &ApiGatewayProxyRequest,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    let caller = caller.ok_or_else(ApiError::unauthorized)?;
    route(Function::PostItem, caller, request)?;
    let body = json_body(request)?;
    let command = CreateItem::from_json(&body).map_err(|e| ApiError::new(400, e.to_string()))?;
    let key = idempotency_key(&request.headers)?;
    let created = match &key {
        Some(key) => service.create_idempotent(&caller.subject, command, key).await,
        None => service.create(&caller.subject, command).await.map(Created::New),
    }
    .map_err(|error| match error {
        CreateError::Store(error) => ApiError::from(error),
        CreateError::KeyReused => ApiError::new(422, "Idempotency-Key was already used with a different request"),
        refused @ CreateError::NotWritableYet { .. } => ApiError::new(400, refused.to_string()),
        CreateError::Conflict(conflict) => {
            tracing::error!(%conflict, "new item's stream already existed");
            ApiError::new(500, "Internal server error")
        }
    })?;
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
