//! The compiled, typed tree and its per-row interpreter.

use serde_json::Value;

use crate::ast::{BinaryOp, PathKey};
use crate::like::LikeMatcher;
use crate::value::{
    apply_cmp, arith, compare, from_json, from_ref, neg, truth, Lit, LitSet, Order, Val,
};
use crate::{Row, ValueRef};

/// A compiled expression node. Names are resolved to column indexes and
/// literals are pre-converted; evaluation does not allocate.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Lit(Lit),
    /// A whole cell.
    Field(usize),
    /// A JSON path or array element inside a cell.
    Path {
        field: usize,
        path: Box<[PathKey]>,
    },
    Neg(Box<Node>),
    Arith {
        op: BinaryOp,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    Cmp {
        op: BinaryOp,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    /// `expr op literal` (the common case, with the literal moved to the right).
    CmpLit {
        op: BinaryOp,
        lhs: Box<Node>,
        lit: Lit,
    },
    Range {
        lower: Box<Node>,
        lower_inclusive: bool,
        expr: Box<Node>,
        upper: Box<Node>,
        upper_inclusive: bool,
    },
    In {
        expr: Box<Node>,
        set: Box<LitSet>,
        negated: bool,
    },
    Like {
        expr: Box<Node>,
        matcher: LikeMatcher,
        negated: bool,
    },
    IsNull {
        expr: Box<Node>,
        negated: bool,
    },
    Exists {
        field: usize,
        path: Box<[PathKey]>,
    },
    /// `*_contains` / `*_contains_any`: some element is in `set`.
    ContainsAny {
        expr: Box<Node>,
        set: Box<LitSet>,
    },
    /// `*_contains_all`: every one of `values` is an element.
    ContainsAll {
        expr: Box<Node>,
        values: Vec<Lit>,
    },
    ArrayLength(Box<Node>),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

pub(crate) fn walk<'a>(mut v: &'a Value, path: &[PathKey]) -> Option<&'a Value> {
    for key in path {
        v = match (key, v) {
            (PathKey::Key(k), Value::Object(m)) => m.get(k)?,
            (PathKey::Index(i), Value::Array(a)) => a.get(usize::try_from(*i).ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

impl Node {
    pub(crate) fn eval<'a>(&'a self, row: &'a dyn Row) -> Val<'a> {
        match self {
            Node::Lit(l) => l.as_val(),
            Node::Field(id) => from_ref(row.get(*id)),
            Node::Path { field, path } => match row.get(*field) {
                ValueRef::Json(v) => walk(v, path).map_or(Val::Null, from_json),
                _ => Val::Null,
            },
            Node::Neg(e) => neg(e.eval(row)),
            Node::Arith { op, lhs, rhs } => arith(*op, lhs.eval(row), rhs.eval(row)),
            Node::Cmp { op, lhs, rhs } => apply_cmp(*op, compare(lhs.eval(row), rhs.eval(row))),
            Node::CmpLit { op, lhs, lit } => {
                let v = match **lhs {
                    Node::Field(id) => from_ref(row.get(id)),
                    ref other => other.eval(row),
                };
                apply_cmp(*op, compare(v, lit.as_val()))
            }
            Node::Range {
                lower,
                lower_inclusive,
                expr,
                upper,
                upper_inclusive,
            } => {
                let v = expr.eval(row);
                let lo_op = if *lower_inclusive {
                    BinaryOp::Le
                } else {
                    BinaryOp::Lt
                };
                let lo = truth(apply_cmp(lo_op, compare(lower.eval(row), v)));
                if lo == Some(false) {
                    return Val::Bool(false);
                }
                let hi_op = if *upper_inclusive {
                    BinaryOp::Le
                } else {
                    BinaryOp::Lt
                };
                let hi = truth(apply_cmp(hi_op, compare(v, upper.eval(row))));
                match (lo, hi) {
                    (_, Some(false)) => Val::Bool(false),
                    (Some(true), Some(true)) => Val::Bool(true),
                    _ => Val::Null,
                }
            }
            Node::In { expr, set, negated } => match set.contains(expr.eval(row)) {
                Some(found) => Val::Bool(found != *negated),
                None => Val::Null,
            },
            Node::Like {
                expr,
                matcher,
                negated,
            } => match expr.eval(row) {
                Val::Null => Val::Null,
                Val::Str(s) => Val::Bool(matcher.matches(s) != *negated),
                // A JSON value that is not a string never matches.
                _ => Val::Bool(*negated),
            },
            Node::IsNull { expr, negated } => {
                Val::Bool(matches!(expr.eval(row), Val::Null) != *negated)
            }
            Node::Exists { field, path } => Val::Bool(match row.get(*field) {
                ValueRef::Json(v) => walk(v, path).is_some(),
                ValueRef::Null => false,
                _ => path.is_empty(),
            }),
            Node::ContainsAny { expr, set } => match expr.eval(row) {
                Val::Null => Val::Null,
                Val::Json(Value::Array(items)) => Val::Bool(
                    items
                        .iter()
                        .any(|e| set.contains(from_json(e)) == Some(true)),
                ),
                _ => Val::Bool(false),
            },
            Node::ContainsAll { expr, values } => match expr.eval(row) {
                Val::Null => Val::Null,
                Val::Json(Value::Array(items)) => Val::Bool(values.iter().all(|lit| {
                    let want = lit.as_val();
                    items.iter().any(|e| {
                        compare(want, from_json(e)) == Order::Ord(std::cmp::Ordering::Equal)
                    })
                })),
                _ => Val::Bool(false),
            },
            Node::ArrayLength(e) => match e.eval(row) {
                Val::Json(Value::Array(items)) => {
                    Val::Int(i64::try_from(items.len()).unwrap_or(i64::MAX))
                }
                _ => Val::Null,
            },
            Node::Not(e) => match truth(e.eval(row)) {
                Some(b) => Val::Bool(!b),
                None => Val::Null,
            },
            Node::And(items) => {
                let mut unknown = false;
                for item in items {
                    match truth(item.eval(row)) {
                        Some(false) => return Val::Bool(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                if unknown {
                    Val::Null
                } else {
                    Val::Bool(true)
                }
            }
            Node::Or(items) => {
                let mut unknown = false;
                for item in items {
                    match truth(item.eval(row)) {
                        Some(true) => return Val::Bool(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                if unknown {
                    Val::Null
                } else {
                    Val::Bool(false)
                }
            }
        }
    }

    /// Calls `f` with every column index the node reads.
    pub(crate) fn visit_fields(&self, f: &mut dyn FnMut(usize)) {
        match self {
            Node::Lit(_) => {}
            Node::Field(id) | Node::Path { field: id, .. } | Node::Exists { field: id, .. } => {
                f(*id)
            }
            Node::Neg(e)
            | Node::In { expr: e, .. }
            | Node::Like { expr: e, .. }
            | Node::IsNull { expr: e, .. }
            | Node::ContainsAny { expr: e, .. }
            | Node::ContainsAll { expr: e, .. }
            | Node::ArrayLength(e)
            | Node::Not(e)
            | Node::CmpLit { lhs: e, .. } => e.visit_fields(f),
            Node::Arith { lhs, rhs, .. } | Node::Cmp { lhs, rhs, .. } => {
                lhs.visit_fields(f);
                rhs.visit_fields(f);
            }
            Node::Range {
                lower, expr, upper, ..
            } => {
                lower.visit_fields(f);
                expr.visit_fields(f);
                upper.visit_fields(f);
            }
            Node::And(items) | Node::Or(items) => items.iter().for_each(|n| n.visit_fields(f)),
        }
    }

    pub(crate) fn reads_fields(&self) -> bool {
        let mut any = false;
        self.visit_fields(&mut |_| any = true);
        any
    }
}

/// A row with no columns, used to evaluate constant sub-expressions.
pub(crate) struct NoRow;

impl Row for NoRow {
    fn get(&self, _field_id: usize) -> ValueRef<'_> {
        ValueRef::Null
    }
}
