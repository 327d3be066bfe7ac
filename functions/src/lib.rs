//! Wiring for the Items API entry points: the three Lambda binaries and the
//! `items` CLI. Logic lives in the domain and adapters crates; this crate only
//! reads settings and connects the pieces.

pub mod aws;
pub mod replay;
pub mod serve;
pub mod settings;
pub mod token;
pub mod user;
pub mod web;
