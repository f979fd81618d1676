//! Rule engine.
pub mod ast;
pub mod parser;
pub mod yaml;
