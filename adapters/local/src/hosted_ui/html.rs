//! The Hosted UI's pages, rendered on the server. Every value that comes from
//! a request or the settings goes through [`escape`]; there is no script.

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} · Items API (development Hosted UI)</title>
<link rel="stylesheet" href="{STYLESHEET_PATH}">
</head>
<body>
<main class="card">
<p class="brand">Items API · development Hosted UI</p>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// Where the Hosted UI's stylesheet is served.
pub const STYLESHEET_PATH: &str = "/hosted-ui/style.css";

/// The sign-in form. `action` is the `/login?…` URL carrying the authorization
/// request; `csrf_token` the token of the form's cookie; `error` is shown above the form.
pub fn sign_in_page(action: &str, client_id: &str, csrf_token: &str, username: &str, error: Option<&str>) -> String {
    let error = match error {
        Some(message) => format!(r#"<p class="error" role="alert" id="sign-in-error">{}</p>"#, escape(message)),
        None => String::new(),
    };
    let described_by = if error.is_empty() { "" } else { r#" aria-describedby="sign-in-error""# };
    let autofocus_user = if username.is_empty() { " autofocus" } else { "" };
    let autofocus_password = if username.is_empty() { "" } else { " autofocus" };
    page(
        "Sign in",
        &format!(
            r#"<h1>Sign in</h1>
<p class="muted">to the app <code>{client_id}</code></p>
{error}
<form method="post" action="{action}">
<input type="hidden" name="{csrf_field}" value="{csrf_token}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="128" value="{username}"{described_by}{autofocus_user}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{described_by}{autofocus_password}>
<button type="submit">Sign in</button>
</form>
<p class="muted small">Users of this server are added with <code>items user add NAME</code>.</p>"#,
            client_id = escape(client_id),
            action = escape(action),
            csrf_field = super::csrf::FIELD_NAME,
            csrf_token = escape(csrf_token),
            username = escape(username),
        ),
    )
}

/// An error the browser is not sent away from: a bad client or redirect URI.
/// `details` are lines of text; `code` lines are shown as code.
pub fn error_page(title: &str, error: &str, message: &str, details: &[(&str, &str)]) -> String {
    let mut list = String::new();
    for (label, value) in details {
        list.push_str(&format!("<dt>{}</dt><dd><code>{}</code></dd>\n", escape(label), escape(value)));
    }
    let details = if list.is_empty() { String::new() } else { format!("<dl>\n{list}</dl>") };
    page(
        title,
        &format!(
            r#"<h1>{title}</h1>
<p class="error" role="alert"><code>{error}</code>: {message}</p>
{details}"#,
            title = escape(title),
            error = escape(error),
            message = escape(message),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn pages_escape_every_value() {
        let hostile = r#""><script>alert(1)</script>"#;
        let form = sign_in_page(hostile, hostile, hostile, hostile, Some(hostile));
        assert!(!form.contains("<script>"), "{form}");
        let error = error_page(hostile, hostile, hostile, &[(hostile, hostile)]);
        assert!(!error.contains("<script>"), "{error}");
        assert!(error.contains("&lt;script&gt;"));
    }
}
