//! The tower layer, alone and in an axum gateway (feature `tower`; the gateway also needs
//! `axum` and `tokio`).

#[path = "../support/mod.rs"]
mod support;

mod axum_gateway;
mod layer;
