//! Recursive-descent parser (one function per precedence level).

use crate::ast::{BinaryOp, Expr, ExprKind, Func, PathKey, UnaryOp};
use crate::error::ExprError;
use crate::lexer::{tokenize, Kw, Tok, Token};

/// Maximum nesting depth of an expression (parentheses, unary operators,
/// length of arithmetic chains). Bounds recursion in every later pass.
pub const MAX_DEPTH: usize = 64;

const I64_MIN_ABS: u64 = 1 << 63;

pub(crate) fn parse(src: &str) -> Result<Expr, ExprError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        i: 0,
        depth: 0,
    };
    let e = p.parse_or()?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        let expected = match t.tok {
            Tok::RParen | Tok::RBracket | Tok::RBrace => "end of input (unbalanced brackets)",
            _ => "an operator ('and', 'or', a comparison ...) or end of input",
        };
        return Err(ExprError::parse(t.start, expected, t.tok.describe()));
    }
    Ok(e)
}

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
}

fn mk(kind: ExprKind, start: usize, end: usize) -> Expr {
    Expr { kind, start, end }
}

fn cmp_op(t: &Tok) -> Option<BinaryOp> {
    Some(match t {
        Tok::EqEq => BinaryOp::Eq,
        Tok::Ne => BinaryOp::Ne,
        Tok::Lt => BinaryOp::Lt,
        Tok::Le => BinaryOp::Le,
        Tok::Gt => BinaryOp::Gt,
        Tok::Ge => BinaryOp::Ge,
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> &Token {
        // The token vector always ends with Eof and `i` never passes it.
        &self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, off: usize) -> &Tok {
        &self.tokens[(self.i + off).min(self.tokens.len() - 1)].tok
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    fn prev_end(&self) -> usize {
        if self.i == 0 {
            0
        } else {
            self.tokens[self.i - 1].end
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Token, ExprError> {
        if self.peek().tok == tok {
            Ok(self.bump())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, expected: &str) -> ExprError {
        let t = self.peek();
        ExprError::parse(t.start, expected, t.tok.describe())
    }

    /// Runs `f` one nesting level deeper.
    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        self.check_depth()?;
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn check_depth(&self) -> Result<(), ExprError> {
        if self.depth >= MAX_DEPTH {
            return Err(ExprError::Invalid(format!(
                "expression is nested too deeply at position {} (the limit is {MAX_DEPTH} levels)",
                self.peek().start
            )));
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Expr, ExprError> {
        self.parse_logical(true)
    }

    fn parse_logical(&mut self, or: bool) -> Result<Expr, ExprError> {
        let start = self.peek().start;
        let sub = |p: &mut Self| {
            if or {
                p.parse_logical(false)
            } else {
                p.parse_not()
            }
        };
        let first = sub(self)?;
        let is_op = |t: &Tok| {
            if or {
                matches!(t, Tok::Kw(Kw::Or) | Tok::OrOr)
            } else {
                matches!(t, Tok::Kw(Kw::And) | Tok::AndAnd)
            }
        };
        if !is_op(&self.peek().tok) {
            return Ok(first);
        }
        let mut items = vec![first];
        while is_op(&self.peek().tok) {
            self.bump();
            items.push(sub(self)?);
        }
        let kind = if or {
            ExprKind::Or(items)
        } else {
            ExprKind::And(items)
        };
        Ok(mk(kind, start, self.prev_end()))
    }

    fn parse_not(&mut self) -> Result<Expr, ExprError> {
        if matches!(self.peek().tok, Tok::Kw(Kw::Not) | Tok::Bang) {
            let start = self.bump().start;
            let e = self.nested(|p| p.parse_not())?;
            return Ok(mk(
                ExprKind::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(e),
                },
                start,
                self.prev_end(),
            ));
        }
        self.parse_cmp()
    }

    fn parse_cmp(&mut self) -> Result<Expr, ExprError> {
        let start = self.peek().start;
        let lhs = self.parse_add()?;
        let t = &self.peek().tok;
        if cmp_op(t).is_none() && !matches!(t, Tok::Kw(Kw::In | Kw::Like | Kw::Not | Kw::Is)) {
            return Ok(lhs);
        }
        self.predicate_rest(start, lhs)
    }

    /// The operator and right side(s) of a predicate whose left side is `lhs`.
    /// Kept out of `parse_cmp` so that its stack frame is only paid once per
    /// predicate, not once per nesting level.
    #[inline(never)]
    fn predicate_rest(&mut self, start: usize, lhs: Expr) -> Result<Expr, ExprError> {
        let boxed = Box::new;
        let kind = match self.peek().tok.clone() {
            t if cmp_op(&t).is_some() => {
                let op = cmp_op(&t).unwrap_or(BinaryOp::Eq);
                self.bump();
                let mid = self.parse_add()?;
                match cmp_op(&self.peek().tok) {
                    None => ExprKind::Binary {
                        op,
                        lhs: boxed(lhs),
                        rhs: boxed(mid),
                    },
                    Some(op2) => {
                        let op2_tok = self.bump();
                        let up = |o| matches!(o, BinaryOp::Lt | BinaryOp::Le);
                        let down = |o| matches!(o, BinaryOp::Gt | BinaryOp::Ge);
                        let rhs = self.parse_add()?;
                        let kind = if up(op) && up(op2) {
                            ExprKind::Range {
                                lower: boxed(lhs),
                                lower_inclusive: op == BinaryOp::Le,
                                expr: boxed(mid),
                                upper: boxed(rhs),
                                upper_inclusive: op2 == BinaryOp::Le,
                            }
                        } else if down(op) && down(op2) {
                            ExprKind::Range {
                                lower: boxed(rhs),
                                lower_inclusive: op2 == BinaryOp::Ge,
                                expr: boxed(mid),
                                upper: boxed(lhs),
                                upper_inclusive: op == BinaryOp::Ge,
                            }
                        } else {
                            let expected = if up(op) {
                                "'<' or '<=' (a range must use one direction: a < x <= b)"
                            } else if down(op) {
                                "'>' or '>=' (a range must use one direction: b >= x > a)"
                            } else {
                                "a single comparison ('==' and '!=' cannot be chained)"
                            };
                            return Err(ExprError::parse(
                                op2_tok.start,
                                expected,
                                op2_tok.tok.describe(),
                            ));
                        };
                        if cmp_op(&self.peek().tok).is_some() {
                            return Err(
                                self.unexpected("at most two chained comparisons (a < x < b)")
                            );
                        }
                        kind
                    }
                }
            }
            Tok::Kw(Kw::In) => {
                self.bump();
                let list = self.parse_add()?;
                ExprKind::In {
                    expr: boxed(lhs),
                    list: boxed(list),
                    negated: false,
                }
            }
            Tok::Kw(Kw::Like) => {
                self.bump();
                let pattern = self.parse_add()?;
                ExprKind::Like {
                    expr: boxed(lhs),
                    pattern: boxed(pattern),
                    negated: false,
                }
            }
            Tok::Kw(Kw::Not) => {
                self.bump();
                match self.peek().tok {
                    Tok::Kw(Kw::In) => {
                        self.bump();
                        let list = self.parse_add()?;
                        ExprKind::In {
                            expr: boxed(lhs),
                            list: boxed(list),
                            negated: true,
                        }
                    }
                    Tok::Kw(Kw::Like) => {
                        self.bump();
                        let pattern = self.parse_add()?;
                        ExprKind::Like {
                            expr: boxed(lhs),
                            pattern: boxed(pattern),
                            negated: true,
                        }
                    }
                    _ => return Err(self.unexpected("'in' or 'like' after 'not'")),
                }
            }
            Tok::Kw(Kw::Is) => {
                self.bump();
                let negated = if self.peek().tok == Tok::Kw(Kw::Not) {
                    self.bump();
                    true
                } else {
                    false
                };
                let what = if negated {
                    "'null' after 'is not'"
                } else {
                    "'null' or 'not null' after 'is'"
                };
                self.expect(Tok::Kw(Kw::Null), what)?;
                ExprKind::IsNull {
                    expr: boxed(lhs),
                    negated,
                }
            }
            _ => return Ok(lhs),
        };
        Ok(mk(kind, start, self.prev_end()))
    }

    fn parse_binary_chain(
        &mut self,
        ops: fn(&Tok) -> Option<BinaryOp>,
        next: fn(&mut Self) -> Result<Expr, ExprError>,
    ) -> Result<Expr, ExprError> {
        let start = self.peek().start;
        let mut lhs = next(self)?;
        let saved = self.depth;
        let mut result = Ok(());
        while let Some(op) = ops(&self.peek().tok) {
            self.bump();
            // Each link of a left-associative chain adds one level of tree height.
            if let Err(e) = self.check_depth() {
                result = Err(e);
                break;
            }
            self.depth += 1;
            match next(self) {
                Ok(rhs) => {
                    lhs = mk(
                        ExprKind::Binary {
                            op,
                            lhs: Box::new(lhs),
                            rhs: Box::new(rhs),
                        },
                        start,
                        self.prev_end(),
                    )
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.depth = saved;
        result.map(|()| lhs)
    }

    fn parse_add(&mut self) -> Result<Expr, ExprError> {
        self.parse_binary_chain(
            |t| match t {
                Tok::Plus => Some(BinaryOp::Add),
                Tok::Minus => Some(BinaryOp::Sub),
                _ => None,
            },
            Self::parse_mul,
        )
    }

    fn parse_mul(&mut self) -> Result<Expr, ExprError> {
        self.parse_binary_chain(
            |t| match t {
                Tok::Star => Some(BinaryOp::Mul),
                Tok::Slash => Some(BinaryOp::Div),
                Tok::Percent => Some(BinaryOp::Mod),
                _ => None,
            },
            Self::parse_unary,
        )
    }

    fn parse_unary(&mut self) -> Result<Expr, ExprError> {
        let op = match self.peek().tok {
            Tok::Minus => UnaryOp::Neg,
            Tok::Plus => UnaryOp::Plus,
            _ => return self.parse_power(),
        };
        let start = self.bump().start;
        // `-9223372036854775808` is the only way to write i64::MIN.
        if op == UnaryOp::Neg
            && *self.peek_at(0) == Tok::Int(I64_MIN_ABS)
            && *self.peek_at(1) != Tok::Pow
        {
            let t = self.bump();
            return Ok(mk(ExprKind::Int(i64::MIN), start, t.end));
        }
        let e = self.nested(|p| p.parse_unary())?;
        let end = self.prev_end();
        let kind = match (op, &e.kind) {
            (UnaryOp::Neg, ExprKind::Int(v)) if v.checked_neg().is_some() => ExprKind::Int(-v),
            (UnaryOp::Neg, ExprKind::Float(v)) => ExprKind::Float(-v),
            _ => ExprKind::Unary {
                op,
                expr: Box::new(e),
            },
        };
        Ok(mk(kind, start, end))
    }

    fn parse_power(&mut self) -> Result<Expr, ExprError> {
        let start = self.peek().start;
        let base = self.parse_primary()?;
        if self.peek().tok != Tok::Pow {
            return Ok(base);
        }
        self.bump();
        // Right-associative; the exponent may carry a sign: 2 ** -1.
        let exp = self.nested(|p| p.parse_unary())?;
        Ok(mk(
            ExprKind::Binary {
                op: BinaryOp::Pow,
                lhs: Box::new(base),
                rhs: Box::new(exp),
            },
            start,
            self.prev_end(),
        ))
    }

    fn int_value(t: &Token) -> Result<i64, ExprError> {
        match t.tok {
            Tok::Int(v) => i64::try_from(v).map_err(|_| {
                ExprError::parse(
                    t.start,
                    "an integer in the signed 64-bit range",
                    t.tok.describe(),
                )
            }),
            _ => Err(ExprError::parse(t.start, "an integer", t.tok.describe())),
        }
    }

    fn parse_primary(&mut self) -> Result<Expr, ExprError> {
        match self.peek().tok {
            Tok::LParen => self.parse_paren(),
            Tok::LBracket => self.parse_array(),
            Tok::Kw(Kw::Exists) => self.parse_exists(),
            _ => self.parse_atom(),
        }
    }

    #[inline(never)]
    fn parse_paren(&mut self) -> Result<Expr, ExprError> {
        self.bump();
        let e = self.nested(|p| p.parse_or())?;
        self.expect(Tok::RParen, "')'")?;
        Ok(e)
    }

    #[inline(never)]
    fn parse_array(&mut self) -> Result<Expr, ExprError> {
        let start = self.bump().start;
        let items = self.nested(|p| p.parse_list(Tok::RBracket, "',' or ']'"))?;
        Ok(mk(ExprKind::Array(items), start, self.prev_end()))
    }

    #[inline(never)]
    fn parse_exists(&mut self) -> Result<Expr, ExprError> {
        let start = self.bump().start;
        let e = self.nested(|p| p.parse_primary())?;
        Ok(mk(ExprKind::Exists(Box::new(e)), start, self.prev_end()))
    }

    #[inline(never)]
    fn parse_atom(&mut self) -> Result<Expr, ExprError> {
        let t = self.peek().clone();
        let start = t.start;
        let kind = match t.tok {
            Tok::Int(_) => {
                self.bump();
                ExprKind::Int(Self::int_value(&t)?)
            }
            Tok::Float(v) => {
                self.bump();
                ExprKind::Float(v)
            }
            Tok::Str(s) => {
                self.bump();
                ExprKind::Str(s)
            }
            Tok::Kw(Kw::True) => {
                self.bump();
                ExprKind::Bool(true)
            }
            Tok::Kw(Kw::False) => {
                self.bump();
                ExprKind::Bool(false)
            }
            Tok::Ident(name) if *self.peek_at(1) == Tok::LParen => return self.parse_call(name),
            Tok::Ident(name) => {
                self.bump();
                let path = self.parse_path()?;
                ExprKind::Ident { name, path }
            }
            Tok::Meta => {
                self.bump();
                let path = self.parse_path()?;
                ExprKind::Ident {
                    name: "$meta".into(),
                    path,
                }
            }
            Tok::LBrace => {
                self.bump();
                let Tok::Ident(name) = self.peek().tok.clone() else {
                    return Err(self.unexpected("a placeholder name after '{'"));
                };
                self.bump();
                self.expect(Tok::RBrace, "'}'")?;
                ExprKind::Template(name)
            }
            Tok::Kw(Kw::Null) => {
                return Err(self
                    .unexpected("an expression (use 'is null' / 'is not null' to test for null)"))
            }
            _ => return Err(self.unexpected("an expression")),
        };
        Ok(mk(kind, start, self.prev_end()))
    }

    /// Comma-separated expressions up to `close` (consumed); a trailing comma is allowed.
    fn parse_list(&mut self, close: Tok, what: &str) -> Result<Vec<Expr>, ExprError> {
        let mut items = Vec::new();
        loop {
            if self.peek().tok == close {
                self.bump();
                return Ok(items);
            }
            items.push(self.parse_or()?);
            if self.peek().tok == Tok::Comma {
                self.bump();
            } else if self.peek().tok != close {
                return Err(self.unexpected(what));
            }
        }
    }

    fn parse_path(&mut self) -> Result<Vec<PathKey>, ExprError> {
        let mut path = Vec::new();
        while self.peek().tok == Tok::LBracket {
            self.bump();
            let t = self.peek().clone();
            let key = match t.tok {
                Tok::Str(s) => PathKey::Key(s),
                Tok::Int(_) => PathKey::Index(Self::int_value(&t)?),
                _ => return Err(self.unexpected("a string key or an integer index inside '[...]'")),
            };
            self.bump();
            path.push(key);
            self.expect(Tok::RBracket, "']'")?;
        }
        Ok(path)
    }

    fn parse_call(&mut self, name: String) -> Result<Expr, ExprError> {
        let t = self.bump();
        let Some(func) = Func::from_name(&name) else {
            let known: Vec<_> = Func::ALL.iter().map(|f| f.name()).collect();
            return Err(ExprError::parse(
                t.start,
                format!("a known function ({})", known.join(", ")),
                format!("unknown function '{name}'"),
            ));
        };
        self.bump(); // '('
        let args = self.nested(|p| p.parse_list(Tok::RParen, "',' or ')'"))?;
        if args.len() != func.arity() {
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            return Err(ExprError::parse(
                t.start,
                format!(
                    "{} argument{} for {}()",
                    func.arity(),
                    plural(func.arity()),
                    func.name()
                ),
                format!("{} argument{}", args.len(), plural(args.len())),
            ));
        }
        Ok(mk(ExprKind::Call { func, args }, t.start, self.prev_end()))
    }
}
