//! The headers every API response carries: CORS for the allowed origins and
//! the security headers. The Lambdas and the local gateway both call
//! [`decorate`], so a browser sees the same headers in AWS and on a laptop.

use http::HeaderMap;
use http::header::{self, HeaderValue};

/// The setting that lists the origins allowed by CORS, comma-separated; `*`
/// allows any. The same name in Lambda (environment) and in `items serve`.
pub const CORS_SETTING: &str = "CORS_ALLOWED_ORIGINS";

/// Response headers a page on another origin may read.
pub const EXPOSED_HEADERS: &str = "Location, Link, ETag, Idempotent-Replayed, x-amzn-requestid";

/// Origins whose pages may read the API's responses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<String>,
}

impl CorsPolicy {
    pub fn new(origins: impl IntoIterator<Item = String>) -> Self {
        let origins = origins.into_iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        Self { origins }
    }

    /// From the setting's text: origins separated by commas.
    pub fn parse(setting: &str) -> Self {
        Self::new(setting.split(',').map(str::to_owned))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    fn allow(&self, origin: Option<&str>) -> Option<HeaderValue> {
        if self.origins.iter().any(|allowed| allowed == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        let origin = origin.filter(|o| self.origins.iter().any(|allowed| allowed == o))?;
        HeaderValue::from_str(origin).ok()
    }
}

/// Adds CORS (when `request_origin` is allowed) and the security headers.
/// `Vary: Origin` is always set: the answer depends on the origin.
pub fn decorate(headers: &mut HeaderMap, request_origin: Option<&str>, cors: &CorsPolicy) {
    if let Some(origin) = cors.allow(request_origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    }
    let varies_by_origin = headers
        .get_all(header::VARY)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|f| f.trim().eq_ignore_ascii_case("origin"))));
    if !varies_by_origin {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
}

/// The request's `Origin` header, if any.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decorated(origin: Option<&str>, policy: &CorsPolicy) -> HeaderMap {
        let mut headers = HeaderMap::new();
        decorate(&mut headers, origin, policy);
        headers
    }

    #[test]
    fn an_allowed_origin_is_echoed_with_the_exposed_headers() {
        let policy = CorsPolicy::parse("https://app.example, https://other.example");
        let headers = decorated(Some("https://other.example"), &policy);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://other.example");
        assert_eq!(headers[header::ACCESS_CONTROL_EXPOSE_HEADERS], EXPOSED_HEADERS);
        assert_eq!(headers[header::VARY], "Origin");
    }

    #[test]
    fn another_origin_gets_no_cors_headers_but_the_rest() {
        let policy = CorsPolicy::parse("https://app.example");
        for origin in [Some("https://evil.example"), None] {
            let headers = decorated(origin, &policy);
            assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
            assert!(headers.get(header::ACCESS_CONTROL_EXPOSE_HEADERS).is_none());
            assert_eq!(headers[header::VARY], "Origin");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        }
    }

    #[test]
    fn a_wildcard_allows_any_origin_as_a_wildcard() {
        let headers = decorated(Some("https://anyone.example"), &CorsPolicy::parse("*"));
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[test]
    fn vary_is_not_repeated() {
        let mut headers = HeaderMap::new();
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding, origin"));
        decorate(&mut headers, None, &CorsPolicy::default());
        assert_eq!(headers.get_all(header::VARY).iter().count(), 1);
    }
}
