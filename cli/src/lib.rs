//! Wiring for the `items` CLI: the local server (`serve`), development tokens
//! and users, and replay. Logic lives in the domain and the adapters
//! (`items-aws` for what runs in AWS, `items-local` for the laptop stack);
//! this crate reads settings and connects the pieces.

pub mod aws;
pub mod quarantine;
pub mod replay;
pub mod serve;
pub mod settings;
pub mod token;
pub mod transfer;
pub mod user;
pub mod web;
