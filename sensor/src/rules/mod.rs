//! Rule engine.
pub mod ast;
pub mod event;
pub mod fields;
pub mod matchers;
pub mod parser;
pub mod yaml;
