//! Untyped syntax tree produced by [`crate::parse`].

use std::fmt;

/// A node of the untyped syntax tree, with the byte span `start..end` of the
/// source text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// `[e1, e2, ...]`
    Array(Vec<Expr>),
    /// `{name}` placeholder bound from the request's parameters.
    Template(String),
    /// A field name or `$meta`, optionally followed by a JSON path / array
    /// index: `name`, `$meta["k"]`, `json["a"]["b"][0]`, `arr[2]`.
    Ident {
        name: String,
        path: Vec<PathKey>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    /// Arithmetic or comparison.
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `a and b and ...` (flattened, at least two operands).
    And(Vec<Expr>),
    /// `a or b or ...` (flattened, at least two operands).
    Or(Vec<Expr>),
    /// `lower <(=) expr <(=) upper`; `upper >(=) expr >(=) lower` is
    /// normalised into this form by the parser.
    Range {
        lower: Box<Expr>,
        lower_inclusive: bool,
        expr: Box<Expr>,
        upper: Box<Expr>,
        upper_inclusive: bool,
    },
    /// `expr [not] in list`
    In {
        expr: Box<Expr>,
        list: Box<Expr>,
        negated: bool,
    },
    /// `expr [not] like pattern`
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    /// `expr is [not] null`
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `exists path`
    Exists(Box<Expr>),
    Call {
        func: Func,
        args: Vec<Expr>,
    },
}

/// One step of a JSON path / array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathKey {
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `+x`
    Plus,
    /// `not x` / `!x`
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "**",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }

    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Mod
                | BinaryOp::Pow
        )
    }
}

/// Built-in functions (names are case-insensitive in the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    JsonContains,
    JsonContainsAll,
    JsonContainsAny,
    ArrayContains,
    ArrayContainsAll,
    ArrayContainsAny,
    ArrayLength,
}

impl Func {
    pub const ALL: [Func; 7] = [
        Func::JsonContains,
        Func::JsonContainsAll,
        Func::JsonContainsAny,
        Func::ArrayContains,
        Func::ArrayContainsAll,
        Func::ArrayContainsAny,
        Func::ArrayLength,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Func::JsonContains => "json_contains",
            Func::JsonContainsAll => "json_contains_all",
            Func::JsonContainsAny => "json_contains_any",
            Func::ArrayContains => "array_contains",
            Func::ArrayContainsAll => "array_contains_all",
            Func::ArrayContainsAny => "array_contains_any",
            Func::ArrayLength => "array_length",
        }
    }

    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    pub fn arity(self) -> usize {
        match self {
            Func::ArrayLength => 1,
            _ => 2,
        }
    }
}

/// Writes a string literal that the lexer reads back to the same string.
/// A backslash that precedes `%` or `_` is the lexer's verbatim LIKE escape
/// and is written back as such.
pub(crate) fn write_str_lit(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('%' | '_')) => f.write_str("\\")?,
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(f, "\\u{:04x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for PathKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathKey::Key(k) => {
                f.write_str("[")?;
                write_str_lit(f, k)?;
                f.write_str("]")
            }
            PathKey::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Prints the expression back as source text, fully parenthesised. Parsing
/// the output yields an equivalent tree.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // Negative literals are parenthesised so that `(-2) ** 2` keeps its meaning.
            ExprKind::Int(v) if *v < 0 => write!(f, "({v})"),
            ExprKind::Int(v) => write!(f, "{v}"),
            ExprKind::Float(v) if v.is_sign_negative() => write!(f, "({v:?})"),
            ExprKind::Float(v) => write!(f, "{v:?}"),
            ExprKind::Bool(v) => write!(f, "{v}"),
            ExprKind::Str(s) => write_str_lit(f, s),
            ExprKind::Array(items) => {
                f.write_str("[")?;
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
            ExprKind::Template(name) => write!(f, "{{{name}}}"),
            ExprKind::Ident { name, path } => {
                f.write_str(name)?;
                path.iter().try_for_each(|k| write!(f, "{k}"))
            }
            ExprKind::Unary { op, expr } => match op {
                UnaryOp::Neg => write!(f, "(-{expr})"),
                UnaryOp::Plus => write!(f, "(+{expr})"),
                UnaryOp::Not => write!(f, "(not {expr})"),
            },
            ExprKind::Binary { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.symbol()),
            ExprKind::And(items) | ExprKind::Or(items) => {
                let sep = if matches!(self.kind, ExprKind::And(_)) {
                    " and "
                } else {
                    " or "
                };
                f.write_str("(")?;
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
            ExprKind::Range {
                lower,
                lower_inclusive,
                expr,
                upper,
                upper_inclusive,
            } => {
                let lo = if *lower_inclusive { "<=" } else { "<" };
                let hi = if *upper_inclusive { "<=" } else { "<" };
                write!(f, "({lower} {lo} {expr} {hi} {upper})")
            }
            ExprKind::In {
                expr,
                list,
                negated,
            } => {
                let not = if *negated { "not " } else { "" };
                write!(f, "({expr} {not}in {list})")
            }
            ExprKind::Like {
                expr,
                pattern,
                negated,
            } => {
                let not = if *negated { "not " } else { "" };
                write!(f, "({expr} {not}like {pattern})")
            }
            ExprKind::IsNull { expr, negated } => {
                let not = if *negated { "not " } else { "" };
                write!(f, "({expr} is {not}null)")
            }
            ExprKind::Exists(e) => write!(f, "(exists {e})"),
            ExprKind::Call { func, args } => {
                write!(f, "{}(", func.name())?;
                for (i, e) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
        }
    }
}
