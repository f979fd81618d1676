//! The sensor's library: one module per pipeline stage.
//!
//! capture (kernel programs, ring buffers) → event (typed events, decoding) → ... →
//! rules (Falco's rule language: load, compile, evaluate, format alerts).
pub mod capture;
pub mod enrich;
pub mod event;
pub mod rules;
