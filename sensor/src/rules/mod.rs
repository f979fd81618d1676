//! Rule engine.
pub mod ast;
pub mod event;
pub mod fields;
pub mod loader;
pub mod matchers;
pub mod parser;
pub mod yaml;
