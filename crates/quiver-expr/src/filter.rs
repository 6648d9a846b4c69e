//! The compiled [`Filter`] and what the engine can ask of it.

use crate::ast::BinaryOp;
use crate::eval::Node;
use crate::value::{float_as_int, truth, Lit};
use crate::Row;

/// A primary-key value a filter pins down (see [`Filter::pk_lookup`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PkLiteral {
    Int(i64),
    Str(String),
}

/// A compiled filter: evaluate it per row with [`Filter::eval`].
///
/// It owns all its data (no borrow of the source, schema or parameters) and
/// is `Send + Sync`, so one compiled filter can be shared by search threads.
#[derive(Debug, Clone)]
pub struct Filter {
    pub(crate) root: Node,
    fields: Vec<usize>,
}

impl Filter {
    pub(crate) fn new(root: Node) -> Filter {
        let mut fields = Vec::new();
        root.visit_fields(&mut |f| fields.push(f));
        fields.sort_unstable();
        fields.dedup();
        Filter { root, fields }
    }

    /// The filter that accepts every row (what an empty expression compiles to).
    pub fn always_true() -> Filter {
        Filter::new(Node::Lit(Lit::Bool(true)))
    }

    /// Whether the row passes: the condition evaluates to TRUE (UNKNOWN,
    /// from NULLs, missing JSON keys or division by zero, does not pass).
    pub fn eval(&self, row: &dyn Row) -> bool {
        self.eval_tri(row) == Some(true)
    }

    /// The three-valued result: `Some(true)`, `Some(false)`, or `None` for UNKNOWN.
    pub fn eval_tri(&self, row: &dyn Row) -> Option<bool> {
        truth(self.root.eval(row))
    }

    /// If the whole filter is `pk == lit`, `pk in [lits]`, or an `or` of
    /// such terms on the column `pk_field`, the keys it selects (sorted,
    /// deduplicated; possibly empty, e.g. for `pk in []`). `None` when the
    /// filter has any other shape and rows must be scanned.
    pub fn pk_lookup(&self, pk_field: usize) -> Option<Vec<PkLiteral>> {
        let mut out = Vec::new();
        if !collect_pk(&self.root, pk_field, &mut out) {
            return None;
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// Column indexes the filter reads, sorted and deduplicated.
    pub fn fields(&self) -> Vec<usize> {
        self.fields.clone()
    }

    /// True for the empty expression and anything that folds to constant true.
    pub fn is_always_true(&self) -> bool {
        matches!(self.root, Node::Lit(Lit::Bool(true)))
    }

    /// True when the filter folded to a constant that no row passes
    /// (false, or UNKNOWN such as `1 / 0 == 1`).
    pub fn is_always_false(&self) -> bool {
        matches!(&self.root, Node::Lit(l) if *l != Lit::Bool(true))
    }
}

fn push_pk_lit(lit: &Lit, out: &mut Vec<PkLiteral>) -> bool {
    match lit {
        Lit::Int(i) => out.push(PkLiteral::Int(*i)),
        Lit::Str(s) => out.push(PkLiteral::Str(s.to_string())),
        // A non-integral float cannot equal an integer key: contributes nothing.
        Lit::Float(f) => {
            if let Some(i) = float_as_int(*f) {
                out.push(PkLiteral::Int(i));
            }
        }
        _ => return false,
    }
    true
}

fn collect_pk(node: &Node, pk: usize, out: &mut Vec<PkLiteral>) -> bool {
    match node {
        Node::CmpLit {
            op: BinaryOp::Eq,
            lhs,
            lit,
        } if matches!(**lhs, Node::Field(f) if f == pk) => push_pk_lit(lit, out),
        Node::In {
            expr,
            set,
            negated: false,
        } if matches!(**expr, Node::Field(f) if f == pk) => {
            if !set.others.is_empty() || set.bools.iter().any(|b| *b) {
                return false;
            }
            out.extend(set.ints.iter().map(|i| PkLiteral::Int(*i)));
            out.extend(set.strs.iter().map(|s| PkLiteral::Str(s.to_string())));
            true
        }
        Node::Or(items) => items.iter().all(|n| collect_pk(n, pk, out)),
        _ => false,
    }
}
