//! `PATCH` and `DELETE /items/{id}` and `GET /items/{id}/events` (the
//! `item-commands` function): changes decided on the item's event stream, and
//! the stream itself as the item's history. No access to the read table.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::header::{ETAG, HeaderValue, IF_MATCH};
use http::{HeaderMap, Method};
use items_domain::ItemId;
use items_domain::command::UpdateItem;
use items_domain::decide::{ADMIN_GROUP, Actor, Rejection};
use items_domain::service::{ChangeError, ChangeItemService, Changed, HistoryService};

use crate::metrics::Counter;

use super::{
    ApiError, Caller, IDEMPOTENT_REPLAYED, READ_SCOPE, WRITE_SCOPE, answer, etag, idempotency_key, json_body,
    json_response,
};

/// What the `item-commands` function serves.
pub struct CommandFunctions {
    pub changes: ChangeItemService,
    pub history: HistoryService,
}

/// The `item-commands` function's handler.
pub async fn item_commands(functions: &CommandFunctions, request: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
    answer(request, async |caller, request| dispatch(functions, caller, request).await).await
}

fn not_found() -> ApiError {
    ApiError::new(404, "Item not found")
}

async fn dispatch(
    functions: &CommandFunctions,
    caller: Option<&Caller>,
    request: &ApiGatewayProxyRequest,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    let caller = caller.ok_or_else(ApiError::unauthorized)?;
    let history = request.resource.as_deref().is_some_and(|resource| resource.ends_with("/events"));
    let scope = if history { READ_SCOPE } else { WRITE_SCOPE };
    if !caller.has_scope(scope) {
        return Err(ApiError::forbidden());
    }
    // Not a UUID: no item has that id.
    let id = request.path_parameters.get("id").and_then(|id| ItemId::parse(id)).ok_or_else(not_found)?;
    match (&request.http_method, history) {
        (&Method::GET, true) => {
            let entries = functions.history.history(id).await?.ok_or_else(not_found)?;
            Ok(json_response(200, &entries, HeaderMap::new()))
        }
        (&Method::PATCH, false) => {
            let update = UpdateItem::from_json(&json_body(request)?).map_err(|e| ApiError::new(400, e.to_string()))?;
            let (expected, key) = (if_match(&request.headers)?, idempotency_key(&request.headers)?);
            let changed = functions.changes.update(&actor(caller), id, update, expected, key.as_ref()).await;
            let changed = changed.map_err(change_error)?;
            counted(&changed, Counter::ItemsUpdated);
            let mut headers = replayed(&changed);
            if let Some(etag) = etag(changed.item.version) {
                headers.insert(ETAG, etag);
            }
            Ok(json_response(200, &changed.item, headers))
        }
        (&Method::DELETE, false) => {
            let (expected, key) = (if_match(&request.headers)?, idempotency_key(&request.headers)?);
            let changed = functions.changes.delete(&actor(caller), id, expected, key.as_ref()).await;
            let changed = changed.map_err(change_error)?;
            counted(&changed, Counter::ItemsDeleted);
            let mut response = ApiGatewayProxyResponse::default();
            response.status_code = 204;
            response.headers = replayed(&changed);
            Ok(response)
        }
        _ => Err(ApiError::new(405, "Method not allowed")),
    }
}

fn counted(changed: &Changed, counter: Counter) {
    crate::metrics::count(if changed.repeated { Counter::IdempotentRepeats } else { counter }, 1);
}

fn actor(caller: &Caller) -> Actor {
    Actor { subject: caller.subject.clone(), is_admin: caller.is_in_group(ADMIN_GROUP) }
}

fn replayed(changed: &Changed) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if changed.repeated {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    headers
}

/// `If-Match: "<version>"` (as `ETag` sends it); `*` matches any existing item.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|version| version.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::new(400, r#"If-Match must be an ETag of this item, such as "3""#))
}

fn change_error(error: ChangeError) -> ApiError {
    match error {
        ChangeError::Rejected(Rejection::NotFound) => not_found(),
        ChangeError::Rejected(Rejection::NotOwner) => {
            ApiError::new(403, format!("Only the item's creator or a member of {ADMIN_GROUP} may change it"))
        }
        ChangeError::Rejected(Rejection::VersionMismatch { current, .. }) => ApiError::with_current_version(
            412,
            format!("The item is at version {current}, not the one If-Match names"),
            current,
        ),
        ChangeError::Conflict { current } => ApiError::with_current_version(
            409,
            format!("The item changed while this request was handled; it is now at version {current}"),
            current,
        ),
        ChangeError::KeyReused => ApiError::new(422, "Idempotency-Key was already used with a different request"),
        ChangeError::Rejected(Rejection::AlreadyExists) => ApiError::new(409, "Item already exists"),
        ChangeError::Store(error) => ApiError::from(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(if_match: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IF_MATCH, HeaderValue::from_str(if_match).unwrap());
        headers
    }

    #[test]
    fn if_match_takes_our_etags_and_star() {
        assert_eq!(if_match(&HeaderMap::new()), Ok(None));
        assert_eq!(if_match(&headers(r#""3""#)), Ok(Some(3)));
        assert_eq!(if_match(&headers("*")), Ok(None));
        for bad in ["3", r#"W/"3""#, r#""three""#, r#""-1""#, ""] {
            assert_eq!(if_match(&headers(bad)).map_err(|e| e.status), Err(400), "{bad}");
        }
    }
}
