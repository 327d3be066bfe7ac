//! Opaque, tamper-evident page cursors: the page key, base64url, then an
//! HMAC-SHA256 tag over it. A client can carry a cursor but not forge one.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use items_domain::ports::{CursorCodec, InvalidCursor, PageKey};

pub struct HmacCursorCodec {
    key: hmac::Key,
}

impl HmacCursorCodec {
    /// `secret` must be the same on every instance that serves one API
    /// (the `CURSOR_SIGNING_KEY` setting), or cursors stop working across them.
    pub fn new(secret: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }
}

impl CursorCodec for HmacCursorCodec {
    fn seal(&self, key: &PageKey) -> String {
        let payload = URL_SAFE_NO_PAD.encode(key.0.as_bytes());
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    fn open(&self, cursor: &str) -> Result<PageKey, InvalidCursor> {
        let (payload, tag) = cursor.split_once('.').ok_or(InvalidCursor)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| InvalidCursor)?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).map_err(|_| InvalidCursor)?;
        let key = URL_SAFE_NO_PAD.decode(payload).map_err(|_| InvalidCursor)?;
        String::from_utf8(key).map(PageKey).map_err(|_| InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cursor_opens_to_its_key() {
        let codec = HmacCursorCodec::new(b"secret");
        let key = PageKey(r#"{"id":"abc"}"#.into());
        assert_eq!(codec.open(&codec.seal(&key)), Ok(key));
    }

    #[test]
    fn tampering_is_detected() {
        let codec = HmacCursorCodec::new(b"secret");
        let cursor = codec.seal(&PageKey("position-1".into()));
        let (payload, tag) = cursor.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("position-2");
        assert_eq!(codec.open(&format!("{forged_payload}.{tag}")), Err(InvalidCursor));
        assert_eq!(codec.open(payload), Err(InvalidCursor));
        assert_eq!(codec.open(""), Err(InvalidCursor));
        assert_eq!(codec.open("a.b.c"), Err(InvalidCursor));
        let other_key = HmacCursorCodec::new(b"another secret");
        assert_eq!(other_key.open(&cursor), Err(InvalidCursor));
    }
}
