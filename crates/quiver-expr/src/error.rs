//! Error type shared by the lexer, parser and compiler.

/// Everything that can go wrong turning filter text into a [`crate::Filter`].
///
/// The `Display` output is meant to be shown to a user verbatim (Milvus
/// returns it to clients as `failed to create query plan: <message>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// The text is not a syntactically valid expression. `pos` is the byte
    /// offset (0-based) into the source where the problem was detected.
    #[error("expected {expected} at position {pos}, found {found}")]
    Parse {
        pos: usize,
        expected: String,
        found: String,
    },
    /// A name that is neither a schema field nor resolvable through the
    /// dynamic `$meta` field.
    #[error("unknown field '{0}': no such field in the collection schema and the collection has no dynamic field")]
    UnknownField(String),
    /// An operand has a type the operator cannot work with.
    #[error("type mismatch for '{field}': expected {expected}, found {found}")]
    TypeMismatch {
        field: String,
        expected: String,
        found: String,
    },
    /// A `{name}` placeholder without a value in the request's parameters.
    #[error("template placeholder '{{{0}}}' has no bound value")]
    UnboundTemplate(String),
    /// Anything else (unsupported construct, bad arity, non-boolean filter ...).
    #[error("{0}")]
    Invalid(String),
}

impl ExprError {
    pub(crate) fn parse(pos: usize, expected: impl Into<String>, found: impl Into<String>) -> Self {
        ExprError::Parse {
            pos,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// For a [`ExprError::Parse`] error, the 1-based `(line, column)` of its
    /// position in `src` (columns count characters, not bytes).
    pub fn line_col(&self, src: &str) -> Option<(usize, usize)> {
        let ExprError::Parse { pos, .. } = self else {
            return None;
        };
        let mut pos = (*pos).min(src.len());
        while !src.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &src[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Some((line, col))
    }
}
