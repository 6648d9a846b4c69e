//! Hand-written lexer: source text to a vector of tokens with byte spans.

use crate::error::ExprError;

/// Keywords are matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    And,
    Or,
    Not,
    In,
    Like,
    Is,
    Null,
    Exists,
    True,
    False,
}

impl Kw {
    fn from_ident(s: &str) -> Option<Kw> {
        const TABLE: [(&str, Kw); 10] = [
            ("and", Kw::And),
            ("or", Kw::Or),
            ("not", Kw::Not),
            ("in", Kw::In),
            ("like", Kw::Like),
            ("is", Kw::Is),
            ("null", Kw::Null),
            ("exists", Kw::Exists),
            ("true", Kw::True),
            ("false", Kw::False),
        ];
        TABLE
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|&(_, kw)| kw)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Integer literal; may exceed `i64::MAX` (only `-9223372036854775808` is then valid).
    Int(u64),
    Float(f64),
    Str(String),
    Ident(String),
    /// `$meta`
    Meta,
    Kw(Kw),
    EqEq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Pow,
    AndAnd,
    OrOr,
    Bang,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Eof,
}

impl Tok {
    /// How the token is named in "found ..." parts of error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Int(v) => format!("integer {v}"),
            Tok::Float(v) => format!("number {v:?}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Ident(s) => format!("identifier '{s}'"),
            Tok::Meta => "'$meta'".into(),
            Tok::Kw(kw) => format!("keyword '{}'", format!("{kw:?}").to_ascii_lowercase()),
            Tok::Eof => "end of input".into(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Pow => "**",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Bang => "!",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            _ => "?",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let mut lx = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_ws();
        let start = lx.pos;
        let Some(&c) = lx.bytes.get(start) else {
            out.push(Token {
                tok: Tok::Eof,
                start,
                end: start,
            });
            return Ok(out);
        };
        let tok = lx.next_token(c)?;
        out.push(Token {
            tok,
            start,
            end: lx.pos,
        });
    }
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Lexer<'_> {
    fn peek_at(&self, off: usize) -> Option<u8> {
        self.bytes.get(self.pos + off).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek_at(0) {
            if c.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn char_at(&self, pos: usize) -> Option<char> {
        self.src.get(pos..).and_then(|s| s.chars().next())
    }

    fn found_at(&self, pos: usize) -> String {
        match self.char_at(pos) {
            Some(c) => format!("'{c}'"),
            None => "end of input".into(),
        }
    }

    fn next_token(&mut self, c: u8) -> Result<Tok, ExprError> {
        let two = |s: &Self, a: u8| s.peek_at(1) == Some(a);
        let (tok, len) = match c {
            b'=' if two(self, b'=') => (Tok::EqEq, 2),
            b'=' => {
                return Err(ExprError::parse(
                    self.pos,
                    "'==' (a single '=' is not an operator)",
                    "'='",
                ))
            }
            b'!' if two(self, b'=') => (Tok::Ne, 2),
            b'!' => (Tok::Bang, 1),
            b'<' if two(self, b'=') => (Tok::Le, 2),
            b'<' => (Tok::Lt, 1),
            b'>' if two(self, b'=') => (Tok::Ge, 2),
            b'>' => (Tok::Gt, 1),
            b'+' => (Tok::Plus, 1),
            b'-' => (Tok::Minus, 1),
            b'*' if two(self, b'*') => (Tok::Pow, 2),
            b'*' => (Tok::Star, 1),
            b'/' => (Tok::Slash, 1),
            b'%' => (Tok::Percent, 1),
            b'&' if two(self, b'&') => (Tok::AndAnd, 2),
            b'|' if two(self, b'|') => (Tok::OrOr, 2),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b',' => (Tok::Comma, 1),
            b'"' | b'\'' => return self.string(c),
            b'0'..=b'9' => return self.number(),
            b'.' if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) => return self.number(),
            b'$' => return self.meta(),
            c if is_ident_start(c) => {
                let start = self.pos;
                while self.peek_at(0).is_some_and(is_ident_char) {
                    self.pos += 1;
                }
                let word = &self.src[start..self.pos];
                return Ok(match Kw::from_ident(word) {
                    Some(kw) => Tok::Kw(kw),
                    None => Tok::Ident(word.to_string()),
                });
            }
            _ => {
                return Err(ExprError::parse(
                    self.pos,
                    "an expression or operator",
                    self.found_at(self.pos),
                ))
            }
        };
        self.pos += len;
        Ok(tok)
    }

    fn meta(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        self.pos += 1;
        while self.peek_at(0).is_some_and(is_ident_char) {
            self.pos += 1;
        }
        let word = &self.src[start..self.pos];
        if word == "$meta" {
            Ok(Tok::Meta)
        } else {
            Err(ExprError::parse(start, "'$meta'", format!("'{word}'")))
        }
    }

    fn number(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let b = self.bytes;
        // Radix-prefixed integers.
        if b[start] == b'0' {
            let radix = match self.peek_at(1) {
                Some(b'x' | b'X') => Some(16),
                Some(b'o' | b'O') => Some(8),
                Some(b'b' | b'B') => Some(2),
                _ => None,
            };
            if let Some(radix) = radix {
                self.pos += 2;
                let digits_start = self.pos;
                while self.peek_at(0).is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.pos += 1;
                }
                let digits = &self.src[digits_start..self.pos];
                return self.parse_int(start, digits, radix);
            }
        }
        let mut is_float = false;
        while self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek_at(0) == Some(b'.') {
            is_float = true;
            self.pos += 1;
            while self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek_at(0), Some(b'e' | b'E')) {
            is_float = true;
            self.pos += 1;
            if matches!(self.peek_at(0), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                return Err(ExprError::parse(
                    self.pos,
                    "digits of the exponent",
                    self.found_at(self.pos),
                ));
            }
            while self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if self.peek_at(0).is_some_and(is_ident_char) {
            return Err(ExprError::parse(
                self.pos,
                "an operator after the number",
                self.found_at(self.pos),
            ));
        }
        let text = &self.src[start..self.pos];
        if is_float {
            let v: f64 = text
                .parse()
                .map_err(|_| ExprError::parse(start, "a number", format!("'{text}'")))?;
            if !v.is_finite() {
                return Err(ExprError::parse(
                    start,
                    "a finite floating-point number",
                    format!("'{text}'"),
                ));
            }
            Ok(Tok::Float(v))
        } else if text.len() > 1 && text.starts_with('0') {
            // C-style octal: 0755
            self.parse_int(start, &text[1..], 8)
        } else {
            self.parse_int(start, text, 10)
        }
    }

    fn parse_int(&self, start: usize, digits: &str, radix: u32) -> Result<Tok, ExprError> {
        let text = &self.src[start..self.pos];
        let name = match radix {
            16 => "hexadecimal",
            8 => "octal",
            2 => "binary",
            _ => "decimal",
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(ExprError::parse(
                start,
                format!("{name} digits"),
                format!("'{text}'"),
            ));
        }
        u64::from_str_radix(digits, radix)
            .map(Tok::Int)
            .map_err(|_| {
                ExprError::parse(start, "an integer in the 64-bit range", format!("'{text}'"))
            })
    }

    fn string(&mut self, quote: u8) -> Result<Tok, ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.char_at(self.pos) else {
                return Err(ExprError::parse(
                    self.pos,
                    format!(
                        "closing {} (string opened at position {start})",
                        quote as char
                    ),
                    "end of input",
                ));
            };
            if c == quote as char {
                self.pos += 1;
                return Ok(Tok::Str(out));
            }
            if c != '\\' {
                out.push(c);
                self.pos += c.len_utf8();
                continue;
            }
            let esc_pos = self.pos;
            self.pos += 1;
            let Some(e) = self.char_at(self.pos) else {
                return Err(ExprError::parse(
                    self.pos,
                    "an escape character",
                    "end of input",
                ));
            };
            self.pos += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                'a' => out.push('\u{7}'),
                '0' => out.push('\0'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                '/' => out.push('/'),
                // Kept verbatim so that LIKE patterns can escape their wildcards.
                '%' | '_' => {
                    out.push('\\');
                    out.push(e);
                }
                'x' => {
                    let v = self.hex_digits(2, esc_pos)?;
                    out.push(char::from(v as u8));
                }
                'u' => {
                    let hi = self.hex_digits(4, esc_pos)?;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        // surrogate pair: \uD83D\uDE00
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(ExprError::parse(
                                self.pos,
                                "a low surrogate '\\uDC00'..'\\uDFFF' after a high surrogate",
                                self.found_at(self.pos),
                            ));
                        }
                        self.pos += 2;
                        let lo = self.hex_digits(4, esc_pos)?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err(ExprError::parse(
                                esc_pos,
                                "a valid surrogate pair",
                                format!("'{}'", &self.src[esc_pos..self.pos]),
                            ));
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    out.push(self.code_point(code, esc_pos)?);
                }
                'U' => {
                    let code = self.hex_digits(8, esc_pos)?;
                    out.push(self.code_point(code, esc_pos)?);
                }
                other => {
                    return Err(ExprError::parse(
                        esc_pos,
                        "a valid escape sequence (\\n \\t \\r \\\\ \\\" \\' \\uXXXX \\% \\_ ...)",
                        format!("'\\{other}'"),
                    ))
                }
            }
        }
    }

    fn code_point(&self, code: u32, esc_pos: usize) -> Result<char, ExprError> {
        char::from_u32(code).ok_or_else(|| {
            ExprError::parse(
                esc_pos,
                "a valid Unicode code point",
                format!("'{}'", &self.src[esc_pos..self.pos]),
            )
        })
    }

    fn hex_digits(&mut self, n: usize, esc_pos: usize) -> Result<u32, ExprError> {
        let mut v = 0u32;
        for _ in 0..n {
            match self.peek_at(0).and_then(|c| (c as char).to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.pos += 1;
                }
                None => {
                    return Err(ExprError::parse(
                        self.pos,
                        format!("{n} hex digits in the escape starting at position {esc_pos}"),
                        self.found_at(self.pos),
                    ))
                }
            }
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(toks("0x1F"), vec![Tok::Int(31), Tok::Eof]);
        assert_eq!(
            toks("0o17 017 0b101 0"),
            vec![
                Tok::Int(15),
                Tok::Int(15),
                Tok::Int(5),
                Tok::Int(0),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("1.5 1e-3 .5 2. 3E2"),
            vec![
                Tok::Float(1.5),
                Tok::Float(1e-3),
                Tok::Float(0.5),
                Tok::Float(2.0),
                Tok::Float(300.0),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("18446744073709551615"),
            vec![Tok::Int(u64::MAX), Tok::Eof]
        );
        assert!(tokenize("18446744073709551616").is_err());
        assert!(tokenize("08").is_err());
        assert!(tokenize("0x").is_err());
        assert!(tokenize("0b102").is_err());
        assert!(tokenize("12abc").is_err());
        assert!(tokenize("1e").is_err());
        assert!(tokenize("1e999").is_err());
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#""a\n\t\\\"b""#),
            vec![Tok::Str("a\n\t\\\"b".into()), Tok::Eof]
        );
        assert_eq!(toks(r"'it\'s'"), vec![Tok::Str("it's".into()), Tok::Eof]);
        assert_eq!(
            toks(r#""\u00e9\uD83D\uDE00\x41""#),
            vec![Tok::Str("é😀A".into()), Tok::Eof]
        );
        assert_eq!(toks(r#""50\%""#), vec![Tok::Str("50\\%".into()), Tok::Eof]);
        assert_eq!(toks("'héllo'"), vec![Tok::Str("héllo".into()), Tok::Eof]);
        assert!(tokenize(r#""\q""#).is_err());
        assert!(tokenize(r#""\uD83D""#).is_err());
        assert!(tokenize(r#""\u12""#).is_err());
        let err = tokenize("\"abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected closing \" (string opened at position 0) at position 4, found end of input"
        );
    }

    #[test]
    fn operators_and_keywords() {
        assert_eq!(
            toks("a==b!=c<=d>=e<f>g**h*i&&j||!k AND Or nOt $meta"),
            vec![
                Tok::Ident("a".into()),
                Tok::EqEq,
                Tok::Ident("b".into()),
                Tok::Ne,
                Tok::Ident("c".into()),
                Tok::Le,
                Tok::Ident("d".into()),
                Tok::Ge,
                Tok::Ident("e".into()),
                Tok::Lt,
                Tok::Ident("f".into()),
                Tok::Gt,
                Tok::Ident("g".into()),
                Tok::Pow,
                Tok::Ident("h".into()),
                Tok::Star,
                Tok::Ident("i".into()),
                Tok::AndAnd,
                Tok::Ident("j".into()),
                Tok::OrOr,
                Tok::Bang,
                Tok::Ident("k".into()),
                Tok::Kw(Kw::And),
                Tok::Kw(Kw::Or),
                Tok::Kw(Kw::Not),
                Tok::Meta,
                Tok::Eof
            ]
        );
        let err = tokenize("a = 1").unwrap_err();
        assert!(matches!(err, ExprError::Parse { pos: 2, .. }), "{err:?}");
        assert!(tokenize("$metax").is_err());
        assert!(tokenize("a & b").is_err());
        assert!(tokenize("é").is_err());
    }
}
