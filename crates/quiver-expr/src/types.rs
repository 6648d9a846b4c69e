//! Static types of sub-expressions and the type-checking helpers.

use serde_json::Value;

use crate::ast::BinaryOp;
use crate::error::ExprError;
use crate::eval::{NoRow, Node};
use crate::value::Lit;
use crate::FieldType;

/// Static type of a sub-expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Bool,
    /// Any integer or float (numeric promotion is implicit everywhere).
    Num,
    Str,
    /// Dynamically typed JSON value: checked per row, never at compile time.
    Json,
    /// An ARRAY field with its element type.
    Array(Box<Ty>),
    /// A constant list (array literal or list-valued template).
    List,
}

impl Ty {
    pub(crate) fn of_field(ft: &FieldType) -> Ty {
        match ft {
            FieldType::Bool => Ty::Bool,
            FieldType::Int8
            | FieldType::Int16
            | FieldType::Int32
            | FieldType::Int64
            | FieldType::Float
            | FieldType::Double => Ty::Num,
            FieldType::VarChar => Ty::Str,
            FieldType::Json => Ty::Json,
            FieldType::Array(e) => Ty::Array(Box::new(Ty::of_field(e))),
        }
    }

    pub(crate) fn of_json(v: &Value) -> Ty {
        match v {
            Value::Bool(_) => Ty::Bool,
            Value::Number(_) => Ty::Num,
            Value::String(_) => Ty::Str,
            _ => Ty::List,
        }
    }

    /// What a partner of this type must be, for error messages.
    pub(crate) fn expectation(&self) -> &'static str {
        match self {
            Ty::Bool => "a boolean",
            Ty::Num => "a number",
            Ty::Str => "a string",
            Ty::Json => "any value",
            Ty::Array(_) | Ty::List => "an array",
        }
    }

    pub(crate) fn is_pred(&self) -> bool {
        matches!(self, Ty::Bool | Ty::Json)
    }

    pub(crate) fn is_numeric(&self) -> bool {
        matches!(self, Ty::Num | Ty::Json)
    }
}

/// Whether values of the two types may be compared (`ordering`: with < <= > >=).
pub(crate) fn comparable(a: &Ty, b: &Ty, ordering: bool) -> bool {
    match (a, b) {
        (Ty::Json, _) | (_, Ty::Json) => true,
        (Ty::Num, Ty::Num) | (Ty::Str, Ty::Str) => true,
        (Ty::Bool, Ty::Bool) => !ordering,
        (Ty::Array(_) | Ty::List, Ty::Array(_) | Ty::List) => !ordering,
        _ => false,
    }
}

pub(crate) fn describe_json(v: &Value) -> String {
    if let Value::Array(items) = v {
        if items.len() > 8 {
            return format!("array of {} elements", items.len());
        }
    }
    let text = v.to_string();
    let text = if text.len() > 60 {
        let mut cut = 57;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &text[..cut])
    } else {
        text
    };
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => format!("boolean {text}"),
        Value::Number(_) => format!("number {text}"),
        Value::String(_) => format!("string {text}"),
        Value::Array(_) => format!("array {text}"),
        Value::Object(_) => format!("object {text}"),
    }
}

/// A lowered sub-expression with its static type and how to name it in errors.
pub(crate) struct Typed {
    pub node: Node,
    pub ty: Ty,
    /// Source text of the sub-expression (the field name for a field).
    pub label: String,
    /// Description for "found ..." in messages, e.g. `Int64 field 'age'`.
    pub what: String,
}

impl Typed {
    pub(crate) fn as_ref(&self) -> TypedRef<'_> {
        TypedRef {
            ty: &self.ty,
            label: &self.label,
            what: &self.what,
            is_lit: self.lit().is_some(),
        }
    }

    pub(crate) fn lit(&self) -> Option<&Lit> {
        match &self.node {
            Node::Lit(l) => Some(l),
            _ => None,
        }
    }
}

/// Replaces a sub-tree that reads no column by its value.
pub(crate) fn fold(node: Node) -> Node {
    if matches!(node, Node::Lit(_)) || node.reads_fields() {
        return node;
    }
    let v = Lit::from_val(node.eval(&NoRow));
    Node::Lit(v)
}

pub(crate) fn mismatch(
    field: &Typed,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> ExprError {
    mismatch_parts(field.label.clone(), expected, found)
}

pub(crate) fn mismatch_parts(
    field: String,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> ExprError {
    ExprError::TypeMismatch {
        field,
        expected: expected.into(),
        found: found.into(),
    }
}

/// The operator with its operands swapped: `5 > x` is `x < 5`.
pub(crate) fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        other => other,
    }
}

pub(crate) fn pred_what(label: &str) -> String {
    format!("boolean expression '{label}'")
}

/// The parts of a [`Typed`] that type checks look at.
#[derive(Clone, Copy)]
pub(crate) struct TypedRef<'a> {
    ty: &'a Ty,
    label: &'a str,
    what: &'a str,
    is_lit: bool,
}

pub(crate) fn check_cmp(op: BinaryOp, a: TypedRef<'_>, b: TypedRef<'_>) -> Result<(), ExprError> {
    let ordering = !matches!(op, BinaryOp::Eq | BinaryOp::Ne);
    if comparable(a.ty, b.ty, ordering) {
        return Ok(());
    }
    // Name the non-literal side as the culprit's subject.
    let (subject, other) = if a.is_lit && !b.is_lit {
        (b, a)
    } else {
        (a, b)
    };
    let expected = if ordering && comparable(a.ty, b.ty, false) {
        format!(
            "a number or string for '{}' (booleans and arrays only support == and !=)",
            op.symbol()
        )
    } else {
        subject.ty.expectation().to_string()
    };
    Err(mismatch_parts(
        subject.label.to_string(),
        expected,
        other.what,
    ))
}
