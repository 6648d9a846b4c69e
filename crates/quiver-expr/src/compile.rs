//! Name resolution, template binding, type checking and lowering of the
//! untyped [`Expr`] into the evaluable [`Node`] tree.

use std::collections::HashMap;

use serde_json::Value;

use crate::ast::{BinaryOp, Expr, ExprKind, Func, PathKey, UnaryOp};
use crate::error::ExprError;
use crate::eval::Node;
use crate::like::LikeMatcher;
use crate::types::{
    check_cmp, comparable, describe_json, flip, fold, mismatch, pred_what, Ty, Typed,
};
use crate::value::{from_json, Lit, LitSet};
use crate::{FieldType, Schema};

pub(crate) struct Compiler<'a> {
    pub src: Option<&'a str>,
    pub schema: &'a dyn Schema,
    pub params: &'a HashMap<String, Value>,
}

impl Compiler<'_> {
    fn label(&self, e: &Expr) -> String {
        self.src
            .and_then(|s| s.get(e.start..e.end))
            .map_or_else(|| e.to_string(), |s| s.trim().to_string())
    }

    /// Lowers the root, which must be a predicate.
    pub(crate) fn root(&self, e: &Expr) -> Result<Node, ExprError> {
        let t = self.lower(e)?;
        self.pred(t)
    }

    fn pred(&self, t: Typed) -> Result<Node, ExprError> {
        if t.ty.is_pred() {
            return Ok(t.node);
        }
        if t.lit().is_some() {
            return Err(ExprError::Invalid(format!(
                "a filter condition must be a boolean expression, found {}",
                t.what
            )));
        }
        Err(mismatch(&t, "a boolean expression", t.what.clone()))
    }

    fn numeric(&self, t: &Typed) -> Result<(), ExprError> {
        if t.ty.is_numeric() {
            Ok(())
        } else {
            Err(mismatch(
                t,
                "a numeric value for arithmetic",
                t.what.clone(),
            ))
        }
    }

    /// The elements of a constant list operand.
    fn const_list<'t>(&self, t: &'t Typed, context: &str) -> Result<&'t [Value], ExprError> {
        match t.lit() {
            Some(Lit::Json(Value::Array(items))) => Ok(items),
            _ => Err(ExprError::Invalid(format!(
                "{context} must be a list of constants such as [1, 2, 3], found {}",
                t.what
            ))),
        }
    }

    /// Checks that list/argument values can be equal to elements of type `elem`.
    fn check_elems(&self, target: &Typed, elem: &Ty, values: &[Value]) -> Result<(), ExprError> {
        for v in values {
            if !comparable(elem, &Ty::of_json(v), false) {
                return Err(mismatch(target, elem.expectation(), describe_json(v)));
            }
        }
        Ok(())
    }

    fn lower(&self, e: &Expr) -> Result<Typed, ExprError> {
        let label = self.label(e);
        let (node, ty, what) = self.lower_kind(e, &label)?;
        Ok(Typed {
            node: fold(node),
            ty,
            label,
            what,
        })
    }

    // The per-construct work lives in separate functions so that each level
    // of recursion only pays for the stack of the construct at hand (this
    // matters in unoptimised builds, where a big `match` gets one stack slot
    // per local of every arm).
    #[inline(never)]
    fn lower_kind(&self, e: &Expr, label: &str) -> Result<(Node, Ty, String), ExprError> {
        Ok(match &e.kind {
            ExprKind::Int(v) => (Node::Lit(Lit::Int(*v)), Ty::Num, format!("integer {v}")),
            ExprKind::Float(v) => (Node::Lit(Lit::Float(*v)), Ty::Num, format!("number {v}")),
            ExprKind::Bool(v) => (Node::Lit(Lit::Bool(*v)), Ty::Bool, format!("boolean {v}")),
            ExprKind::Str(s) => (
                Node::Lit(Lit::Str(s.as_str().into())),
                Ty::Str,
                format!("string {s:?}"),
            ),
            ExprKind::Array(items) => return self.array(items),
            ExprKind::Template(name) => return self.template(name),
            ExprKind::Ident { name, path } => return self.ident(name, path, label),
            ExprKind::Unary { op, expr } => return self.unary(*op, expr, label),
            ExprKind::Binary { op, lhs, rhs } => return self.binary(*op, lhs, rhs, label),
            ExprKind::And(items) => (self.logical(true, items)?, Ty::Bool, pred_what(label)),
            ExprKind::Or(items) => (self.logical(false, items)?, Ty::Bool, pred_what(label)),
            ExprKind::Range {
                lower,
                lower_inclusive,
                expr,
                upper,
                upper_inclusive,
            } => (
                self.range(lower, *lower_inclusive, expr, upper, *upper_inclusive)?,
                Ty::Bool,
                pred_what(label),
            ),
            ExprKind::In {
                expr,
                list,
                negated,
            } => (
                self.in_list(expr, list, *negated)?,
                Ty::Bool,
                pred_what(label),
            ),
            ExprKind::Like {
                expr,
                pattern,
                negated,
            } => (
                self.like(expr, pattern, *negated)?,
                Ty::Bool,
                pred_what(label),
            ),
            ExprKind::IsNull { expr, negated } => {
                (self.is_null(expr, *negated)?, Ty::Bool, pred_what(label))
            }
            ExprKind::Exists(expr) => (self.exists(expr)?, Ty::Bool, pred_what(label)),
            ExprKind::Call { func, args } => return self.call(*func, args, label),
        })
    }

    #[inline(never)]
    fn unary(
        &self,
        op: UnaryOp,
        expr: &Expr,
        label: &str,
    ) -> Result<(Node, Ty, String), ExprError> {
        let t = self.lower(expr)?;
        if op == UnaryOp::Not {
            return Ok((
                Node::Not(Box::new(self.pred(t)?)),
                Ty::Bool,
                pred_what(label),
            ));
        }
        self.numeric(&t)?;
        let node = if op == UnaryOp::Neg {
            Node::Neg(Box::new(t.node))
        } else {
            t.node
        };
        Ok((node, Ty::Num, format!("numeric expression '{label}'")))
    }

    #[inline(never)]
    fn binary(
        &self,
        op: BinaryOp,
        lhs: &Expr,
        rhs: &Expr,
        label: &str,
    ) -> Result<(Node, Ty, String), ExprError> {
        let a = self.lower(lhs)?;
        let b = self.lower(rhs)?;
        if op.is_arithmetic() {
            self.numeric(&a)?;
            self.numeric(&b)?;
            let node = Node::Arith {
                op,
                lhs: Box::new(a.node),
                rhs: Box::new(b.node),
            };
            return Ok((node, Ty::Num, format!("numeric expression '{label}'")));
        }
        check_cmp(op, a.as_ref(), b.as_ref())?;
        let node = match (a.node, b.node) {
            (lhs, Node::Lit(lit)) if !matches!(lhs, Node::Lit(_)) => Node::CmpLit {
                op,
                lhs: Box::new(lhs),
                lit,
            },
            (Node::Lit(lit), rhs) if !matches!(rhs, Node::Lit(_)) => Node::CmpLit {
                op: flip(op),
                lhs: Box::new(rhs),
                lit,
            },
            (lhs, rhs) => Node::Cmp {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
        };
        Ok((node, Ty::Bool, pred_what(label)))
    }

    #[inline(never)]
    fn range(
        &self,
        lower: &Expr,
        lower_inclusive: bool,
        expr: &Expr,
        upper: &Expr,
        upper_inclusive: bool,
    ) -> Result<Node, ExprError> {
        let (lo, x, hi) = (self.lower(lower)?, self.lower(expr)?, self.lower(upper)?);
        check_cmp(BinaryOp::Lt, x.as_ref(), lo.as_ref())?;
        check_cmp(BinaryOp::Lt, x.as_ref(), hi.as_ref())?;
        Ok(Node::Range {
            lower: Box::new(lo.node),
            lower_inclusive,
            expr: Box::new(x.node),
            upper: Box::new(hi.node),
            upper_inclusive,
        })
    }

    #[inline(never)]
    fn in_list(&self, expr: &Expr, list: &Expr, negated: bool) -> Result<Node, ExprError> {
        let (x, l) = (self.lower(expr)?, self.lower(list)?);
        let items = self.const_list(&l, "the right side of 'in'")?;
        if matches!(x.ty, Ty::Array(_) | Ty::List) {
            return Err(mismatch(
                &x,
                "a scalar value or JSON path (use array_contains_any for arrays)",
                x.what.clone(),
            ));
        }
        self.check_elems(&x, &x.ty, items)?;
        let mut set = LitSet::default();
        items.iter().for_each(|v| set.insert(from_json(v)));
        Ok(Node::In {
            expr: Box::new(x.node),
            set: Box::new(set),
            negated,
        })
    }

    #[inline(never)]
    fn like(&self, expr: &Expr, pattern: &Expr, negated: bool) -> Result<Node, ExprError> {
        let (x, p) = (self.lower(expr)?, self.lower(pattern)?);
        if !matches!(x.ty, Ty::Str | Ty::Json) {
            return Err(mismatch(
                &x,
                "a VarChar field or JSON path for 'like'",
                x.what.clone(),
            ));
        }
        let Some(Lit::Str(pat)) = p.lit() else {
            return Err(ExprError::Invalid(format!(
                "the pattern of 'like' must be a string literal, found {}",
                p.what
            )));
        };
        Ok(Node::Like {
            expr: Box::new(x.node),
            matcher: LikeMatcher::new(pat),
            negated,
        })
    }

    #[inline(never)]
    fn is_null(&self, expr: &Expr, negated: bool) -> Result<Node, ExprError> {
        let x = self.lower(expr)?;
        Ok(Node::IsNull {
            expr: Box::new(x.node),
            negated,
        })
    }

    #[inline(never)]
    fn exists(&self, expr: &Expr) -> Result<Node, ExprError> {
        let x = self.lower(expr)?;
        match x.node {
            Node::Path { field, path } if x.ty == Ty::Json => Ok(Node::Exists { field, path }),
            Node::Field(field) if x.ty == Ty::Json => Ok(Node::Exists {
                field,
                path: Box::new([]),
            }),
            _ => Err(ExprError::Invalid(format!(
                "'exists' needs a JSON path such as exists json_field[\"key\"], found {}",
                x.what
            ))),
        }
    }

    fn logical(&self, and: bool, items: &[Expr]) -> Result<Node, ExprError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let node = self.pred(self.lower(item)?)?;
            match node {
                // Flatten nested chains of the same operator.
                Node::And(inner) if and => out.extend(inner),
                Node::Or(inner) if !and => out.extend(inner),
                // Neutral element: drop it.
                Node::Lit(Lit::Bool(b)) if b == and => {}
                // Absorbing element: the whole chain is constant.
                Node::Lit(Lit::Bool(b)) if b != and => return Ok(Node::Lit(Lit::Bool(b))),
                other => out.push(other),
            }
        }
        Ok(match out.len() {
            0 => Node::Lit(Lit::Bool(and)),
            1 => out.pop().unwrap_or(Node::Lit(Lit::Bool(and))),
            _ if and => Node::And(out),
            _ => Node::Or(out),
        })
    }

    fn array(&self, items: &[Expr]) -> Result<(Node, Ty, String), ExprError> {
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            // Fast path for plain literals (long `in` lists).
            let direct = match &item.kind {
                ExprKind::Int(v) => Some(Value::from(*v)),
                ExprKind::Str(v) => Some(Value::String(v.clone())),
                ExprKind::Bool(v) => Some(Value::Bool(*v)),
                ExprKind::Float(v) => serde_json::Number::from_f64(*v).map(Value::Number),
                _ => None,
            };
            if let Some(v) = direct {
                values.push(v);
                continue;
            }
            let t = self.lower(item)?;
            let Some(v) = t.lit().and_then(Lit::to_json) else {
                return Err(ExprError::Invalid(format!(
                    "array literals may only contain constants; '{}' at position {} is not a constant value",
                    t.label, item.start
                )));
            };
            values.push(v);
        }
        let v = Value::Array(values);
        let what = describe_json(&v);
        Ok((Node::Lit(Lit::Json(v)), Ty::List, what))
    }

    fn template(&self, name: &str) -> Result<(Node, Ty, String), ExprError> {
        let v = self
            .params
            .get(name)
            .ok_or_else(|| ExprError::UnboundTemplate(name.to_string()))?;
        let bad =
            |why: &str| ExprError::Invalid(format!("template placeholder '{{{name}}}' {why}"));
        let what = format!("{} (from {{{name}}})", describe_json(v));
        let (lit, ty) = match v {
            Value::Null => return Err(bad("is bound to null, which is not a comparable value")),
            Value::Object(_) => {
                return Err(bad(
                    "is bound to a JSON object; only scalars and arrays are supported",
                ))
            }
            Value::Array(items) if items.iter().any(Value::is_null) => {
                return Err(bad("is bound to an array containing null"))
            }
            Value::Array(_) => (Lit::Json(v.clone()), Ty::List),
            Value::Bool(b) => (Lit::Bool(*b), Ty::Bool),
            Value::String(s) => (Lit::Str(s.as_str().into()), Ty::Str),
            Value::Number(n) => match n.as_i64() {
                Some(i) => (Lit::Int(i), Ty::Num),
                None => (Lit::Float(n.as_f64().unwrap_or(f64::NAN)), Ty::Num),
            },
        };
        Ok((Node::Lit(lit), ty, what))
    }

    fn dynamic(&self, name: &str) -> Result<usize, ExprError> {
        self.schema.dynamic_field().ok_or_else(|| {
            if name == "$meta" {
                ExprError::Invalid(
                    "'$meta' cannot be used: the collection has no dynamic field".into(),
                )
            } else {
                ExprError::UnknownField(name.to_string())
            }
        })
    }

    fn ident(
        &self,
        name: &str,
        path: &[PathKey],
        label: &str,
    ) -> Result<(Node, Ty, String), ExprError> {
        let json_path = |field: usize, path: Vec<PathKey>| {
            let node = if path.is_empty() {
                Node::Field(field)
            } else {
                Node::Path {
                    field,
                    path: path.into_boxed_slice(),
                }
            };
            (node, Ty::Json, format!("JSON value {label}"))
        };
        if name == "$meta" {
            return Ok(json_path(self.dynamic(name)?, path.to_vec()));
        }
        let info = self.schema.field(name).map_err(|reason| {
            ExprError::Invalid(format!(
                "field '{name}' cannot be used in a filter expression: {reason}"
            ))
        })?;
        let Some(info) = info else {
            // Not in the schema: a key of the dynamic field.
            let dynamic = self.dynamic(name)?;
            let mut full = vec![PathKey::Key(name.to_string())];
            full.extend_from_slice(path);
            return Ok(json_path(dynamic, full));
        };
        let ty = Ty::of_field(&info.ty);
        if path.is_empty() {
            return Ok((
                Node::Field(info.id),
                ty,
                format!("{} field '{name}'", info.ty),
            ));
        }
        match (&info.ty, path) {
            (FieldType::Json, _) => Ok(json_path(info.id, path.to_vec())),
            (FieldType::Array(elem), [PathKey::Index(i)]) if *i >= 0 => {
                let elem_ty = Ty::of_field(elem);
                let node = Node::Path {
                    field: info.id,
                    path: path.to_vec().into_boxed_slice(),
                };
                Ok((node, elem_ty, format!("{elem} element {label}")))
            }
            (FieldType::Array(_), _) => Err(ExprError::Invalid(format!(
                "array field '{name}' can only be indexed by one non-negative integer, as in {name}[0]; found {label}"
            ))),
            (other, _) => Err(ExprError::TypeMismatch {
                field: name.to_string(),
                expected: "a JSON or Array field to index with [...]".into(),
                found: format!("{other} field"),
            }),
        }
    }

    fn call(
        &self,
        func: Func,
        args: &[Expr],
        label: &str,
    ) -> Result<(Node, Ty, String), ExprError> {
        let [first, rest @ ..] = args else {
            return Err(ExprError::Invalid(format!(
                "{}() needs arguments",
                func.name()
            )));
        };
        if args.len() != func.arity() {
            return Err(ExprError::Invalid(format!(
                "{}() takes {} argument(s), found {}",
                func.name(),
                func.arity(),
                args.len()
            )));
        }
        let second = || {
            rest.first()
                .ok_or_else(|| ExprError::Invalid(format!("{}() needs 2 arguments", func.name())))
        };
        let target = self.lower(first)?;
        let elem = match &target.ty {
            Ty::Array(elem) => (**elem).clone(),
            Ty::Json | Ty::List => Ty::Json,
            _ => {
                return Err(mismatch(
                    &target,
                    format!("an Array field or JSON value for {}()", func.name()),
                    target.what.clone(),
                ))
            }
        };
        let node = match func {
            Func::ArrayLength => {
                return Ok((
                    Node::ArrayLength(Box::new(target.node)),
                    Ty::Num,
                    format!("numeric expression '{label}'"),
                ))
            }
            Func::JsonContains | Func::ArrayContains => {
                let v = self.lower(second()?)?;
                let Some(value) = v.lit().and_then(Lit::to_json) else {
                    return Err(ExprError::Invalid(format!(
                        "the second argument of {}() must be a constant, found {}",
                        func.name(),
                        v.what
                    )));
                };
                self.check_elems(&target, &elem, std::slice::from_ref(&value))?;
                let mut set = LitSet::default();
                set.insert(from_json(&value));
                Node::ContainsAny {
                    expr: Box::new(target.node),
                    set: Box::new(set),
                }
            }
            Func::JsonContainsAll
            | Func::ArrayContainsAll
            | Func::JsonContainsAny
            | Func::ArrayContainsAny => {
                let l = self.lower(second()?)?;
                let items =
                    self.const_list(&l, &format!("the second argument of {}()", func.name()))?;
                self.check_elems(&target, &elem, items)?;
                if matches!(func, Func::JsonContainsAll | Func::ArrayContainsAll) {
                    let mut values: Vec<Lit> = Vec::with_capacity(items.len());
                    for v in items {
                        let lit = Lit::from_val(from_json(v));
                        if !values.contains(&lit) {
                            values.push(lit);
                        }
                    }
                    Node::ContainsAll {
                        expr: Box::new(target.node),
                        values,
                    }
                } else {
                    let mut set = LitSet::default();
                    items.iter().for_each(|v| set.insert(from_json(v)));
                    Node::ContainsAny {
                        expr: Box::new(target.node),
                        set: Box::new(set),
                    }
                }
            }
        };
        Ok((node, Ty::Bool, format!("boolean expression '{label}'")))
    }
}
