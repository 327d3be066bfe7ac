//! Access tokens for tests: valid ones from a development identity provider,
//! and forged, tampered and unsigned ones for the attack matrix (with the DER
//! helpers the algorithm-confusion cases need).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use items_local::auth::dev_idp::{DEV_CLIENT_ID, DevIdentityProvider, TokenRequest};
use serde_json::{Map, Value, json};

pub const SUB: &str = "0b6c3c1e-5d7f-4a8e-9e2b-7f1d2c3b4a59";
pub const READ_WRITE: &[&str] = &["items/read", "items/write"];

pub fn token_request(scopes: &[&str]) -> TokenRequest {
    TokenRequest {
        subject: SUB.to_owned(),
        username: "alice".to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        client_id: DEV_CLIENT_ID.to_owned(),
        ttl: Duration::from_secs(3600),
        groups: Vec::new(),
    }
}

pub fn issue(idp: &DevIdentityProvider, scopes: &[&str]) -> String {
    idp.issue_access_token(&token_request(scopes)).unwrap()
}

/// A valid token's claims, edited, signed with the provider's key and kid.
pub fn signed_with(idp: &DevIdentityProvider, scopes: &[&str], edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut claims = idp.access_claims(&token_request(scopes));
    edit(claims.as_object_mut().unwrap());
    idp.sign(&claims).unwrap()
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub fn parts(token: &str) -> (&str, &str, &str) {
    let mut split = token.split('.');
    let parts = (split.next().unwrap(), split.next().unwrap(), split.next().unwrap());
    assert!(split.next().is_none(), "not a three-part token");
    parts
}

/// The payload rewritten (other subject, every scope), the signature kept.
pub fn tamper_payload(token: &str) -> String {
    let (header, payload, signature) = parts(token);
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sub"] = json!("mallory");
    claims["scope"] = json!("items/read items/write");
    format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// One character in the middle of the signature changed (a full 6-bit digit, so the bytes change).
pub fn tamper_signature(token: &str) -> String {
    let (header, payload, signature) = parts(token);
    let mut signature: Vec<char> = signature.chars().collect();
    let middle = signature.len() / 2;
    signature[middle] = if signature[middle] == 'A' { 'B' } else { 'A' };
    format!("{header}.{payload}.{}", signature.into_iter().collect::<String>())
}

/// An unsigned token (`alg` as given), the claims of a valid one.
pub fn unsigned(idp: &DevIdentityProvider, header: &Value) -> String {
    let claims = idp.access_claims(&token_request(READ_WRITE));
    format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// HS256 over valid claims, keyed with something public about the RSA key
/// (the algorithm-confusion attack), under the real kid.
pub fn hs256_with_public_key(idp: &DevIdentityProvider, secret: &[u8]) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(idp.kid().to_owned());
    let claims = idp.access_claims(&token_request(READ_WRITE));
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
}

pub fn der_length(length: usize) -> Vec<u8> {
    if length < 0x80 {
        return vec![length as u8];
    }
    let bytes: Vec<u8> = length.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    let mut encoded = vec![0x80 | bytes.len() as u8];
    encoded.extend(bytes);
    encoded
}

pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut encoded = vec![tag];
    encoded.extend(der_length(content.len()));
    encoded.extend_from_slice(content);
    encoded
}

pub fn der_unsigned_integer(big_endian: &[u8]) -> Vec<u8> {
    let mut content = big_endian.to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    der(0x02, &content)
}

/// The public key as PKCS#1 `RSAPublicKey` DER and as SPKI PEM, from its JWK.
pub fn public_key_encodings(idp: &DevIdentityProvider) -> (Vec<u8>, String) {
    let jwk = &idp.jwks()["keys"][0];
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let pkcs1 = der(0x30, &[der_unsigned_integer(&n), der_unsigned_integer(&e)].concat());
    let rsa_encryption = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let algorithm = der(0x30, &rsa_encryption);
    let bit_string = der(0x03, &[&[0u8][..], &pkcs1].concat());
    let spki = der(0x30, &[algorithm, bit_string].concat());
    let base64 = STANDARD.encode(spki);
    let lines: Vec<&str> = base64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"));
    (pkcs1, pem)
}
