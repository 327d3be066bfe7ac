//! Authentication as API Gateway's Cognito authorizer does it: RS256 access
//! tokens checked against the user pool's JWKS, then scopes per method.

pub mod dev_idp;
pub mod jwks;
pub mod verifier;

pub use verifier::{AccessTokenVerifier, AuthError, VerifiedClaims, VerifierConfig};
