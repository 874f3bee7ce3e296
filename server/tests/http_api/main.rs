//! The HTTP front end and the metrics endpoint, driven over real sockets
//! against a whole server loading the example models.

#[path = "../common/mod.rs"]
mod common;

mod batching;
mod concurrency;
mod errors;
mod health_metadata;
mod infer_binary;
mod infer_json;
mod lifecycle;
mod limits;
mod metrics;
mod ragged;
mod repository;
#[path = "../common/slow_model.rs"]
mod slow_model;
mod trace;
mod trace_file;
mod trace_settings;
