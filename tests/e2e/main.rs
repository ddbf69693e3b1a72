//! End-to-end tests: the real `attrsync` binary against the real simulator over loopback HTTP,
//! with a real SQLite audit store in a temporary directory. One test binary (ripgrep style).

mod support;

mod apply;
mod audit;
mod engine;
mod exactness;
mod follow;
mod follow_model;
mod get_set;
mod hints;
mod history;
mod live_tag;
mod messages;
mod model;
mod numbers;
mod output;
mod plan;
mod profile;
mod proxy;
mod queues;
mod rate;
mod reconcile;
mod reconcile_follow;
mod revert;
mod settings;
mod store;
mod validation;
mod verify_events;
