//! `GET /items` and `GET /items/{id}` (the `get-items` function).

use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::HeaderMap;
use http::header::ETAG;
use items_domain::ItemId;
use items_domain::service::{QueryError, QueryService};

use super::{ApiError, Caller, answer, collection_path, etag, json_response, next_link, page_limit, route};
use crate::routes::{Function, Operation};

/// `GET /items` and `GET /items/{id}` (the `get-items` function). A listing
/// stops reading in time to answer before `deadline`, the invocation's.
pub async fn get_items(
    service: &QueryService,
    request: ApiGatewayProxyRequest,
    deadline: Instant,
) -> ApiGatewayProxyResponse {
    answer(request, async |caller, request| read(service, caller, request, deadline).await).await
}

async fn read(
    service: &QueryService,
    caller: Option<&Caller>,
    request: &ApiGatewayProxyRequest,
    deadline: Instant,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    let caller = caller.ok_or_else(ApiError::unauthorized)?;
    if route(Function::GetItems, caller, request)?.operation == Operation::GetItem {
        let not_found = || ApiError::new(404, "Item not found");
        let id = request.path_parameters.get("id").and_then(|id| ItemId::parse(id)).ok_or_else(not_found)?;
        let item = service.get(id).await.map_err(query_error)?.ok_or_else(not_found)?;
        let mut headers = HeaderMap::new();
        if let Some(etag) = etag(item.version) {
            headers.insert(ETAG, etag);
        }
        return Ok(json_response(200, &item, headers));
    }
    let limit = page_limit(request)?;
    let cursor = request.query_string_parameters.first("cursor");
    let listing = service.list(limit, cursor, Some(deadline)).await.map_err(query_error)?;
    let headers = next_link(&collection_path(request), limit, listing.next_cursor.as_deref());
    Ok(json_response(200, &listing.items, headers))
}

fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::InvalidCursor => ApiError::new(400, "Invalid cursor"),
        QueryError::Store(error) => ApiError::from(error),
    }
}
