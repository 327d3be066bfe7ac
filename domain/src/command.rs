//! Commands: who asks ([`Actor`]) for what ([`Command`]), and the
//! validation of the `POST /items` and `PATCH /items/{id}` bodies they come from.

use serde_json::{Map, Value};

pub const DEFAULT_NAME: &str = "Unnamed";
pub const DEFAULT_TIMESTAMP: &str = "N/A";
pub const NAME_MAX_CHARS: usize = 256;
pub const TIMESTAMP_MAX_CHARS: usize = 64;
pub const DESCRIPTION_MAX_CHARS: usize = 2000;

/// The Cognito group whose members may change or delete anyone's items.
pub const ADMIN_GROUP: &str = "items-admins";

/// Who asks: the access token's `sub`, and whether they are in [`ADMIN_GROUP`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub subject: String,
    pub is_admin: bool,
}

/// What a caller asks of an item; [`crate::decide`] says what it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create(CreateItem),
    Update(UpdateItem),
    Delete,
}

/// A validated request to create an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateItem {
    pub name: String,
    pub timestamp: String,
    pub description: Option<String>,
}

/// Why a body was refused. The messages are shown to API clients as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("Request body is not valid JSON")]
    InvalidJson,
    #[error("Request body must be a JSON object")]
    NotAnObject,
    #[error("`{field}` must be a string")]
    NotAString { field: &'static str },
    #[error("`{field}` must be {min} to {max} characters")]
    BadLength { field: &'static str, min: usize, max: usize },
    #[error("`{field}` must be plain text: no control characters but tab and line breaks")]
    NotPlainText { field: &'static str },
    #[error("Request body must set `name`, `timestamp` or `description`")]
    NothingToChange,
}

/// A validated request to change an item: the fields given, at least one.
/// The versions a change may apply at (HTTP's `If-Match`): the change is
/// decided only if the item is at one of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// At whatever version (no `If-Match`, or `*`).
    #[default]
    Any,
    /// At one of these; an empty list never holds (`If-Match` naming only
    /// weak tags, which never match a strong comparison).
    OneOf(Vec<u64>),
}

impl Precondition {
    pub fn holds(&self, version: u64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::OneOf(versions) => versions.contains(&version),
        }
    }
}

/// `Some(v)`: at version `v`; `None`: at any.
impl From<Option<u64>> for Precondition {
    fn from(version: Option<u64>) -> Self {
        version.map_or(Precondition::Any, |version| Precondition::OneOf(vec![version]))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateItem {
    pub name: Option<String>,
    pub timestamp: Option<String>,
    /// `Some(None)`: clear it (`null` or `""`); `None`: leave it.
    pub description: Option<Option<String>>,
}

impl UpdateItem {
    /// Parses a `PATCH` body: the same rules per field as [`CreateItem`], and
    /// an object with none of the fields (empty, or unknown fields only) is
    /// refused.
    pub fn from_json(body: &[u8]) -> Result<Self, ValidationError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| ValidationError::InvalidJson)?;
        let Value::Object(fields) = value else {
            return Err(ValidationError::NotAnObject);
        };
        let name = optional_string(&fields, "name", 1, NAME_MAX_CHARS)?.map(str::to_owned);
        let timestamp = optional_string(&fields, "timestamp", 0, TIMESTAMP_MAX_CHARS)?.map(str::to_owned);
        let description = description(&fields)?;
        if name.is_none() && timestamp.is_none() && description.is_none() {
            return Err(ValidationError::NothingToChange);
        }
        Ok(Self { name, timestamp, description })
    }
}

impl CreateItem {
    /// Parses and validates a JSON body. Unknown fields are ignored, as the
    /// classic API did; `name` and `timestamp` must be strings when present.
    pub fn from_json(body: &[u8]) -> Result<Self, ValidationError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| ValidationError::InvalidJson)?;
        let Value::Object(fields) = value else {
            return Err(ValidationError::NotAnObject);
        };
        let name = optional_string(&fields, "name", 1, NAME_MAX_CHARS)?.unwrap_or(DEFAULT_NAME);
        let timestamp = optional_string(&fields, "timestamp", 0, TIMESTAMP_MAX_CHARS)?.unwrap_or(DEFAULT_TIMESTAMP);
        let description = description(&fields)?.flatten();
        Ok(Self { name: name.to_owned(), timestamp: timestamp.to_owned(), description })
    }
}

/// The fields' rules, as the API applies them to what it stores, for events
/// that come from elsewhere (`items import`): what an API call could not
/// have stored is refused. `subject` is a Cognito `sub` (a UUID); at most
/// [`SUBJECT_MAX_CHARS`] characters, no control characters.
pub fn check_event_fields(payload: &crate::event::EventPayload, subject: &str) -> Result<(), ValidationError> {
    use crate::event::EventPayload;
    let text = |field: &'static str, value: &str, min: usize, max: usize| {
        let chars = value.chars().count();
        if !(min..=max).contains(&chars) {
            return Err(ValidationError::BadLength { field, min, max });
        }
        Ok(())
    };
    let plain = |field: &'static str, value: &str| {
        if value.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
            return Err(ValidationError::NotPlainText { field });
        }
        Ok(())
    };
    text("subject", subject, 1, SUBJECT_MAX_CHARS)?;
    if subject.chars().any(char::is_control) {
        return Err(ValidationError::NotPlainText { field: "subject" });
    }
    let (name, timestamp, description) = match payload {
        EventPayload::ItemCreated(created) => {
            (Some(&created.name), Some(&created.timestamp), created.description.as_ref())
        }
        EventPayload::ItemUpdated(updated) => {
            (updated.name.as_ref(), updated.timestamp.as_ref(), updated.description.as_ref().and_then(Option::as_ref))
        }
        EventPayload::ItemDeleted => (None, None, None),
    };
    if let Some(name) = name {
        text("name", name, 1, NAME_MAX_CHARS)?;
    }
    if let Some(timestamp) = timestamp {
        text("timestamp", timestamp, 0, TIMESTAMP_MAX_CHARS)?;
    }
    if let Some(description) = description {
        text("description", description, 1, DESCRIPTION_MAX_CHARS)?;
        plain("description", description)?;
    }
    Ok(())
}

/// The longest `sub` an event may carry (a Cognito `sub` is a 36-character UUID).
pub const SUBJECT_MAX_CHARS: usize = 128;

/// `description`: absent (`None`), none (`Some(None)`: `null` or `""`, as a
/// cleared form field sends it), or plain text of at most
/// [`DESCRIPTION_MAX_CHARS`] characters, line breaks and tabs allowed.
fn description(fields: &Map<String, Value>) -> Result<Option<Option<String>>, ValidationError> {
    const FIELD: &str = "description";
    if matches!(fields.get(FIELD), Some(Value::Null)) {
        return Ok(Some(None));
    }
    let Some(text) = optional_string(fields, FIELD, 0, DESCRIPTION_MAX_CHARS)? else {
        return Ok(None);
    };
    if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(ValidationError::NotPlainText { field: FIELD });
    }
    Ok(Some(Some(text.to_owned()).filter(|text| !text.is_empty())))
}

fn optional_string<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<Option<&'a str>, ValidationError> {
    match fields.get(field) {
        None => Ok(None),
        Some(Value::String(text)) => {
            // Limits count characters (what a person typed), not bytes.
            let chars = text.chars().count();
            if (min..=max).contains(&chars) {
                Ok(Some(text))
            } else {
                Err(ValidationError::BadLength { field, min, max })
            }
        }
        Some(_) => Err(ValidationError::NotAString { field }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ValidationError::BadLength;

    fn parse(body: &str) -> Result<CreateItem, ValidationError> {
        CreateItem::from_json(body.as_bytes())
    }

    #[test]
    fn defaults_apply_to_missing_fields() {
        assert_eq!(
            parse("{}").unwrap(),
            CreateItem { name: "Unnamed".into(), timestamp: "N/A".into(), description: None }
        );
    }

    #[test]
    fn given_fields_are_kept_and_unknown_ones_ignored() {
        assert_eq!(
            parse(r#"{"name":"Pen","timestamp":"2024-01-01","colour":"blue"}"#).unwrap(),
            CreateItem { name: "Pen".into(), timestamp: "2024-01-01".into(), description: None }
        );
    }

    #[test]
    fn invalid_json_and_non_objects_are_rejected() {
        assert_eq!(parse("{"), Err(ValidationError::InvalidJson));
        assert_eq!(parse(""), Err(ValidationError::InvalidJson));
        assert_eq!(parse("[]"), Err(ValidationError::NotAnObject));
        assert_eq!(parse("\"Pen\""), Err(ValidationError::NotAnObject));
        assert_eq!(parse("null"), Err(ValidationError::NotAnObject));
    }

    #[test]
    fn wrong_types_are_rejected() {
        assert_eq!(parse(r#"{"name":5}"#), Err(ValidationError::NotAString { field: "name" }));
        assert_eq!(parse(r#"{"name":null}"#), Err(ValidationError::NotAString { field: "name" }));
        assert_eq!(parse(r#"{"timestamp":["x"]}"#), Err(ValidationError::NotAString { field: "timestamp" }));
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        let max_name = "é".repeat(256);
        assert_eq!(parse(&format!(r#"{{"name":"{max_name}"}}"#)).unwrap().name, max_name);
        let long_name = "a".repeat(257);
        assert_eq!(
            parse(&format!(r#"{{"name":"{long_name}"}}"#)),
            Err(ValidationError::BadLength { field: "name", min: 1, max: 256 })
        );
        assert_eq!(parse(r#"{"name":""}"#), Err(ValidationError::BadLength { field: "name", min: 1, max: 256 }));
        assert_eq!(parse(r#"{"timestamp":""}"#).unwrap().timestamp, "");
        let long_timestamp = "1".repeat(65);
        assert_eq!(
            parse(&format!(r#"{{"timestamp":"{long_timestamp}"}}"#)),
            Err(ValidationError::BadLength { field: "timestamp", min: 0, max: 64 })
        );
    }

    #[test]
    fn an_update_sets_only_the_fields_given_and_at_least_one() {
        let update = |body: &str| UpdateItem::from_json(body.as_bytes());
        assert_eq!(update(r#"{"name":"Ink"}"#), Ok(UpdateItem { name: Some("Ink".into()), ..Default::default() }));
        assert_eq!(
            update(r#"{"timestamp":""}"#),
            Ok(UpdateItem { timestamp: Some(String::new()), ..Default::default() })
        );
        assert_eq!(update("{}"), Err(ValidationError::NothingToChange));
        assert_eq!(update(r#"{"colour":"blue"}"#), Err(ValidationError::NothingToChange));
        assert_eq!(update(r#"{"name":""}"#), Err(ValidationError::BadLength { field: "name", min: 1, max: 256 }));
        assert_eq!(update(r#"{"name":null}"#), Err(ValidationError::NotAString { field: "name" }));
        assert_eq!(update("[]"), Err(ValidationError::NotAnObject));
        assert_eq!(update("{"), Err(ValidationError::InvalidJson));
    }

    #[test]
    fn a_description_is_optional_plain_text_of_at_most_2000_characters() {
        let described = |body: &str| parse(body).map(|create| create.description);
        assert_eq!(
            described(r#"{"description":"Blue ink\nrefillable\t(x2)"}"#),
            Ok(Some("Blue ink\nrefillable\t(x2)".into()))
        );
        // None, however it is sent.
        assert_eq!(described("{}"), Ok(None));
        assert_eq!(described(r#"{"description":null}"#), Ok(None));
        assert_eq!(described(r#"{"description":""}"#), Ok(None));
        let longest = "é".repeat(2000);
        assert_eq!(described(&format!(r#"{{"description":"{longest}"}}"#)), Ok(Some(longest)));
        let too_long = BadLength { field: "description", min: 0, max: 2000 };
        assert_eq!(described(&format!(r#"{{"description":"{}"}}"#, "a".repeat(2001))), Err(too_long));
        assert_eq!(described(r#"{"description":5}"#), Err(ValidationError::NotAString { field: "description" }));
        for control in [r#""bell\u0007""#, r#""nul\u0000""#, r#""esc\u001b[31m""#, r#""del\u007f""#] {
            let body = format!(r#"{{"description":{control}}}"#);
            assert_eq!(described(&body), Err(ValidationError::NotPlainText { field: "description" }), "{body}");
        }
    }

    #[test]
    fn an_update_sets_or_clears_the_description() {
        let update = |body: &str| UpdateItem::from_json(body.as_bytes()).map(|update| update.description);
        assert_eq!(update(r#"{"description":"Blue"}"#), Ok(Some(Some("Blue".into()))));
        assert_eq!(update(r#"{"description":null}"#), Ok(Some(None)));
        assert_eq!(update(r#"{"description":""}"#), Ok(Some(None)));
        assert_eq!(update(r#"{"name":"Ink"}"#), Ok(None));
        assert_eq!(update(r#"{"description":[]}"#), Err(ValidationError::NotAString { field: "description" }));
    }

    #[test]
    fn events_from_elsewhere_follow_the_apis_field_rules() {
        use crate::event::{EventPayload, ItemCreated, ItemUpdated};
        let created = |name: &str, description: Option<&str>| {
            EventPayload::ItemCreated(ItemCreated {
                name: name.into(),
                timestamp: "t".into(),
                description: description.map(Into::into),
            })
        };
        assert_eq!(check_event_fields(&created("Pen", Some("Blue\nink")), "sub-1"), Ok(()));
        assert_eq!(check_event_fields(&EventPayload::ItemDeleted, "sub-1"), Ok(()));
        assert_eq!(check_event_fields(&created("", None), "sub-1"), Err(BadLength { field: "name", min: 1, max: 256 }));
        assert_eq!(
            check_event_fields(&created("Pen", Some("esc\u{1b}[31m")), "sub-1"),
            Err(ValidationError::NotPlainText { field: "description" })
        );
        assert_eq!(
            check_event_fields(&created("Pen", Some("")), "sub-1"),
            Err(BadLength { field: "description", min: 1, max: 2000 })
        );
        assert_eq!(
            check_event_fields(&created("Pen", None), &"s".repeat(129)),
            Err(BadLength { field: "subject", min: 1, max: 128 })
        );
        assert_eq!(
            check_event_fields(&created("Pen", None), "sub\u{7}"),
            Err(ValidationError::NotPlainText { field: "subject" })
        );
        let long_timestamp = ItemUpdated { timestamp: Some("1".repeat(65)), ..Default::default() };
        assert_eq!(
            check_event_fields(&EventPayload::ItemUpdated(long_timestamp), "sub-1"),
            Err(BadLength { field: "timestamp", min: 0, max: 64 })
        );
    }

    #[test]
    fn messages_name_the_field() {
        assert_eq!(
            ValidationError::BadLength { field: "name", min: 1, max: 256 }.to_string(),
            "`name` must be 1 to 256 characters"
        );
        assert_eq!(ValidationError::NotAString { field: "timestamp" }.to_string(), "`timestamp` must be a string");
    }
}
