#![allow(dead_code)]
pub mod conformance;
