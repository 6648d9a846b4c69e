//! Evaluation of a compiled filter over a whole column batch into a bitmap.
//!
//! The common filter shapes (`field op literal`, ranges, `in` lists, `is null`, and `and` / `or` /
//! `not` of those) are evaluated column at a time over typed slices, without building a row per
//! value; every other node falls back to the per-row interpreter for the rows still in question.
//!
//! Invariant: for every row, the bit set by [`Filter::eval_bitmap`] equals
//! `Filter::eval(row)` (TRUE passes; FALSE and UNKNOWN do not). Both paths call the same
//! comparison functions (`compare`, `apply_cmp`, `LitSet::contains`), and three-valued logic is
//! kept with two bitmaps per node, `t` (TRUE) and `k` (known: TRUE or FALSE); a property test
//! checks the equality on random data and filters (tests/properties.rs).

use crate::eval::Node;
use crate::value::{apply_cmp, compare, truth, Lit, Val};
use crate::{Filter, Row};

/// The values of one column, typed, as the engine stores them.
#[derive(Debug, Clone, Copy)]
pub enum ColumnSlice<'a> {
    Bool(&'a [bool]),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Str(&'a [String]),
}

/// A column and its validity (`valid[i] == false`: row `i` is NULL).
#[derive(Debug, Clone, Copy)]
pub struct ColumnView<'a> {
    pub data: ColumnSlice<'a>,
    pub valid: Option<&'a [bool]>,
}

/// A batch of rows the filter can read column at a time.
pub trait Columns {
    /// Rows in the batch.
    fn len(&self) -> usize;
    /// True when the batch has no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Typed access to a scalar column by the id the schema gave it; `None` for columns that
    /// are only readable per row (JSON, arrays, the dynamic field).
    fn column(&self, field: usize) -> Option<ColumnView<'_>>;
    /// Call `f` with row `r` (the per-row fallback).
    fn with_row(&self, r: usize, f: &mut dyn FnMut(&dyn Row));
}

/// TRUE and known bits of a node over the batch.
struct Tri {
    t: Vec<u64>,
    k: Vec<u64>,
}

fn words(n: usize) -> usize {
    n.div_ceil(64)
}

fn full(n: usize) -> Vec<u64> {
    let mut v = vec![u64::MAX; words(n)];
    if !n.is_multiple_of(64) {
        if let Some(last) = v.last_mut() {
            *last = (1u64 << (n % 64)) - 1;
        }
    }
    v
}

fn set(v: &mut [u64], r: usize) {
    v[r / 64] |= 1 << (r % 64);
}

impl Filter {
    /// The rows among `mask` (bit `r % 64` of word `r / 64`) for which the filter is TRUE.
    /// Rows outside `mask` may be left out of the result without being evaluated.
    pub fn eval_bitmap(&self, cols: &dyn Columns, mask: &[u64]) -> Vec<u64> {
        let n = cols.len();
        let tri = node(&self.root, cols, n, mask);
        tri.t.iter().zip(mask).map(|(t, m)| t & m).collect()
    }
}

fn node(nd: &Node, cols: &dyn Columns, n: usize, mask: &[u64]) -> Tri {
    match nd {
        Node::Lit(l) => match truth(l.as_val()) {
            Some(b) => Tri {
                t: if b { full(n) } else { vec![0; words(n)] },
                k: full(n),
            },
            None => Tri {
                t: vec![0; words(n)],
                k: vec![0; words(n)],
            },
        },
        Node::CmpLit { op, lhs, lit } => match (&**lhs, lit) {
            (Node::Field(id), Lit::Int(_) | Lit::Float(_) | Lit::Str(_) | Lit::Bool(_)) => {
                match cols.column(*id) {
                    Some(c) => match (c.data, lit) {
                        (ColumnSlice::I64(v), Lit::Int(x)) => int_cmp(v, c.valid, *op, *x, n),
                        (ColumnSlice::I32(v), Lit::Int(x)) => int_cmp(v, c.valid, *op, *x, n),
                        (ColumnSlice::I16(v), Lit::Int(x)) => int_cmp(v, c.valid, *op, *x, n),
                        (ColumnSlice::I8(v), Lit::Int(x)) => int_cmp(v, c.valid, *op, *x, n),
                        _ => per_value(c, n, |v| truth(apply_cmp(*op, compare(v, lit.as_val())))),
                    },
                    None => fallback(nd, cols, n, mask),
                }
            }
            _ => fallback(nd, cols, n, mask),
        },
        Node::Range {
            lower,
            lower_inclusive,
            expr,
            upper,
            upper_inclusive,
        } => match (&**lower, &**expr, &**upper) {
            (Node::Lit(lo), Node::Field(id), Node::Lit(hi)) => match cols.column(*id) {
                Some(c) => {
                    use crate::ast::BinaryOp;
                    let lo_op = if *lower_inclusive {
                        BinaryOp::Le
                    } else {
                        BinaryOp::Lt
                    };
                    let hi_op = if *upper_inclusive {
                        BinaryOp::Le
                    } else {
                        BinaryOp::Lt
                    };
                    per_value(c, n, |v| {
                        let a = truth(apply_cmp(lo_op, compare(lo.as_val(), v)));
                        if a == Some(false) {
                            return Some(false);
                        }
                        let b = truth(apply_cmp(hi_op, compare(v, hi.as_val())));
                        match (a, b) {
                            (_, Some(false)) => Some(false),
                            (Some(true), Some(true)) => Some(true),
                            _ => None,
                        }
                    })
                }
                None => fallback(nd, cols, n, mask),
            },
            _ => fallback(nd, cols, n, mask),
        },
        Node::In { expr, set, negated } => match &**expr {
            Node::Field(id) => match cols.column(*id) {
                Some(c) => per_value(c, n, |v| set.contains(v).map(|found| found != *negated)),
                None => fallback(nd, cols, n, mask),
            },
            _ => fallback(nd, cols, n, mask),
        },
        Node::IsNull { expr, negated } => match &**expr {
            Node::Field(id) => match cols.column(*id) {
                Some(c) => {
                    let mut t = vec![0u64; words(n)];
                    for r in 0..n {
                        let null = c.valid.is_some_and(|v| !v[r]);
                        if null != *negated {
                            set(&mut t, r);
                        }
                    }
                    Tri { t, k: full(n) }
                }
                None => fallback(nd, cols, n, mask),
            },
            _ => fallback(nd, cols, n, mask),
        },
        Node::Not(e) => {
            let x = node(e, cols, n, mask);
            Tri {
                t: x.k.iter().zip(&x.t).map(|(k, t)| k & !t).collect(),
                k: x.k,
            }
        }
        Node::And(items) => {
            let mut t = full(n);
            let mut all_known = full(n);
            let mut known_false = vec![0u64; words(n)];
            for item in items {
                // Rows already FALSE need not be evaluated again.
                let live: Vec<u64> = mask.iter().zip(&known_false).map(|(m, f)| m & !f).collect();
                let x = node(item, cols, n, &live);
                for i in 0..t.len() {
                    t[i] &= x.t[i];
                    all_known[i] &= x.k[i];
                    known_false[i] |= x.k[i] & !x.t[i];
                }
            }
            Tri {
                k: all_known
                    .iter()
                    .zip(&known_false)
                    .map(|(a, f)| a | f)
                    .collect(),
                t,
            }
        }
        Node::Or(items) => {
            let mut t = vec![0u64; words(n)];
            let mut all_known = full(n);
            for item in items {
                let live: Vec<u64> = mask.iter().zip(&t).map(|(m, t)| m & !t).collect();
                let x = node(item, cols, n, &live);
                for i in 0..t.len() {
                    t[i] |= x.t[i];
                    all_known[i] &= x.k[i];
                }
            }
            Tri {
                k: all_known.iter().zip(&t).map(|(a, t)| a | t).collect(),
                t,
            }
        }
        _ => fallback(nd, cols, n, mask),
    }
}

/// `column op literal` on an integer column: the same total order `compare` uses for two
/// integers, in a loop the compiler can vectorise (NULL rows are UNKNOWN).
fn int_cmp<T: Copy + Into<i64>>(
    vals: &[T],
    valid: Option<&[bool]>,
    op: crate::ast::BinaryOp,
    lit: i64,
    n: usize,
) -> Tri {
    use crate::ast::BinaryOp as B;
    let mut t = vec![0u64; words(n)];
    // One loop per operator so each is branch-free and vectorisable.
    macro_rules! fill {
        ($test:expr) => {
            for (wi, chunk) in vals[..n].chunks(64).enumerate() {
                let mut w = 0u64;
                for (j, &x) in chunk.iter().enumerate() {
                    let x: i64 = x.into();
                    w |= ($test(x) as u64) << j;
                }
                t[wi] = w;
            }
        };
    }
    match op {
        B::Eq => fill!(|x| x == lit),
        B::Ne => fill!(|x| x != lit),
        B::Lt => fill!(|x| x < lit),
        B::Le => fill!(|x| x <= lit),
        B::Gt => fill!(|x| x > lit),
        B::Ge => fill!(|x| x >= lit),
        _ => {}
    }
    let mut k = full(n);
    if let Some(valid) = valid {
        for (r, ok) in valid.iter().enumerate().take(n) {
            if !ok {
                t[r / 64] &= !(1u64 << (r % 64));
                k[r / 64] &= !(1u64 << (r % 64));
            }
        }
    }
    Tri { t, k }
}

/// Apply `f` to every value of a typed column (NULL rows are UNKNOWN).
fn per_value(c: ColumnView<'_>, n: usize, f: impl Fn(Val<'_>) -> Option<bool>) -> Tri {
    let mut t = vec![0u64; words(n)];
    let mut k = vec![0u64; words(n)];
    let mut put = |r: usize, res: Option<bool>| {
        if let Some(b) = res {
            set(&mut k, r);
            if b {
                set(&mut t, r);
            }
        }
    };
    macro_rules! each {
        ($vals:expr, $conv:expr) => {
            for (r, x) in $vals.iter().enumerate().take(n) {
                if c.valid.is_some_and(|v| !v[r]) {
                    continue;
                }
                put(r, f($conv(x)));
            }
        };
    }
    match c.data {
        ColumnSlice::Bool(v) => each!(v, |x: &bool| Val::Bool(*x)),
        ColumnSlice::I8(v) => each!(v, |x: &i8| Val::Int(*x as i64)),
        ColumnSlice::I16(v) => each!(v, |x: &i16| Val::Int(*x as i64)),
        ColumnSlice::I32(v) => each!(v, |x: &i32| Val::Int(*x as i64)),
        ColumnSlice::I64(v) => each!(v, |x: &i64| Val::Int(*x)),
        ColumnSlice::F32(v) => each!(v, |x: &f32| Val::Float(*x as f64)),
        ColumnSlice::F64(v) => each!(v, |x: &f64| Val::Float(*x)),
        ColumnSlice::Str(v) => {
            for (r, x) in v.iter().enumerate().take(n) {
                if c.valid.is_some_and(|v| !v[r]) {
                    continue;
                }
                put(r, f(Val::Str(x.as_str())));
            }
        }
    }
    Tri { t, k }
}

/// The per-row interpreter over the rows of `mask`.
fn fallback(nd: &Node, cols: &dyn Columns, n: usize, mask: &[u64]) -> Tri {
    let mut t = vec![0u64; words(n)];
    let mut k = vec![0u64; words(n)];
    for (wi, &w) in mask.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            let r = wi * 64 + w.trailing_zeros() as usize;
            w &= w - 1;
            if r >= n {
                break;
            }
            let mut res = None;
            cols.with_row(r, &mut |row| res = truth(nd.eval(row)));
            if let Some(b) = res {
                set(&mut k, r);
                if b {
                    set(&mut t, r);
                }
            }
        }
    }
    Tri { t, k }
}
