//! Genesys Cloud client for participant attributes.
pub mod models;
