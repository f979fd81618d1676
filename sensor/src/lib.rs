//! The sensor's library: one module per pipeline stage.
//!
//! capture (kernel programs, ring buffers) → event (typed events, decoding) → ...
pub mod capture;
pub mod event;
