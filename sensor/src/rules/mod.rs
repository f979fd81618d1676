//! Rule engine.
pub mod ast;
pub mod compile;
pub mod engine;
pub mod eval;
pub mod event;
pub mod fields;
pub mod loader;
pub mod matchers;
pub mod output;
pub mod parser;
pub mod yaml;
#[cfg(test)]
mod tests;
