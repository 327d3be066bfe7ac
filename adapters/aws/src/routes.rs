//! The API's route table: every method of every resource, the function behind
//! it and the scope it needs. The local gateway matches, answers `Allow` and
//! preflights from it, the handlers dispatch on it, and `pulumi/routes.json`
//! (which the Pulumi program declares its methods from) is written from it, so
//! the three cannot drift; a test checks the file and `docs/openapi.yaml`.

use http::Method;
use serde::Serialize;

pub const READ_SCOPE: &str = "items/read";
pub const WRITE_SCOPE: &str = "items/write";

pub const ITEMS: &str = "/items";
pub const ITEM: &str = "/items/{id}";
pub const ITEM_EVENTS: &str = "/items/{id}/events";

/// The request headers a browser may send cross-origin (the preflight's
/// `Access-Control-Allow-Headers`).
pub const ALLOW_HEADERS: &[&str] = &["Authorization", "Content-Type", "Idempotency-Key", "If-Match"];
/// How long a browser may cache a preflight answer, in seconds.
pub const PREFLIGHT_MAX_AGE: u32 = 600;

/// The Lambdas behind the API (their names in Pulumi and in the zips).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Function {
    PostItem,
    GetItems,
    ItemCommands,
}

/// What a route does; its kebab-case name is the Pulumi resource name's stem,
/// so renaming one replaces that method on a live stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    ListItems,
    CreateItem,
    GetItem,
    UpdateItem,
    DeleteItem,
    ItemHistory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub operation: Operation,
    pub method: &'static str,
    pub resource: &'static str,
    pub function: Function,
    pub scope: &'static str,
}

const fn route(
    operation: Operation,
    method: &'static str,
    resource: &'static str,
    function: Function,
    scope: &'static str,
) -> Route {
    Route { operation, method, resource, function, scope }
}

pub const ROUTES: &[Route] = &[
    route(Operation::ListItems, "GET", ITEMS, Function::GetItems, READ_SCOPE),
    route(Operation::CreateItem, "POST", ITEMS, Function::PostItem, WRITE_SCOPE),
    route(Operation::GetItem, "GET", ITEM, Function::GetItems, READ_SCOPE),
    route(Operation::UpdateItem, "PATCH", ITEM, Function::ItemCommands, WRITE_SCOPE),
    route(Operation::DeleteItem, "DELETE", ITEM, Function::ItemCommands, WRITE_SCOPE),
    route(Operation::ItemHistory, "GET", ITEM_EVENTS, Function::ItemCommands, READ_SCOPE),
];

/// The route of a method on a resource, as API Gateway puts them in a proxy
/// event (`httpMethod`, `resource`).
pub fn find(method: &Method, resource: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|route| route.method == method.as_str() && route.resource == resource)
}

/// The resource a request path matches, and its `{id}` when it has one. An
/// empty segment matches nothing, as in API Gateway.
pub fn resource(path: &str) -> Option<(&'static str, Option<&str>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["items"] => Some((ITEMS, None)),
        ["items", id] if !id.is_empty() => Some((ITEM, Some(*id))),
        ["items", id, "events"] if !id.is_empty() => Some((ITEM_EVENTS, Some(*id))),
        _ => None,
    }
}

/// The methods a resource answers, `OPTIONS` (the CORS preflight) included,
/// as `Allow` lists them.
pub fn allowed_methods(resource: &str) -> String {
    let methods = ROUTES.iter().filter(|route| route.resource == resource).map(|route| route.method);
    methods.chain(["OPTIONS"]).collect::<Vec<_>>().join(", ")
}

/// The table as `pulumi/routes.json` holds it, with the identity names the
/// Pulumi program declares (the scopes of the resource server, the admin
/// group), so each is written in one place.
pub fn to_json() -> String {
    let table = serde_json::json!({
        "routes": ROUTES,
        "allowHeaders": ALLOW_HEADERS,
        "preflightMaxAge": PREFLIGHT_MAX_AGE,
        "scopes": { "read": READ_SCOPE, "write": WRITE_SCOPE },
        "adminGroup": items_domain::command::ADMIN_GROUP,
    });
    let mut text = serde_json::to_string_pretty(&table).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_a_resource_is_allowed_and_nothing_else() {
        assert_eq!(allowed_methods(ITEMS), "GET, POST, OPTIONS");
        assert_eq!(allowed_methods(ITEM), "GET, PATCH, DELETE, OPTIONS");
        assert_eq!(allowed_methods(ITEM_EVENTS), "GET, OPTIONS");
    }

    #[test]
    fn paths_match_resources_as_api_gateway_does() {
        assert_eq!(resource("/items"), Some((ITEMS, None)));
        assert_eq!(resource("/items/"), Some((ITEMS, None)));
        assert_eq!(resource("/items/abc"), Some((ITEM, Some("abc"))));
        assert_eq!(resource("/items/abc/events"), Some((ITEM_EVENTS, Some("abc"))));
        assert_eq!(resource("/items//events"), None);
        assert_eq!(resource("/other"), None);
        assert_eq!(resource("/items/a/b/c"), None);
    }

    #[test]
    fn a_route_is_found_by_method_and_resource() {
        assert_eq!(find(&Method::PATCH, ITEM).map(|r| r.operation), Some(Operation::UpdateItem));
        assert_eq!(find(&Method::GET, ITEM_EVENTS).map(|r| r.function), Some(Function::ItemCommands));
        assert_eq!(find(&Method::POST, ITEM), None);
    }

    #[test]
    fn operations_and_method_resource_pairs_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!(a.operation, b.operation);
                assert!((a.method, a.resource) != (b.method, b.resource), "{a:?} and {b:?}");
            }
        }
    }

    /// The file the Pulumi program declares its methods from is this table.
    /// `ITEMS_WRITE_ROUTES=1 cargo test -p items-aws routes` rewrites it.
    #[test]
    fn pulumi_routes_file_is_this_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pulumi/routes.json");
        if std::env::var_os("ITEMS_WRITE_ROUTES").is_some() {
            std::fs::write(path, to_json()).expect("write pulumi/routes.json");
        }
        let file = std::fs::read_to_string(path).expect("pulumi/routes.json");
        assert_eq!(
            file,
            to_json(),
            "pulumi/routes.json is stale: run ITEMS_WRITE_ROUTES=1 cargo test -p items-aws routes"
        );
    }
}
