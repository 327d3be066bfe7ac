//! Login CSRF protection for the sign-in form, a double-submit token as
//! Cognito's Hosted UI uses (`XSRF-TOKEN` cookie, `_csrf` form field): the
//! form carries the token its cookie holds, and a post whose field does not
//! match the cookie is refused. A page on another site can make a browser
//! post the form, but it can neither read nor set this server's cookie, so it
//! cannot sign the browser in to an account of its choosing.

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};

use super::grants::random_token;

/// Cognito's names, so a client written against either sees the same form.
pub const COOKIE_NAME: &str = "XSRF-TOKEN";
pub const FIELD_NAME: &str = "_csrf";
/// [`random_token`]'s length: 32 bytes in unpadded base64url.
const TOKEN_CHARS: usize = 43;

fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token of the request's `XSRF-TOKEN` cookie, if it has a well-formed one.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, token)| token.to_owned())
        .filter(|token| well_formed(token))
}

/// The cookie's token, or a new one (with `true`: the cookie must be set).
pub fn token_for(headers: &HeaderMap) -> Result<(String, bool), aws_lc_rs::error::Unspecified> {
    match cookie_token(headers) {
        Some(token) => Ok((token, false)),
        None => Ok((random_token()?, true)),
    }
}

/// `Set-Cookie` for a token: only for the sign-in path, never to scripts,
/// never on a cross-site request.
pub fn set_cookie(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{COOKIE_NAME}={token}; Path=/login; HttpOnly; SameSite=Strict")).ok()
}

/// Whether a posted form's token is the one its cookie holds (in constant time).
pub fn matches(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(cookie), Some(field)) if well_formed(cookie) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(cookie.as_bytes(), field.as_bytes()).is_ok()
        }
        _ => false,
    }
}

/// Whether a browser says the request comes from another origin than this
/// server's (`Host`). `Sec-Fetch-Site` decides where it is sent (anything
/// but `same-origin`, or `none` for a request the user made, is another
/// origin). Otherwise `Origin`, unless it is `null`: this server's pages
/// send no referrer, and with that policy a browser posts `Origin: null`
/// from them too. A client that sends neither (curl) is left to the token.
pub fn cross_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (None | Some("null"), _) => false,
        (Some(origin), Some(host)) => origin != format!("http://{host}") && origin != format!("https://{host}"),
        (Some(_), None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(cookie).unwrap());
        headers
    }

    #[test]
    fn the_token_is_read_from_among_other_cookies() {
        let token = random_token().unwrap();
        let found = cookie_token(&headers(&format!("theme=dark; {COOKIE_NAME}={token}; lang=en")));
        assert_eq!(found.as_deref(), Some(token.as_str()));
        assert_eq!(cookie_token(&headers("XSRF-TOKEN=short")), None, "not one of ours");
        assert_eq!(cookie_token(&HeaderMap::new()), None);
    }

    #[test]
    fn a_new_token_is_made_only_without_a_usable_cookie() {
        let (fresh, set) = token_for(&HeaderMap::new()).unwrap();
        assert!(set && well_formed(&fresh));
        let (kept, set) = token_for(&headers(&format!("{COOKIE_NAME}={fresh}"))).unwrap();
        assert_eq!((kept.as_str(), set), (fresh.as_str(), false));
    }

    #[test]
    fn only_the_cookies_own_token_matches() {
        let token = random_token().unwrap();
        let other = random_token().unwrap();
        assert!(matches(Some(&token), Some(&token)));
        assert!(!matches(Some(&token), Some(&other)));
        assert!(!matches(Some(&token), None));
        assert!(!matches(None, Some(&token)));
        assert!(!matches(Some(""), Some("")), "an empty cookie is no token");
    }

    #[test]
    fn the_cookie_stays_on_the_sign_in_path_away_from_scripts_and_other_sites() {
        let cookie = set_cookie("abc").unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with("XSRF-TOKEN=abc;"));
        for attribute in ["Path=/login", "HttpOnly", "SameSite=Strict"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
    }
}
