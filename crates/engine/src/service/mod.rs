//! The service surface of long-running commands: their Prometheus metrics ([`metrics`]: the
//! registries, the text format, the atomic write of a textfile collector's file) and the HTTP
//! server of `--listen` ([`serve`]: `/metrics` and `/healthz`), and what a follow's health is
//! ([`health`]).

pub mod health;
pub mod metrics;
pub mod serve;
