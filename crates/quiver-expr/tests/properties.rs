//! Property tests: random well-typed expressions are printed to source,
//! compiled and evaluated, and compared with a small reference interpreter
//! that works directly on the generated tree. Plus "never panics" fuzzing.

mod common;

use std::collections::HashMap;

use common::{Cell, OwnedRow};
use proptest::prelude::*;
use quiver_expr::{compile, parse, ColumnSlice, ColumnView, Columns, FieldType, StaticSchema};
use serde_json::{json, Value};

// ---------------------------------------------------------------- schema/rows

const I: usize = 0; // int64
const D: usize = 1; // double
const S: usize = 2; // varchar
const B: usize = 3; // bool
const N: usize = 4; // nullable int64
const J: usize = 5; // json
const A: usize = 6; // array<int64>

fn schema() -> StaticSchema {
    StaticSchema::new()
        .field("i", I, FieldType::Int64)
        .field("d", D, FieldType::Double)
        .field("s", S, FieldType::VarChar)
        .field("b", B, FieldType::Bool)
        .nullable_field("n", N, FieldType::Int64)
        .field("j", J, FieldType::Json)
        .field("a", A, FieldType::Array(Box::new(FieldType::Int64)))
}

#[derive(Debug, Clone)]
struct TRow {
    i: i64,
    d: f64,
    s: String,
    b: bool,
    n: Option<i64>,
    j: Value,
    a: Vec<i64>,
}

impl TRow {
    fn owned(&self) -> OwnedRow {
        OwnedRow::default()
            .set(I, Cell::Int(self.i))
            .set(D, Cell::Float(self.d))
            .set(S, Cell::Str(self.s.clone()))
            .set(B, Cell::Bool(self.b))
            .set(N, self.n.map_or(Cell::Null, Cell::Int))
            .set(J, Cell::Json(self.j.clone()))
            .set(A, Cell::Json(json!(self.a)))
    }
}

const WORDS: [&str; 6] = ["", "a", "ab", "b", "abc", "ba"];

fn small_int() -> impl Strategy<Value = i64> {
    -4i64..=4
}

fn small_float() -> impl Strategy<Value = f64> {
    (-6i32..=6).prop_map(|k| f64::from(k) * 0.5)
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(&WORDS[..]).prop_map(str::to_string)
}

fn json_x() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        small_int().prop_map(|v| Some(json!(v))),
        small_float().prop_map(|v| Some(json!(v))),
        word().prop_map(|v| Some(json!(v))),
        any::<bool>().prop_map(|v| Some(json!(v))),
    ]
}

fn json_y() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        small_int().prop_map(|v| Some(json!(v))),
        prop::collection::vec(small_int(), 0..4).prop_map(|v| Some(json!(v))),
    ]
}

fn trow() -> impl Strategy<Value = TRow> {
    (
        small_int(),
        small_float(),
        word(),
        any::<bool>(),
        prop::option::of(small_int()),
        (json_x(), json_y(), any::<bool>()),
        prop::collection::vec(small_int(), 0..4),
    )
        .prop_map(|(i, d, s, b, n, (x, y, null_json), a)| {
            let j = if null_json && x.is_none() && y.is_none() {
                Value::Null
            } else {
                let mut m = serde_json::Map::new();
                if let Some(x) = x {
                    m.insert("x".into(), x);
                }
                if let Some(y) = y {
                    m.insert("y".into(), y);
                }
                Value::Object(m)
            };
            TRow {
                i,
                d,
                s,
                b,
                n,
                j,
                a,
            }
        })
}

// ---------------------------------------------------------------- expression trees

#[derive(Debug, Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum NumE {
    Int(i64),
    Float(f64),
    FI,
    FD,
    FN,
    /// j["x"]
    JX,
    /// a[k]
    AIdx(u8),
    /// array_length(a)
    Len,
    Neg(Box<NumE>),
    Bin(Arith, Box<NumE>, Box<NumE>),
    Pow(Box<NumE>, u8),
}

#[derive(Debug, Clone)]
enum StrE {
    Lit(String),
    FS,
    JX,
}

#[derive(Debug, Clone, Copy)]
enum NullTarget {
    N,
    JX,
    JY,
    JZ,
    A3,
}

#[derive(Debug, Clone, Copy)]
enum ContainsKind {
    One,
    All,
    Any,
}

#[derive(Debug, Clone)]
enum BoolE {
    Lit(bool),
    FB,
    BCmp(bool, bool),
    Cmp(Cmp, NumE, NumE),
    SCmp(Cmp, StrE, StrE),
    In(NumE, Vec<i64>, bool),
    SIn(StrE, Vec<String>, bool),
    Like(StrE, String, bool),
    IsNull(NullTarget, bool),
    Exists(&'static str),
    /// (on j["y"] if true else a, kind, values)
    Contains(bool, ContainsKind, Vec<i64>),
    /// lo, lo_inclusive, x, hi, hi_inclusive, print reversed
    Range(i64, bool, NumE, i64, bool, bool),
    Not(Box<BoolE>, bool),
    And(Vec<BoolE>, u8),
    Or(Vec<BoolE>, u8),
}

fn cmp_op() -> impl Strategy<Value = Cmp> {
    prop::sample::select(vec![Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge])
}

fn num_e() -> impl Strategy<Value = NumE> {
    let leaf = prop_oneof![
        small_int().prop_map(NumE::Int),
        small_float().prop_map(NumE::Float),
        Just(NumE::FI),
        Just(NumE::FD),
        Just(NumE::FN),
        Just(NumE::JX),
        (0u8..4).prop_map(NumE::AIdx),
        Just(NumE::Len),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| NumE::Neg(Box::new(e))),
            (
                prop::sample::select(vec![
                    Arith::Add,
                    Arith::Sub,
                    Arith::Mul,
                    Arith::Div,
                    Arith::Mod
                ]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, a, b)| NumE::Bin(op, Box::new(a), Box::new(b))),
            (inner, 0u8..4).prop_map(|(e, k)| NumE::Pow(Box::new(e), k)),
        ]
    })
}

fn str_e() -> impl Strategy<Value = StrE> {
    prop_oneof![word().prop_map(StrE::Lit), Just(StrE::FS), Just(StrE::JX)]
}

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!['a', 'b', '%', '_']), 0..5)
        .prop_map(|v| v.into_iter().collect())
}

fn bool_e() -> impl Strategy<Value = BoolE> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(BoolE::Lit),
        Just(BoolE::FB),
        (any::<bool>(), any::<bool>()).prop_map(|(eq, v)| BoolE::BCmp(eq, v)),
        (cmp_op(), num_e(), num_e()).prop_map(|(op, a, b)| BoolE::Cmp(op, a, b)),
        (cmp_op(), str_e(), str_e()).prop_map(|(op, a, b)| BoolE::SCmp(op, a, b)),
        (
            num_e(),
            prop::collection::vec(small_int(), 0..4),
            any::<bool>()
        )
            .prop_map(|(e, l, neg)| BoolE::In(e, l, neg)),
        (str_e(), prop::collection::vec(word(), 0..3), any::<bool>())
            .prop_map(|(e, l, neg)| BoolE::SIn(e, l, neg)),
        (str_e(), pattern(), any::<bool>()).prop_map(|(e, p, neg)| BoolE::Like(e, p, neg)),
        (
            prop::sample::select(vec![
                NullTarget::N,
                NullTarget::JX,
                NullTarget::JY,
                NullTarget::JZ,
                NullTarget::A3
            ]),
            any::<bool>()
        )
            .prop_map(|(t, neg)| BoolE::IsNull(t, neg)),
        prop::sample::select(vec!["x", "y", "z"]).prop_map(BoolE::Exists),
        (
            any::<bool>(),
            prop::sample::select(vec![
                ContainsKind::One,
                ContainsKind::All,
                ContainsKind::Any
            ]),
            prop::collection::vec(small_int(), 1..3)
        )
            .prop_map(|(j, k, v)| BoolE::Contains(j, k, v)),
        (
            small_int(),
            any::<bool>(),
            num_e(),
            small_int(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(lo, li, x, hi, hii, rev)| BoolE::Range(lo, li, x, hi, hii, rev)),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), any::<bool>()).prop_map(|(e, bang)| BoolE::Not(Box::new(e), bang)),
            (prop::collection::vec(inner.clone(), 2..4), any::<u8>())
                .prop_map(|(v, s)| BoolE::And(v, s)),
            (prop::collection::vec(inner, 2..4), any::<u8>()).prop_map(|(v, s)| BoolE::Or(v, s)),
        ]
    })
}

// ---------------------------------------------------------------- printing

fn print_num(e: &NumE) -> String {
    match e {
        NumE::Int(v) if *v < 0 => format!("({v})"),
        NumE::Int(v) => v.to_string(),
        NumE::Float(v) => format!("({v:?})"),
        NumE::FI => "i".into(),
        NumE::FD => "d".into(),
        NumE::FN => "n".into(),
        NumE::JX => r#"j["x"]"#.into(),
        NumE::AIdx(k) => format!("a[{k}]"),
        NumE::Len => "array_length(a)".into(),
        NumE::Neg(e) => format!("-({})", print_num(e)),
        NumE::Bin(op, a, b) => {
            let op = match op {
                Arith::Add => "+",
                Arith::Sub => "-",
                Arith::Mul => "*",
                Arith::Div => "/",
                Arith::Mod => "%",
            };
            format!("({} {op} {})", print_num(a), print_num(b))
        }
        NumE::Pow(e, k) => format!("({}) ** {k}", print_num(e)),
    }
}

fn print_str(e: &StrE) -> String {
    match e {
        StrE::Lit(s) => format!("'{s}'"),
        StrE::FS => "s".into(),
        StrE::JX => "j['x']".into(),
    }
}

fn cmp_sym(op: Cmp) -> &'static str {
    match op {
        Cmp::Eq => "==",
        Cmp::Ne => "!=",
        Cmp::Lt => "<",
        Cmp::Le => "<=",
        Cmp::Gt => ">",
        Cmp::Ge => ">=",
    }
}

fn list<T: ToString>(v: &[T]) -> String {
    format!(
        "[{}]",
        v.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
    )
}

fn print_bool(e: &BoolE) -> String {
    match e {
        BoolE::Lit(v) => if *v { "TRUE" } else { "false" }.into(),
        BoolE::FB => "b".into(),
        BoolE::BCmp(eq, v) => format!("b {} {v}", if *eq { "==" } else { "!=" }),
        BoolE::Cmp(op, a, b) => format!("{} {} {}", print_num(a), cmp_sym(*op), print_num(b)),
        BoolE::SCmp(op, a, b) => format!("{} {} {}", print_str(a), cmp_sym(*op), print_str(b)),
        BoolE::In(e, l, neg) => format!(
            "{} {}in {}",
            print_num(e),
            if *neg { "not " } else { "" },
            list(l)
        ),
        BoolE::SIn(e, l, neg) => {
            let l: Vec<String> = l.iter().map(|w| format!("\"{w}\"")).collect();
            format!(
                "{} {}IN {}",
                print_str(e),
                if *neg { "NOT " } else { "" },
                list(&l)
            )
        }
        BoolE::Like(e, p, neg) => format!(
            "{} {}like \"{p}\"",
            print_str(e),
            if *neg { "not " } else { "" }
        ),
        BoolE::IsNull(t, neg) => {
            let t = match t {
                NullTarget::N => "n",
                NullTarget::JX => "j[\"x\"]",
                NullTarget::JY => "j[\"y\"]",
                NullTarget::JZ => "j[\"z\"]",
                NullTarget::A3 => "a[3]",
            };
            format!("{t} is {}null", if *neg { "not " } else { "" })
        }
        BoolE::Exists(k) => format!("exists j[\"{k}\"]"),
        BoolE::Contains(on_json, kind, v) => {
            let (target, prefix) = if *on_json {
                ("j['y']", "json")
            } else {
                ("a", "array")
            };
            match kind {
                ContainsKind::One => format!("{prefix}_contains({target}, {})", v[0]),
                ContainsKind::All => format!("{prefix}_contains_all({target}, {})", list(v)),
                ContainsKind::Any => format!(
                    "{}_CONTAINS_ANY({target}, {})",
                    prefix.to_uppercase(),
                    list(v)
                ),
            }
        }
        BoolE::Range(lo, li, x, hi, hii, rev) => {
            let x = print_num(x);
            if *rev {
                let (a, b) = (if *hii { ">=" } else { ">" }, if *li { ">=" } else { ">" });
                format!("{hi} {a} {x} {b} {lo}")
            } else {
                let (a, b) = (if *li { "<=" } else { "<" }, if *hii { "<=" } else { "<" });
                format!("{lo} {a} {x} {b} {hi}")
            }
        }
        BoolE::Not(e, bang) => format!("{}({})", if *bang { "!" } else { "not " }, print_bool(e)),
        BoolE::And(v, style) | BoolE::Or(v, style) => {
            let and = matches!(e, BoolE::And(..));
            let sep = match (and, style % 3) {
                (true, 0) => " and ",
                (true, 1) => " AND ",
                (true, _) => " && ",
                (false, 0) => " or ",
                (false, 1) => " Or ",
                (false, _) => " || ",
            };
            let parts: Vec<String> = v.iter().map(|p| format!("({})", print_bool(p))).collect();
            parts.join(sep)
        }
    }
}

// ---------------------------------------------------------------- reference evaluator

/// Reference value: deliberately simple (everything numeric small enough
/// that i64/f64 mixing is exact).
#[derive(Debug, Clone, PartialEq)]
enum RV {
    Null,
    I(i64),
    F(f64),
    S(String),
    B(bool),
    Other,
}

fn from_json(v: Option<&Value>) -> RV {
    match v {
        None | Some(Value::Null) => RV::Null,
        Some(Value::Bool(b)) => RV::B(*b),
        Some(Value::Number(n)) => n.as_i64().map_or_else(|| RV::F(n.as_f64().unwrap()), RV::I),
        Some(Value::String(s)) => RV::S(s.clone()),
        Some(_) => RV::Other,
    }
}

fn as_f(v: &RV) -> Option<f64> {
    match v {
        RV::I(i) => Some(*i as f64),
        RV::F(f) => Some(*f),
        _ => None,
    }
}

fn ref_num(e: &NumE, r: &TRow) -> RV {
    match e {
        NumE::Int(v) => RV::I(*v),
        NumE::Float(v) => RV::F(*v),
        NumE::FI => RV::I(r.i),
        NumE::FD => RV::F(r.d),
        NumE::FN => r.n.map_or(RV::Null, RV::I),
        NumE::JX => from_json(r.j.get("x")),
        NumE::AIdx(k) => r.a.get(usize::from(*k)).map_or(RV::Null, |v| RV::I(*v)),
        NumE::Len => RV::I(r.a.len() as i64),
        NumE::Neg(e) => match ref_num(e, r) {
            RV::I(i) => RV::I(-i),
            RV::F(f) => RV::F(-f),
            _ => RV::Null,
        },
        NumE::Bin(op, a, b) => {
            let (x, y) = (ref_num(a, r), ref_num(b, r));
            match (&x, &y) {
                (RV::I(x), RV::I(y)) => match op {
                    Arith::Add => RV::I(x + y),
                    Arith::Sub => RV::I(x - y),
                    Arith::Mul => RV::I(x * y),
                    Arith::Div if *y == 0 => RV::Null,
                    Arith::Div => RV::I(x / y),
                    Arith::Mod if *y == 0 => RV::Null,
                    Arith::Mod => RV::I(x % y),
                },
                _ => match (as_f(&x), as_f(&y)) {
                    (Some(x), Some(y)) => match op {
                        Arith::Add => RV::F(x + y),
                        Arith::Sub => RV::F(x - y),
                        Arith::Mul => RV::F(x * y),
                        Arith::Div | Arith::Mod if y == 0.0 => RV::Null,
                        Arith::Div => RV::F(x / y),
                        Arith::Mod => RV::F(x % y),
                    },
                    _ => RV::Null,
                },
            }
        }
        NumE::Pow(e, k) => match ref_num(e, r) {
            RV::I(i) => RV::I(i.pow(u32::from(*k))),
            RV::F(f) => RV::F(f.powf(f64::from(*k))),
            _ => RV::Null,
        },
    }
}

fn ref_str(e: &StrE, r: &TRow) -> RV {
    match e {
        StrE::Lit(s) => RV::S(s.clone()),
        StrE::FS => RV::S(r.s.clone()),
        StrE::JX => from_json(r.j.get("x")),
    }
}

fn ord_holds(op: Cmp, o: std::cmp::Ordering) -> bool {
    match op {
        Cmp::Eq => o.is_eq(),
        Cmp::Ne => o.is_ne(),
        Cmp::Lt => o.is_lt(),
        Cmp::Le => o.is_le(),
        Cmp::Gt => o.is_gt(),
        Cmp::Ge => o.is_ge(),
    }
}

fn ref_cmp(op: Cmp, a: &RV, b: &RV) -> Option<bool> {
    if *a == RV::Null || *b == RV::Null {
        return None;
    }
    let ord = match (a, b) {
        (RV::I(x), RV::I(y)) => Some(x.cmp(y)),
        (RV::S(x), RV::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (RV::B(x), RV::B(y)) => Some(x.cmp(y)),
        _ => match (as_f(a), as_f(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    Some(match ord {
        Some(o) => ord_holds(op, o),
        None => op == Cmp::Ne,
    })
}

fn ref_like(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('%', rest)) => (0..=s.len()).any(|k| ref_like(rest, &s[k..])),
        Some(('_', rest)) => !s.is_empty() && ref_like(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && ref_like(rest, &s[1..]),
    }
}

fn ref_bool(e: &BoolE, r: &TRow) -> Option<bool> {
    match e {
        BoolE::Lit(v) => Some(*v),
        BoolE::FB => Some(r.b),
        BoolE::BCmp(eq, v) => Some((r.b == *v) == *eq),
        BoolE::Cmp(op, a, b) => ref_cmp(*op, &ref_num(a, r), &ref_num(b, r)),
        BoolE::SCmp(op, a, b) => ref_cmp(*op, &ref_str(a, r), &ref_str(b, r)),
        BoolE::In(e, l, neg) => {
            let v = ref_num(e, r);
            if v == RV::Null {
                return None;
            }
            let found = l
                .iter()
                .any(|x| ref_cmp(Cmp::Eq, &v, &RV::I(*x)) == Some(true));
            Some(found != *neg)
        }
        BoolE::SIn(e, l, neg) => {
            let v = ref_str(e, r);
            if v == RV::Null {
                return None;
            }
            let found = l.iter().any(|x| v == RV::S(x.clone()));
            Some(found != *neg)
        }
        BoolE::Like(e, p, neg) => match ref_str(e, r) {
            RV::Null => None,
            RV::S(s) => {
                let (p, s): (Vec<char>, Vec<char>) = (p.chars().collect(), s.chars().collect());
                Some(ref_like(&p, &s) != *neg)
            }
            _ => Some(*neg),
        },
        BoolE::IsNull(t, neg) => {
            let is_null = match t {
                NullTarget::N => r.n.is_none(),
                NullTarget::JX => from_json(r.j.get("x")) == RV::Null,
                NullTarget::JY => r.j.get("y").is_none_or(Value::is_null),
                NullTarget::JZ => true,
                NullTarget::A3 => r.a.len() <= 3,
            };
            Some(is_null != *neg)
        }
        BoolE::Exists(k) => Some(r.j.get(*k).is_some()),
        BoolE::Contains(on_json, kind, vals) => {
            let elems: Vec<RV> = if *on_json {
                match r.j.get("y") {
                    None | Some(Value::Null) => return None,
                    Some(Value::Array(items)) => items.iter().map(|v| from_json(Some(v))).collect(),
                    Some(_) => return Some(false),
                }
            } else {
                r.a.iter().map(|v| RV::I(*v)).collect()
            };
            let has = |x: &i64| {
                elems
                    .iter()
                    .any(|e| ref_cmp(Cmp::Eq, e, &RV::I(*x)) == Some(true))
            };
            Some(match kind {
                ContainsKind::One => has(&vals[0]),
                ContainsKind::All => vals.iter().all(has),
                ContainsKind::Any => vals.iter().any(has),
            })
        }
        BoolE::Range(lo, li, x, hi, hii, _) => {
            let v = ref_num(x, r);
            let a = ref_cmp(if *li { Cmp::Le } else { Cmp::Lt }, &RV::I(*lo), &v);
            let b = ref_cmp(if *hii { Cmp::Le } else { Cmp::Lt }, &v, &RV::I(*hi));
            and3(&[a, b])
        }
        BoolE::Not(e, _) => ref_bool(e, r).map(|b| !b),
        BoolE::And(v, _) => and3(&v.iter().map(|e| ref_bool(e, r)).collect::<Vec<_>>()),
        BoolE::Or(v, _) => {
            let vals: Vec<Option<bool>> = v.iter().map(|e| ref_bool(e, r)).collect();
            if vals.contains(&Some(true)) {
                Some(true)
            } else if vals.contains(&None) {
                None
            } else {
                Some(false)
            }
        }
    }
}

fn and3(vals: &[Option<bool>]) -> Option<bool> {
    if vals.contains(&Some(false)) {
        Some(false)
    } else if vals.contains(&None) {
        None
    } else {
        Some(true)
    }
}

// ---------------------------------------------------------------- column batches

/// The rows as typed columns (JSON and array columns only per row), as the engine hands them.
struct Batch {
    i: Vec<i64>,
    d: Vec<f64>,
    s: Vec<String>,
    b: Vec<bool>,
    n: Vec<i64>,
    n_valid: Vec<bool>,
    rows: Vec<OwnedRow>,
}

impl Batch {
    fn new(rows: &[TRow]) -> Batch {
        Batch {
            i: rows.iter().map(|r| r.i).collect(),
            d: rows.iter().map(|r| r.d).collect(),
            s: rows.iter().map(|r| r.s.clone()).collect(),
            b: rows.iter().map(|r| r.b).collect(),
            n: rows.iter().map(|r| r.n.unwrap_or(0)).collect(),
            n_valid: rows.iter().map(|r| r.n.is_some()).collect(),
            rows: rows.iter().map(TRow::owned).collect(),
        }
    }
}

impl Columns for Batch {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn column(&self, field: usize) -> Option<ColumnView<'_>> {
        let (data, valid) = match field {
            I => (ColumnSlice::I64(&self.i), None),
            D => (ColumnSlice::F64(&self.d), None),
            S => (ColumnSlice::Str(&self.s), None),
            B => (ColumnSlice::Bool(&self.b), None),
            N => (ColumnSlice::I64(&self.n), Some(self.n_valid.as_slice())),
            _ => return None,
        };
        Some(ColumnView { data, valid })
    }
    fn with_row(&self, r: usize, f: &mut dyn FnMut(&dyn quiver_expr::Row)) {
        f(&self.rows[r])
    }
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The compiled filter agrees with the reference interpreter, including
    /// the UNKNOWN outcome, on several random rows.
    #[test]
    fn compiled_matches_reference(e in bool_e(), rows in prop::collection::vec(trow(), 1..6)) {
        let src = print_bool(&e);
        let filter = compile(&src, &schema(), &HashMap::new())
            .map_err(|err| TestCaseError::fail(format!("{src}: {err}")))?;
        // Printing the parsed tree gives equivalent source.
        let printed = parse(&src).unwrap().to_string();
        let reprinted = compile(&printed, &schema(), &HashMap::new())
            .map_err(|err| TestCaseError::fail(format!("{printed}: {err}")))?;
        for r in &rows {
            let want = ref_bool(&e, r);
            let row = r.owned();
            prop_assert_eq!(filter.eval_tri(&row), want, "src: {}\nrow: {:?}", src, r);
            prop_assert_eq!(filter.eval(&row), want == Some(true));
            prop_assert_eq!(reprinted.eval_tri(&row), want, "printed: {}", printed);
        }
    }

    /// Column-at-a-time evaluation into a bitmap agrees with per-row evaluation on every row of
    /// the mask, and sets no bit outside it.
    #[test]
    fn bitmap_matches_per_row(
        e in bool_e(),
        rows in prop::collection::vec(trow(), 1..140),
        mask_seed in any::<u64>(),
    ) {
        let src = print_bool(&e);
        let filter = compile(&src, &schema(), &HashMap::new())
            .map_err(|err| TestCaseError::fail(format!("{src}: {err}")))?;
        let batch = Batch::new(&rows);
        let n = rows.len();
        let mut mask = vec![0u64; n.div_ceil(64)];
        for r in 0..n {
            if mask_seed == 0 || (mask_seed.rotate_left(r as u32) & 1) == 1 || mask_seed % 3 == 0 {
                mask[r / 64] |= 1 << (r % 64);
            }
        }
        let bits = filter.eval_bitmap(&batch, &mask);
        for (r, row) in rows.iter().enumerate() {
            let in_mask = mask[r / 64] >> (r % 64) & 1 == 1;
            let got = bits[r / 64] >> (r % 64) & 1 == 1;
            let want = in_mask && filter.eval(&row.owned());
            prop_assert_eq!(got, want, "src: {}\nrow {}: {:?}", src, r, row);
        }
    }

    /// Arbitrary text never makes parse or compile panic.
    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let _ = parse(&src);
        let _ = compile(&src, &schema(), &HashMap::new());
    }

    /// Token soups (mostly invalid, sometimes valid) never panic anywhere,
    /// including evaluation of whatever compiles.
    #[test]
    fn token_soup_never_panics(
        toks in prop::collection::vec(prop::sample::select(SOUP.to_vec()), 0..24),
        r in trow(),
    ) {
        let src = toks.join(" ");
        let params = HashMap::from([
            ("p".to_string(), json!([1, "a", 2.5, [1]])),
            ("q".to_string(), json!(0)),
        ]);
        let _ = parse(&src);
        if let Ok(f) = compile(&src, &schema(), &params) {
            let _ = f.eval(&r.owned());
            let _ = f.pk_lookup(I);
            let _ = f.fields();
        }
        // Without spaces too (exercises adjacent-token lexing).
        let _ = compile(&toks.concat(), &schema(), &params);
    }
}

const SOUP: &[&str] = &[
    "i",
    "d",
    "s",
    "b",
    "n",
    "j",
    "a",
    "zz",
    "$meta",
    "[",
    "]",
    "(",
    ")",
    "{p}",
    "{q}",
    "{",
    "}",
    ",",
    "\"k\"",
    "'x'",
    "\"x%\"",
    "0",
    "1",
    "-1",
    "2.5",
    "1e308",
    "9223372036854775807",
    "-9223372036854775808",
    "0x10",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "and",
    "or",
    "not",
    "!",
    "&&",
    "||",
    "in",
    "like",
    "is",
    "null",
    "exists",
    "true",
    "FALSE",
    "json_contains",
    "json_contains_all",
    "array_contains_any",
    "array_length",
    "j[\"x\"]",
    "a[0]",
    "a[99]",
    "[1, 2]",
    "[]",
];
