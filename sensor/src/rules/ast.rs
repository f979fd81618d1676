//! Syntax tree of a condition, as written: macro and list names are not yet resolved.
//! Every node carries the byte range of the condition text it came from.

use std::fmt;

/// A byte range inside a condition string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// A boolean expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// All children hold.
    And(Vec<Expr>),
    /// At least one child holds.
    Or(Vec<Expr>),
    /// The child does not hold.
    Not(Box<Expr>),
    /// A field test, such as `proc.name in (bash, sh)`.
    Check(Check),
    /// A bare identifier: a macro reference.
    Macro {
        /// Macro name.
        name: String,
        /// Where it was written.
        span: Span,
    },
}

/// One comparison: an operand, an operator and (except for `exists`) a right-hand side.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The left-hand side.
    pub lhs: Operand,
    /// The operator.
    pub op: Op,
    /// The right-hand side.
    pub rhs: Rhs,
    /// The whole check.
    pub span: Span,
}

/// A field, possibly wrapped in transformers.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A field with an optional argument, e.g. `proc.aname[2]` or `evt.arg.flags`.
    Field {
        /// Field name as written (`evt.arg.flags`).
        name: String,
        /// The bracketed argument, when present.
        arg: Option<String>,
        /// Where it was written.
        span: Span,
    },
    /// `tolower(x)` and friends.
    Transform {
        /// The transformer.
        tr: Transformer,
        /// The wrapped operand.
        inner: Box<Operand>,
        /// Where it was written.
        span: Span,
    },
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field { name, arg: Some(a), .. } => write!(f, "{name}[{a}]"),
            Operand::Field { name, arg: None, .. } => f.write_str(name),
            Operand::Transform { tr, inner, .. } => write!(f, "{}({inner})", tr.name()),
        }
    }
}

/// A field transformer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transformer {
    /// Lower-cases a string.
    ToLower,
    /// Upper-cases a string.
    ToUpper,
    /// Decodes base64.
    B64,
    /// Last path component (`""` for a trailing `/`).
    Basename,
    /// Length: characters of a string, bytes of a buffer, items of a list.
    Len,
}

impl Transformer {
    /// All transformers with their names.
    pub const ALL: [(&'static str, Transformer); 5] = [
        ("tolower", Transformer::ToLower),
        ("toupper", Transformer::ToUpper),
        ("b64", Transformer::B64),
        ("basename", Transformer::Basename),
        ("len", Transformer::Len),
    ];

    /// The transformer's name in the language.
    pub fn name(self) -> &'static str {
        match self {
            Transformer::ToLower => "tolower",
            Transformer::ToUpper => "toupper",
            Transformer::B64 => "b64",
            Transformer::Basename => "basename",
            Transformer::Len => "len",
        }
    }

    /// Looks a transformer up by name.
    pub fn from_name(s: &str) -> Option<Transformer> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=` or `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `contains` (flag set, for flag fields).
    Contains,
    /// Case-insensitive `contains`.
    IContains,
    /// Byte-string `contains` with a hex needle.
    BContains,
    /// `startswith`.
    StartsWith,
    /// Byte-string `startswith` with a hex needle.
    BStartsWith,
    /// `endswith`.
    EndsWith,
    /// `fnmatch(pattern, value, 0)`.
    Glob,
    /// Case-insensitive `glob`.
    IGlob,
    /// Full-match regular expression.
    Regex,
    /// Membership (subset for list fields).
    In,
    /// Non-empty intersection.
    Intersects,
    /// Path-prefix match on directory boundaries.
    Pmatch,
    /// The field has a value.
    Exists,
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::BContains => "bcontains",
            Op::StartsWith => "startswith",
            Op::BStartsWith => "bstartswith",
            Op::EndsWith => "endswith",
            Op::Glob => "glob",
            Op::IGlob => "iglob",
            Op::Regex => "regex",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::Pmatch => "pmatch",
            Op::Exists => "exists",
        }
    }

    /// True for operators whose right-hand side is a list.
    pub fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::Pmatch)
    }
}

/// The right-hand side of a check.
#[derive(Clone, Debug, PartialEq)]
pub enum Rhs {
    /// Nothing (`exists`).
    None,
    /// One value (quotes removed).
    Value(String, Span),
    /// A parenthesised list; items equal to a list name are expanded later.
    List(Vec<(String, Span)>, Span),
    /// A bare list name (`in my_list`).
    ListRef(String, Span),
    /// Another field: `val(f)` or a transformer.
    Field(Operand),
}
