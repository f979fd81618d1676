//! The sensor's library: one module per pipeline stage, in the order data flows.
//!
//! [`capture`] (kernel programs, ring buffers) → [`event`] (typed events, decoding) →
//! [`state`] (processes, fds, users) and [`enrich`] (containers, pods) → [`rules`] (Falco's
//! rule language) → [`outputs`] (alert fan-out); [`pipeline`] joins the stages, [`config`]
//! reads the configuration file and [`metrics`] serves the counters of them all.
pub mod benchmark;
pub mod capture;
pub mod config;
pub mod console;
pub mod enrich;
pub mod event;
pub mod html;
pub mod k8s_audit;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod rules;
pub mod state;
pub mod store;
#[cfg(test)]
mod test_dir;
pub mod tls;
