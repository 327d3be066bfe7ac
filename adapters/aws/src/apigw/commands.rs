//! `PATCH` and `DELETE /items/{id}` and `GET /items/{id}/events` (the
//! `item-commands` function): changes decided on the item's event stream, and
//! the stream itself as the item's history. No access to the read table.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::HeaderMap;
use http::header::{ETAG, HeaderValue, IF_MATCH};
use items_domain::ItemId;
use items_domain::command::{ADMIN_GROUP, Actor};
use items_domain::command::{Precondition, UpdateItem};
use items_domain::decide::Rejection;
use items_domain::service::{ChangeError, ChangeItemService, Changed, HistoryService};

use crate::metrics::Counter;

use super::{ApiError, Caller, REPEAT_HEADER, answer, etag, idempotency_key, json_body, json_response};
use crate::routes::{Function, Operation, Route};

/// What the `item-commands` function serves.
pub struct ItemCommands {
    pub changes: ChangeItemService,
    pub history: HistoryService,
}

/// The `item-commands` function's handler.
pub async fn item_commands(functions: &ItemCommands, request: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
    answer(Function::ItemCommands, request, async |caller, route, request| {
        dispatch(functions, caller, route, request).await
    })
    .await
}

async fn dispatch(
    functions: &ItemCommands,
    caller: &Caller,
    route: Route,
    request: &ApiGatewayProxyRequest,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    // Not a UUID: no item has that id.
    let id = request.path_parameters.get("id").and_then(|id| ItemId::parse(id)).ok_or_else(ApiError::not_found)?;
    match route.operation {
        Operation::ItemHistory => {
            let limit = super::page_limit(request)?;
            let after = match request.query_string_parameters.first("cursor") {
                None => 0,
                Some(text) => text.parse::<u64>().map_err(|_| ApiError::new(400, "invalid cursor"))?,
            };
            let page = functions.history.history(id, limit, after).await?.ok_or_else(ApiError::not_found)?;
            // The path as the client called it (with the stage in AWS).
            let path = request.request_context.path.as_deref().or(request.path.as_deref()).unwrap_or_default();
            let headers = super::next_link(path, &[], limit, page.next.map(|next| next.to_string()).as_deref());
            Ok(json_response(200, &page.entries, headers))
        }
        Operation::UpdateItem => {
            let update = UpdateItem::from_json(&json_body(request)?)?;
            let (expected, key) = (if_match(&request.headers)?, idempotency_key(&request.headers)?);
            let changed = functions.changes.update(&actor(caller), id, update, expected, key.as_ref()).await;
            let changed = changed?;
            counted(&changed, Counter::ItemsUpdated);
            let mut headers = repeat_header(&changed);
            if let Some(etag) = etag(changed.item.version) {
                headers.insert(ETAG, etag);
            }
            Ok(json_response(200, &changed.item, headers))
        }
        Operation::DeleteItem => {
            let (expected, key) = (if_match(&request.headers)?, idempotency_key(&request.headers)?);
            let changed = functions.changes.delete(&actor(caller), id, expected, key.as_ref()).await;
            let changed = changed?;
            counted(&changed, Counter::ItemsDeleted);
            let mut response = ApiGatewayProxyResponse::default();
            response.status_code = 204;
            response.headers = repeat_header(&changed);
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

fn repeat_header(changed: &Changed) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if changed.repeated {
        headers.insert(REPEAT_HEADER, HeaderValue::from_static("true"));
    }
    headers
}

/// `If-Match` as RFC 9110 §13.1.1 reads it: `*` holds for any existing
/// item; a list of entity tags holds when one of them is the item's `ETag`
/// (`"<version>"`) by strong comparison, so a weak tag (`W/"3"`) or a tag
/// that is not one of ours never matches (412). Not the header's syntax: 400.
/// A missing or deleted item is 404 with or without it: a precondition is
/// ignored when the request would fail without it (§13.2.1).
fn if_match(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else { return Ok(Precondition::Any) };
    let invalid = || ApiError::new(400, r#"If-Match must be * or a list of ETags of this item, such as "3""#);
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text == "*" {
        return Ok(Precondition::Any);
    }
    let mut versions = Vec::new();
    for tag in text.split(',').map(str::trim) {
        let (weak, opaque) = match tag.strip_prefix("W/") {
            Some(opaque) => (true, opaque),
            None => (false, tag),
        };
        let quoted = opaque.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')).ok_or_else(invalid)?;
        // etagc: no DQUOTE, no controls, no space.
        if quoted.bytes().any(|b| b == b'"' || b <= b' ' || b == 0x7f) {
            return Err(invalid());
        }
        if !weak && let Ok(version) = quoted.parse::<u64>() {
            versions.push(version);
        }
    }
    Ok(Precondition::OneOf(versions))
}

impl From<ChangeError> for ApiError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::Rejected(Rejection::NotFound) => ApiError::not_found(),
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
            refused @ ChangeError::NotWritableYet { .. } => ApiError::new(400, refused.to_string()),
            ChangeError::Rejected(Rejection::AlreadyExists) => ApiError::new(409, "Item already exists"),
            ChangeError::Store(error) => ApiError::from(error),
        }
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
    fn if_match_takes_our_etags_lists_and_star() {
        assert_eq!(if_match(&HeaderMap::new()), Ok(Precondition::Any));
        assert_eq!(if_match(&headers("*")), Ok(Precondition::Any));
        assert_eq!(if_match(&headers(r#""3""#)), Ok(Precondition::OneOf(vec![3])));
        assert_eq!(if_match(&headers(r#""2", "3""#)), Ok(Precondition::OneOf(vec![2, 3])));
    }

    /// Review finding 14: weak tags and tags that are not ours are valid
    /// syntax that never matches (412 once decided), not a bad request.
    #[test]
    fn weak_and_foreign_tags_never_match() {
        assert_eq!(if_match(&headers(r#"W/"3""#)), Ok(Precondition::OneOf(vec![])));
        assert_eq!(if_match(&headers(r#""three""#)), Ok(Precondition::OneOf(vec![])));
        assert_eq!(if_match(&headers(r#"W/"2", "3""#)), Ok(Precondition::OneOf(vec![3])));
    }

    #[test]
    fn if_match_that_is_not_the_syntax_is_a_bad_request() {
        for bad in ["3", "", r#""3"#, r#""3", "#, r#""a b""#, r#"W/3"#] {
            assert_eq!(if_match(&headers(bad)).map_err(|e| e.status), Err(400), "{bad}");
        }
    }
}
