//! Test support shared by the local stack's tests.
#![allow(dead_code)]

pub mod jwks_server;
pub mod tokens;
