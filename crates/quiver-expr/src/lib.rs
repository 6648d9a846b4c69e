//! Milvus's boolean filter language: parser, type checker and per-row
//! evaluator, independent of any storage.
//!
//! ```
//! use std::collections::HashMap;
//! use quiver_expr::{compile, FieldInfo, FieldType, StaticSchema, ValueRef};
//!
//! let schema = StaticSchema::new()
//!     .field("id", 0, FieldType::Int64)
//!     .field("title", 1, FieldType::VarChar)
//!     .dynamic(2);
//! let params = HashMap::from([("ids".to_string(), serde_json::json!([1, 2, 3]))]);
//! let f = compile(r#"id in {ids} and title like "The %""#, &schema, &params).unwrap();
//! let meta = serde_json::json!({});
//! let row = vec![ValueRef::Int(2), ValueRef::Str("The Rust Book"), ValueRef::Json(&meta)];
//! assert!(f.eval(&row));
//! assert_eq!(f.fields(), vec![0, 1]);
//! ```
//!
//! # Grammar
//!
//! EBNF, lowest precedence first. Keywords (`and or not in like is null
//! exists true false`) and function names are case-insensitive.
//!
//! ```text
//! filter     = [ or ] ;                               (* empty = every row *)
//! or         = and { ("or" | "||") and } ;
//! and        = not { ("and" | "&&") not } ;
//! not        = ("not" | "!") not | predicate ;
//! predicate  = sum [ cmp_op sum [ cmp_op sum ] ]      (* two ops = range *)
//!            | sum ["not"] "in" sum
//!            | sum ["not"] "like" sum
//!            | sum "is" ["not"] "null" ;
//! cmp_op     = "==" | "!=" | "<" | "<=" | ">" | ">=" ;
//! sum        = product { ("+" | "-") product } ;
//! product    = unary { ("*" | "/" | "%") unary } ;
//! unary      = ("-" | "+") unary | power ;
//! power      = primary [ "**" unary ] ;               (* right-associative *)
//! primary    = int | float | string | "true" | "false"
//!            | "[" [ or { "," or } [","] ] "]"       (* array literal *)
//!            | "{" ident "}"                          (* template placeholder *)
//!            | ( ident | "$meta" ) { "[" (string | int) "]" }   (* field / JSON path *)
//!            | func "(" or { "," or } ")"
//!            | "exists" primary
//!            | "(" or ")" ;
//! func       = "json_contains" | "json_contains_all" | "json_contains_any"
//!            | "array_contains" | "array_contains_all" | "array_contains_any"
//!            | "array_length" ;
//! int        = decimal | "0x" hex | "0o" octal | "0" octal | "0b" binary ;
//! float      = digits "." [digits] [exp] | "." digits [exp] | digits exp ;
//! string     = '"' ... '"' | "'" ... "'" ;   (* escapes: \n \t \r \b \f \v \a \0 \\ \" \' \/ \xHH \uXXXX \UXXXXXXXX;
//!                                               \% and \_ are kept verbatim for LIKE *)
//! ident      = [A-Za-z_][A-Za-z0-9_]* ;
//! ```
//!
//! A range needs both operators in one direction: `1 < a <= 5` or
//! `5 >= a > 1`; `1 < a > 0` is an error.
//!
//! # Precedence (tightest first)
//!
//! | level | operators | associativity |
//! |---|---|---|
//! | 1 | literals, `(...)`, `[...]`, `{t}`, `f(...)`, `x["k"]`, `exists` | |
//! | 2 | `**` | right |
//! | 3 | unary `-` `+` | prefix |
//! | 4 | `*` `/` `%` | left |
//! | 5 | `+` `-` | left |
//! | 6 | `==` `!=` `<` `<=` `>` `>=`, `in`, `not in`, `like`, `not like`, `is [not] null` | none (except ranges) |
//! | 7 | `not` `!` | prefix |
//! | 8 | `and` `&&` | left (n-ary) |
//! | 9 | `or` `\|\|` | left (n-ary) |
//!
//! `not` binds looser than comparisons as in SQL: `not a > 1` is `not (a > 1)`.
//! `-2 ** 2` is `-(2 ** 2)`.
//!
//! # Names
//!
//! A name is looked up in the [`Schema`]. `$meta` is the dynamic JSON field;
//! a name missing from the schema means `$meta["name"]` when the collection
//! has a dynamic field, else it is [`ExprError::UnknownField`]. `[...]`
//! after a JSON field walks object keys (strings) and array indexes
//! (integers); after an ARRAY field it takes exactly one integer index.
//!
//! # Types
//!
//! Integer and float types are one numeric class (exact comparison of
//! i64 with f64; integer literals outside an Int8/16/32 field's range just
//! compare). Strings compare bytewise. Booleans and arrays support only `==`
//! and `!=`. A mismatch (e.g. `int64_field == "x"`, `like` on a number,
//! arithmetic on a string, `array_contains` on a scalar) is a compile-time
//! [`ExprError::TypeMismatch`] naming the field. JSON values are typed per
//! row; see below.
//!
//! Arithmetic: `int op int` stays integer (`/` truncates, `%` takes the sign
//! of the dividend); overflow promotes to f64; any float makes it f64.
//!
//! # NULL semantics
//!
//! SQL three-valued logic. A NULL cell, a missing JSON key and a JSON `null`
//! are NULL. Comparisons, `in`, `like`, arithmetic and the `*_contains*`
//! functions with a NULL operand are UNKNOWN; so is division or modulo by
//! zero and an out-of-range array index. `not UNKNOWN = UNKNOWN`,
//! `UNKNOWN and false = false`, `UNKNOWN or true = true`. A row passes
//! only if the whole filter is TRUE. `is null`, `is not null` and `exists`
//! are never UNKNOWN. `exists p` is true when the path is present in a
//! non-NULL JSON cell, even if its value is JSON `null`.
//!
//! For JSON values of a type unrelated to the other operand (say a JSON
//! string against `5`), `==`, `<`, `like`, `in`, `json_contains` are FALSE
//! and `!=`, `not like`, `not in` are TRUE (they are their negations). NaN
//! behaves the same way. Arithmetic on a non-numeric JSON value is UNKNOWN.
//! `json_contains(j, v)` is true when `j` is an array with an element
//! equal to `v`, numbers comparing numerically (1 == 1.0); a non-array `j`
//! gives FALSE. A JSON value used directly as a condition is TRUE only if it
//! is JSON `true`.
//!
//! # Invariants
//!
//! * No input makes [`parse`], [`compile`] or [`Filter::eval`] panic;
//!   nesting deeper than [`MAX_DEPTH`] is rejected, bounding recursion.
//! * Names are resolved to column indexes and literals pre-converted at
//!   compile time (`in` lists become hash sets, `like` patterns matchers,
//!   constant sub-expressions are folded); evaluation does not allocate.
//! * Parse errors carry the byte offset of the offending token
//!   ([`ExprError::line_col`] converts it).

mod ast;
mod batch;
mod compile;
mod error;
mod eval;
mod filter;
mod lexer;
mod like;
mod parser;
mod schema;
mod types;
mod value;

use std::collections::HashMap;

pub use ast::{BinaryOp, Expr, ExprKind, Func, PathKey, UnaryOp};
pub use batch::{ColumnSlice, ColumnView, Columns};
pub use error::ExprError;
pub use filter::{Filter, PkLiteral};
pub use parser::MAX_DEPTH;
pub use schema::{FieldInfo, FieldType, Row, Schema, StaticSchema, ValueRef};

/// Parses filter text into an untyped syntax tree. Empty input is an error
/// here; [`compile`] treats it as "every row".
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    parser::parse(src)
}

/// Parses, resolves names against `schema`, binds `{name}` placeholders from
/// `params`, type checks, and pre-converts literals. Empty or whitespace-only
/// `src` gives [`Filter::always_true`].
pub fn compile(
    src: &str,
    schema: &dyn Schema,
    params: &HashMap<String, serde_json::Value>,
) -> Result<Filter, ExprError> {
    if src.trim().is_empty() {
        return Ok(Filter::always_true());
    }
    let expr = parser::parse(src)?;
    let c = compile::Compiler {
        src: Some(src),
        schema,
        params,
    };
    Ok(Filter::new(c.root(&expr)?))
}

/// Like [`compile`] for an already parsed tree (error messages then quote
/// sub-expressions in their printed form instead of the original text).
pub fn compile_expr(
    expr: &Expr,
    schema: &dyn Schema,
    params: &HashMap<String, serde_json::Value>,
) -> Result<Filter, ExprError> {
    let c = compile::Compiler {
        src: None,
        schema,
        params,
    };
    Ok(Filter::new(c.root(expr)?))
}
