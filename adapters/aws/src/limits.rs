//! The limits AWS puts on this API, in one place: the handlers stay under
//! them, and the local gateway (`items-local`) enforces them with the answers
//! API Gateway gives, so what breaks in AWS breaks on a laptop first.
//!
//! Sources: the Lambda quotas page (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)
//! and the API Gateway quotas for REST APIs
//! (docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html).
//! Where the answer API Gateway gives is not settled by those sources, it is
//! said so here and in `docs/architecture.md`.

use std::time::Duration;

use items_domain::service::{BodyBudget, ListBudget};

/// Lambda: a synchronous invocation's response payload is at most 6 MB; past
/// it the invocation fails (Lambda's error names 6,291,556 bytes) and API
/// Gateway answers [`BAD_GATEWAY`].
pub const LAMBDA_RESPONSE_MAX_BYTES: usize = 6_291_556;

/// API Gateway REST: the integration timeout (29 s by default); past it API
/// Gateway answers [`TIMED_OUT`].
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);

/// API Gateway REST: the request payload is at most 10 MB; past it, 413
/// ([`PAYLOAD_TOO_LARGE`]).
pub const REQUEST_PAYLOAD_MAX_BYTES: usize = 10 * 1024 * 1024;

/// API Gateway REST: the request line and header values, together, at most
/// 10,240 bytes. The status and body API Gateway answers past it are not
/// settled by the sources; the local server answers 431.
pub const REQUEST_HEAD_MAX_BYTES: usize = 10_240;

/// DynamoDB: a Scan or Query page holds at most 1 MB of items
/// (docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html); the
/// embedded store's pages stop there too.
pub const DYNAMODB_PAGE_MAX_BYTES: usize = 1 << 20;

/// An answer API Gateway gives itself, without the function: status and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayAnswer {
    pub status: u16,
    pub message: &'static str,
}

/// What API Gateway answers when the function failed (its response was over
/// the Lambda limit, or malformed).
pub const BAD_GATEWAY: GatewayAnswer = GatewayAnswer { status: 502, message: "Internal server error" };
/// What API Gateway answers past the integration timeout.
pub const TIMED_OUT: GatewayAnswer = GatewayAnswer { status: 504, message: "Endpoint request timed out" };
/// What API Gateway answers to a payload over its limit. The status is
/// documented; the message is what it is reported to send (unconfirmed).
pub const PAYLOAD_TOO_LARGE: GatewayAnswer = GatewayAnswer { status: 413, message: "Request Too Long" };

/// `get-items` without `limit`: a body well under the Lambda cap (about 1 MB
/// of headroom for the headers and the proxy envelope), read in well under the
/// integration timeout, and stopping a second before the invocation's
/// deadline (the function's own timeout, often the shorter) to answer in.
/// The setting [`LIST_MAX_BODY_SETTING`] lowers the body budget.
pub const LIST_BUDGET: ListBudget = ListBudget {
    body: BodyBudget { max_bytes: 5 * 1024 * 1024, size_of: proxy_body_size },
    max_time: Duration::from_secs(10),
    reserve: Duration::from_secs(1),
};

/// The size of a JSON text as a Lambda proxy response's `body` carries it:
/// inside a JSON string, where every `"` and `\` takes one byte more.
pub fn proxy_body_size(json: &[u8]) -> usize {
    json.len() + json.iter().filter(|&&b| b == b'"' || b == b'\\').count()
}

// The listing budget leaves room under the Lambda cap (headers, the proxy
// envelope) and under the integration timeout: checked when compiling.
const _: () = assert!(LIST_BUDGET.body.max_bytes + 512 * 1024 < LAMBDA_RESPONSE_MAX_BYTES);
const _: () = assert!(LIST_BUDGET.max_time.as_secs() * 2 < INTEGRATION_TIMEOUT.as_secs());

/// `ITEMS_LIST_MAX_BODY_BYTES`: a smaller body budget for `GET /items` (tests,
/// or clients that want smaller pages); the same name in Lambda and `items serve`.
pub const LIST_MAX_BODY_SETTING: &str = "ITEMS_LIST_MAX_BODY_BYTES";

/// The listing budget with the setting applied: never above [`LIST_BUDGET`].
pub fn list_budget(setting: Option<&str>) -> ListBudget {
    let max_bytes = setting
        .and_then(|text| text.trim().parse::<usize>().ok())
        .filter(|bytes| *bytes > 0)
        .map_or(LIST_BUDGET.body.max_bytes, |bytes| bytes.min(LIST_BUDGET.body.max_bytes));
    ListBudget { body: BodyBudget { max_bytes, ..LIST_BUDGET.body }, ..LIST_BUDGET }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_can_only_lower_the_budget() {
        let max = LIST_BUDGET.body.max_bytes;
        assert_eq!(list_budget(None).body.max_bytes, max);
        assert_eq!(list_budget(Some("20000")).body.max_bytes, 20_000);
        assert_eq!(list_budget(Some("999999999")).body.max_bytes, max);
        assert_eq!(list_budget(Some("0")).body.max_bytes, max);
        assert_eq!(list_budget(Some("lots")).body.max_bytes, max);
        assert_eq!(list_budget(Some("20000")).max_time, LIST_BUDGET.max_time);
    }

    #[test]
    fn a_proxy_body_counts_the_escapes_its_json_envelope_adds() {
        let json = br#"{"name":"a "quoted" \ name"}"#;
        let carried = serde_json::to_string(std::str::from_utf8(json).unwrap()).unwrap();
        assert_eq!(proxy_body_size(json), carried.len() - 2);
        assert!(proxy_body_size(json) > json.len());
    }
}
