//! `GET /items` and `GET /items/{id}` (the `get-items` function): the read
//! model, by creator through its index, and an item as it was, from its stream.

use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::HeaderMap;
use http::header::ETAG;
use items_domain::ItemId;
use items_domain::event::rfc3339;
use items_domain::service::{HistoryService, PointInTime, QueryError, QueryService, Selection};

use super::{ApiError, Caller, answer, collection_path, etag, json_response, next_link, page_limit};
use crate::routes::{Function, Operation, Route};

/// What the `get-items` function serves.
pub struct ItemQueries {
    /// The read model: listings and items as they are.
    pub items: QueryService,
    /// The log, read-only: an item as it was (`?version`, `?at`).
    pub history: HistoryService,
}

/// `?createdBy` value that means the caller.
pub const CREATED_BY_ME: &str = "me";
/// Longest `?createdBy` (a Cognito `sub` is a 36-character UUID).
const MAX_CREATOR_CHARS: usize = 128;

/// `GET /items` and `GET /items/{id}` (the `get-items` function). A listing
/// stops reading in time to answer before `deadline`, the invocation's.
pub async fn get_items(
    functions: &ItemQueries,
    request: ApiGatewayProxyRequest,
    deadline: Instant,
) -> ApiGatewayProxyResponse {
    answer(Function::GetItems, request, async |caller, route, request| {
        read(functions, caller, route, request, deadline).await
    })
    .await
}

async fn read(
    functions: &ItemQueries,
    caller: &Caller,
    route: Route,
    request: &ApiGatewayProxyRequest,
    deadline: Instant,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    if route.operation == Operation::GetItem {
        return get_item(functions, request, deadline).await;
    }
    let limit = page_limit(request)?;
    let selection = match request.query_string_parameters.first("createdBy") {
        None => Selection::All,
        Some(creator) => Selection::CreatedBy(creator_of(caller, creator)?),
    };
    let cursor = request.query_string_parameters.first("cursor");
    let listing = functions.items.list(selection, limit, cursor, Some(deadline)).await.map_err(query_error)?;
    // The next page lists the same creator's items ("me" stays "me").
    let creator = request.query_string_parameters.first("createdBy");
    let query: Vec<(&str, &str)> = creator.map(|creator| ("createdBy", creator)).into_iter().collect();
    let headers = next_link(&collection_path(request), &query, limit, listing.next_cursor.as_deref());
    Ok(json_response(200, &listing.items, headers))
}

/// Whose items `?createdBy` asks for: `me` (the caller), or any user's
/// `sub`. The read rule is one for every route (security review N3): every
/// reader (`items/read`) reads every item, its history and its past
/// versions; only changes need ownership or `items-admins`. Listing one
/// creator's items shows nothing `GET /items` does not.
fn creator_of<'a>(caller: &'a Caller, creator: &'a str) -> Result<&'a str, ApiError> {
    if creator == CREATED_BY_ME || creator == caller.subject {
        return Ok(&caller.subject);
    }
    if creator.is_empty() || creator.chars().count() > MAX_CREATOR_CHARS || creator.chars().any(char::is_control) {
        return Err(ApiError::new(
            400,
            format!("`createdBy` must be `me` or a user's sub of at most {MAX_CREATOR_CHARS} characters"),
        ));
    }
    Ok(creator)
}

/// `GET /items/{id}`: as it is (the read model), or as it was at `?version`
/// or `?at` (its stream, folded): 410 for a state that is a deletion.
async fn get_item(
    functions: &ItemQueries,
    request: &ApiGatewayProxyRequest,
    deadline: Instant,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    let id = request.path_parameters.get("id").and_then(|id| ItemId::parse(id)).ok_or_else(ApiError::not_found)?;
    let item = match point_in_time(request)? {
        None => functions.items.get(id).await.map_err(query_error)?.ok_or_else(ApiError::not_found)?,
        Some(point) => {
            // Stops as the listing does, the reserve before the deadline.
            let stop_by = deadline.checked_sub(functions.items.reserve());
            let item = functions.history.item_at(id, point, stop_by).await?.ok_or_else(|| match point {
                PointInTime::Version(version) => ApiError::new(404, format!("The item has no version {version}")),
                PointInTime::Time(_) => ApiError::new(404, "The item did not exist at that time"),
            })?;
            if item.deleted {
                let message = format!("The item was deleted at version {}", item.version);
                return Err(ApiError::with_current_version(410, message, item.version));
            }
            item
        }
    };
    let mut headers = HeaderMap::new();
    if let Some(etag) = etag(item.version) {
        headers.insert(ETAG, etag);
    }
    Ok(json_response(200, &item, headers))
}

/// `?version=N` (from 1) or `?at=<RFC 3339 time>`, at most one of them.
fn point_in_time(request: &ApiGatewayProxyRequest) -> Result<Option<PointInTime>, ApiError> {
    let parameters = &request.query_string_parameters;
    match (parameters.first("version"), parameters.first("at")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ApiError::new(400, "Give `version` or `at`, not both")),
        (Some(version), None) => match version.parse::<u64>() {
            Ok(version) if version >= 1 => Ok(Some(PointInTime::Version(version))),
            _ => Err(ApiError::new(400, "`version` must be an integer from 1")),
        },
        (None, Some(at)) => rfc3339::parse(at).map(|at| Some(PointInTime::Time(at))).map_err(|_| {
            ApiError::new(400, "`at` must be an RFC 3339 date-time with a time zone, such as 2026-01-02T03:04:05Z")
        }),
    }
}

fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::InvalidCursor => ApiError::new(400, "Invalid cursor"),
        QueryError::Store(error) => ApiError::from(error),
    }
}
