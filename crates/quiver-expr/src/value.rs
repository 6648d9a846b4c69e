//! Runtime values, comparison, arithmetic and literal sets.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use crate::ast::BinaryOp;
use crate::ValueRef;

/// A value during evaluation. Borrowed from the row or from the compiled
/// filter, so evaluating never allocates. `Null` doubles as SQL UNKNOWN.
/// JSON scalars are always normalised to the matching variant; `Json` only
/// holds arrays and objects.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Json(&'a Value),
}

pub(crate) fn from_json(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Val::Int(i),
            None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Val::Str(s),
        Value::Array(_) | Value::Object(_) => Val::Json(v),
    }
}

pub(crate) fn from_ref(v: ValueRef<'_>) -> Val<'_> {
    match v {
        ValueRef::Null => Val::Null,
        ValueRef::Bool(b) => Val::Bool(b),
        ValueRef::Int(i) => Val::Int(i),
        ValueRef::Float(f) => Val::Float(f),
        ValueRef::Str(s) => Val::Str(s),
        ValueRef::Json(v) => from_json(v),
    }
}

/// SQL truth value of a predicate result: `None` is UNKNOWN. Values of a
/// non-boolean type (possible only through dynamically typed JSON) are false.
pub(crate) fn truth(v: Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(b),
        Val::Null => None,
        _ => Some(false),
    }
}

/// Outcome of comparing two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// A NULL (or missing JSON key) was involved.
    Unknown,
    /// Values of unrelated types, NaN, or unequal arrays/objects:
    /// `==` is false, `!=` is true, orderings are false.
    Incomparable,
    Ord(Ordering),
}

/// Exact comparison of an integer with a float (no rounding of large ints).
pub(crate) fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO63 {
        return Some(Ordering::Less);
    }
    if f < -TWO63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    // In range and integral, so the cast is exact.
    let ti = t as i64;
    Some(
        i.cmp(&ti)
            .then_with(|| 0.0f64.partial_cmp(&(f - t)).unwrap_or(Ordering::Equal)),
    )
}

pub(crate) fn compare(a: Val<'_>, b: Val<'_>) -> Order {
    let ord = match (a, b) {
        (Val::Null, _) | (_, Val::Null) => return Order::Unknown,
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(&y)),
        (Val::Int(x), Val::Float(y)) => cmp_int_float(x, y),
        (Val::Float(x), Val::Int(y)) => cmp_int_float(y, x).map(Ordering::reverse),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(&y),
        (Val::Str(x), Val::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(&y)),
        (Val::Json(x), Val::Json(y)) => json_eq(x, y).then_some(Ordering::Equal),
        _ => None,
    };
    ord.map_or(Order::Incomparable, Order::Ord)
}

/// JSON equality where numbers compare numerically (`1 == 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => {
            compare(from_json(a), from_json(b)) == Order::Ord(Ordering::Equal)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Applies a comparison operator to a comparison outcome (Bool or Null).
pub(crate) fn apply_cmp(op: BinaryOp, ord: Order) -> Val<'static> {
    match ord {
        Order::Unknown => Val::Null,
        Order::Incomparable => Val::Bool(op == BinaryOp::Ne),
        Order::Ord(o) => Val::Bool(match op {
            BinaryOp::Eq => o.is_eq(),
            BinaryOp::Ne => o.is_ne(),
            BinaryOp::Lt => o.is_lt(),
            BinaryOp::Le => o.is_le(),
            BinaryOp::Gt => o.is_gt(),
            BinaryOp::Ge => o.is_ge(),
            _ => false,
        }),
    }
}

enum Num {
    I(i64),
    F(f64),
}

fn num(v: Val<'_>) -> Option<Num> {
    match v {
        Val::Int(i) => Some(Num::I(i)),
        Val::Float(f) => Some(Num::F(f)),
        _ => None,
    }
}

pub(crate) fn neg(v: Val<'_>) -> Val<'static> {
    match num(v) {
        Some(Num::I(i)) => i.checked_neg().map_or(Val::Float(-(i as f64)), Val::Int),
        Some(Num::F(f)) => Val::Float(-f),
        None => Val::Null,
    }
}

/// Arithmetic. NULL or non-numeric operands give NULL (UNKNOWN); so does
/// division or modulo by zero. Integer overflow promotes to f64.
pub(crate) fn arith(op: BinaryOp, a: Val<'_>, b: Val<'_>) -> Val<'static> {
    let (Some(x), Some(y)) = (num(a), num(b)) else {
        return Val::Null;
    };
    match (x, y) {
        (Num::I(x), Num::I(y)) => int_arith(op, x, y),
        (Num::I(x), Num::F(y)) => float_arith(op, x as f64, y),
        (Num::F(x), Num::I(y)) => float_arith(op, x, y as f64),
        (Num::F(x), Num::F(y)) => float_arith(op, x, y),
    }
}

fn int_arith(op: BinaryOp, x: i64, y: i64) -> Val<'static> {
    let (fx, fy) = (x as f64, y as f64);
    let checked = match op {
        BinaryOp::Add => x.checked_add(y),
        BinaryOp::Sub => x.checked_sub(y),
        BinaryOp::Mul => x.checked_mul(y),
        BinaryOp::Div | BinaryOp::Mod if y == 0 => return Val::Null,
        // Truncating division; only i64::MIN / -1 overflows.
        BinaryOp::Div => x.checked_div(y),
        // i64::MIN % -1 overflows in Rust but is mathematically 0.
        BinaryOp::Mod => Some(x.checked_rem(y).unwrap_or(0)),
        BinaryOp::Pow => match u32::try_from(y) {
            Ok(e) => x.checked_pow(e),
            Err(_) => None,
        },
        _ => return Val::Null,
    };
    match checked {
        Some(v) => Val::Int(v),
        None => float_arith(op, fx, fy),
    }
}

fn float_arith(op: BinaryOp, x: f64, y: f64) -> Val<'static> {
    Val::Float(match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div | BinaryOp::Mod if y == 0.0 => return Val::Null,
        BinaryOp::Div => x / y,
        BinaryOp::Mod => x % y,
        BinaryOp::Pow => x.powf(y),
        _ => return Val::Null,
    })
}

/// An owned constant (literal, bound template, or folded sub-expression).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    /// Arrays (and objects nested in template values).
    Json(Value),
}

impl Lit {
    pub(crate) fn as_val(&self) -> Val<'_> {
        match self {
            Lit::Null => Val::Null,
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Int(i) => Val::Int(*i),
            Lit::Float(f) => Val::Float(*f),
            Lit::Str(s) => Val::Str(s),
            Lit::Json(v) => from_json(v),
        }
    }

    pub(crate) fn from_val(v: Val<'_>) -> Lit {
        match v {
            Val::Null => Lit::Null,
            Val::Bool(b) => Lit::Bool(b),
            Val::Int(i) => Lit::Int(i),
            Val::Float(f) => Lit::Float(f),
            Val::Str(s) => Lit::Str(s.into()),
            Val::Json(v) => Lit::Json(v.clone()),
        }
    }

    /// As a JSON value (None for NULL and non-finite floats).
    pub(crate) fn to_json(&self) -> Option<Value> {
        Some(match self {
            Lit::Null => return None,
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Int(i) => Value::from(*i),
            Lit::Float(f) => Value::Number(serde_json::Number::from_f64(*f)?),
            Lit::Str(s) => Value::String(s.to_string()),
            Lit::Json(v) => v.clone(),
        })
    }
}

/// A float that is an exact integer in i64 range, as that integer.
pub(crate) fn float_as_int(f: f64) -> Option<i64> {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (-TWO63..TWO63).contains(&f)).then_some(f as i64)
}

/// A small, fast non-cryptographic hasher (the "Fx" hash used by rustc).
/// The sets it serves are built from the query's own literals, so there is
/// no untrusted-key flooding to defend against.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(c);
            self.add(u64::from_le_bytes(buf));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxSet<T> = HashSet<T, BuildHasherDefault<FxHasher>>;

/// Pre-hashed set of constants for `in` and the `*_contains*` functions.
/// Numbers are matched numerically: integral floats are stored as integers.
#[derive(Debug, Clone, Default)]
pub(crate) struct LitSet {
    pub(crate) ints: FxSet<i64>,
    /// Bit patterns of non-integral (or huge) finite-or-infinite floats.
    pub(crate) floats: FxSet<u64>,
    pub(crate) strs: FxSet<Box<str>>,
    pub(crate) bools: [bool; 2],
    /// Arrays / objects, compared with [`json_eq`].
    pub(crate) others: Vec<Value>,
}

impl LitSet {
    pub(crate) fn insert(&mut self, v: Val<'_>) {
        match v {
            Val::Null => {}
            Val::Bool(b) => self.bools[usize::from(b)] = true,
            Val::Int(i) => {
                self.ints.insert(i);
            }
            Val::Float(f) => match float_as_int(f) {
                Some(i) => {
                    self.ints.insert(i);
                }
                None if f.is_nan() => {}
                None => {
                    self.floats.insert(f.to_bits());
                }
            },
            Val::Str(s) => {
                self.strs.insert(s.into());
            }
            Val::Json(v) => self.others.push(v.clone()),
        }
    }

    /// Membership; `None` when `v` is NULL (UNKNOWN).
    pub(crate) fn contains(&self, v: Val<'_>) -> Option<bool> {
        Some(match v {
            Val::Null => return None,
            Val::Bool(b) => self.bools[usize::from(b)],
            Val::Int(i) => self.ints.contains(&i),
            Val::Float(f) => match float_as_int(f) {
                Some(i) => self.ints.contains(&i),
                None => !f.is_nan() && self.floats.contains(&f.to_bits()),
            },
            Val::Str(s) => self.strs.contains(s),
            Val::Json(v) => self.others.iter().any(|o| json_eq(o, v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_float_comparison_is_exact() {
        assert_eq!(cmp_int_float(1, 1.0), Some(Ordering::Equal));
        assert_eq!(cmp_int_float(1, 1.5), Some(Ordering::Less));
        assert_eq!(cmp_int_float(-1, -1.5), Some(Ordering::Greater));
        assert_eq!(
            cmp_int_float(i64::MAX, i64::MAX as f64),
            Some(Ordering::Less)
        );
        assert_eq!(
            cmp_int_float(i64::MIN, i64::MIN as f64),
            Some(Ordering::Equal)
        );
        assert_eq!(cmp_int_float(0, f64::NAN), None);
        assert_eq!(cmp_int_float(0, f64::INFINITY), Some(Ordering::Less));
        assert_eq!(
            cmp_int_float((1 << 53) + 1, (1u64 << 53) as f64),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn arithmetic_edge_cases() {
        assert!(matches!(
            arith(BinaryOp::Div, Val::Int(1), Val::Int(0)),
            Val::Null
        ));
        assert!(matches!(
            arith(BinaryOp::Mod, Val::Int(1), Val::Int(0)),
            Val::Null
        ));
        assert!(matches!(
            arith(BinaryOp::Div, Val::Float(1.0), Val::Int(0)),
            Val::Null
        ));
        assert!(matches!(
            arith(BinaryOp::Add, Val::Int(i64::MAX), Val::Int(1)),
            Val::Float(_)
        ));
        assert!(matches!(
            arith(BinaryOp::Div, Val::Int(i64::MIN), Val::Int(-1)),
            Val::Float(_)
        ));
        assert!(matches!(
            arith(BinaryOp::Mod, Val::Int(i64::MIN), Val::Int(-1)),
            Val::Int(0)
        ));
        assert!(matches!(
            arith(BinaryOp::Pow, Val::Int(2), Val::Int(10)),
            Val::Int(1024)
        ));
        assert!(
            matches!(arith(BinaryOp::Pow, Val::Int(2), Val::Int(-1)), Val::Float(f) if f == 0.5)
        );
        assert!(matches!(
            arith(BinaryOp::Pow, Val::Int(3), Val::Int(100)),
            Val::Float(_)
        ));
        assert!(matches!(
            arith(BinaryOp::Div, Val::Int(7), Val::Int(-2)),
            Val::Int(-3)
        ));
        assert!(matches!(
            arith(BinaryOp::Mod, Val::Int(-7), Val::Int(2)),
            Val::Int(-1)
        ));
        assert!(matches!(neg(Val::Int(i64::MIN)), Val::Float(_)));
        assert!(matches!(
            arith(BinaryOp::Add, Val::Str("a"), Val::Int(1)),
            Val::Null
        ));
    }

    #[test]
    fn json_equality_is_numeric() {
        assert!(json_eq(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
        assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(!json_eq(&json!("1"), &json!(1)));
    }

    #[test]
    fn lit_set_membership() {
        let mut s = LitSet::default();
        for v in [
            Val::Int(1),
            Val::Float(2.0),
            Val::Float(2.5),
            Val::Str("x"),
            Val::Bool(true),
        ] {
            s.insert(v);
        }
        assert_eq!(s.contains(Val::Float(1.0)), Some(true));
        assert_eq!(s.contains(Val::Int(2)), Some(true));
        assert_eq!(s.contains(Val::Float(2.5)), Some(true));
        assert_eq!(s.contains(Val::Float(f64::NAN)), Some(false));
        assert_eq!(s.contains(Val::Str("x")), Some(true));
        assert_eq!(s.contains(Val::Str("y")), Some(false));
        assert_eq!(s.contains(Val::Bool(false)), Some(false));
        assert_eq!(s.contains(Val::Null), None);
    }
}
