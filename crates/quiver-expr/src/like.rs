//! Precompiled LIKE patterns: `%` matches any run of characters, `_` exactly
//! one character, and a backslash makes the next character literal.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Lit(char),
    One,
    Many,
}

/// A LIKE pattern compiled once; matching never allocates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LikeMatcher {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
    /// `%`: every string.
    Any,
    General(Box<[Piece]>),
}

impl LikeMatcher {
    pub(crate) fn new(pattern: &str) -> LikeMatcher {
        let mut pieces = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '\\' => Piece::Lit(chars.next().unwrap_or('\\')),
                '%' => Piece::Many,
                '_' => Piece::One,
                c => Piece::Lit(c),
            };
            if piece == Piece::Many && pieces.last() == Some(&Piece::Many) {
                continue;
            }
            pieces.push(piece);
        }
        let lits = |p: &[Piece]| -> Option<Box<str>> {
            p.iter()
                .map(|x| match x {
                    Piece::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect::<Option<String>>()
                .map(String::into_boxed_str)
        };
        let n = pieces.len();
        let starts = pieces.first() == Some(&Piece::Many);
        let ends = n > 0 && pieces.last() == Some(&Piece::Many);
        if let Some(s) = lits(&pieces) {
            return LikeMatcher::Exact(s);
        }
        if n == 1 && starts {
            return LikeMatcher::Any;
        }
        if starts && ends {
            if let Some(s) = lits(&pieces[1..n - 1]) {
                return LikeMatcher::Contains(s);
            }
        }
        if ends {
            if let Some(s) = lits(&pieces[..n - 1]) {
                return LikeMatcher::Prefix(s);
            }
        }
        if starts {
            if let Some(s) = lits(&pieces[1..]) {
                return LikeMatcher::Suffix(s);
            }
        }
        LikeMatcher::General(pieces.into_boxed_slice())
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            LikeMatcher::Exact(p) => s == &**p,
            LikeMatcher::Prefix(p) => s.starts_with(&**p),
            LikeMatcher::Suffix(p) => s.ends_with(&**p),
            LikeMatcher::Contains(p) => s.contains(&**p),
            LikeMatcher::Any => true,
            LikeMatcher::General(p) => glob(p, s),
        }
    }
}

fn char_len_at(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(1, char::len_utf8)
}

/// Iterative wildcard matching with single-star backtracking: O(|p|*|s|)
/// worst case, no allocation.
fn glob(p: &[Piece], s: &str) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    // (pattern index after the last '%', text index that '%' currently extends to)
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(piece) = p.get(pi) {
            match piece {
                Piece::Many => {
                    star = Some((pi + 1, si));
                    pi += 1;
                    continue;
                }
                Piece::One if si < s.len() => {
                    si += char_len_at(s, si);
                    pi += 1;
                    continue;
                }
                Piece::Lit(c) if s[si..].starts_with(*c) => {
                    si += c.len_utf8();
                    pi += 1;
                    continue;
                }
                _ => {}
            }
        } else if si == s.len() {
            return true;
        }
        match star {
            Some((sp, ss)) if ss < s.len() => {
                let next = ss + char_len_at(s, ss);
                star = Some((sp, next));
                pi = sp;
                si = next;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        LikeMatcher::new(p).matches(s)
    }

    #[test]
    fn classification() {
        assert_eq!(LikeMatcher::new("abc"), LikeMatcher::Exact("abc".into()));
        assert_eq!(LikeMatcher::new("ab%"), LikeMatcher::Prefix("ab".into()));
        assert_eq!(LikeMatcher::new("%ab"), LikeMatcher::Suffix("ab".into()));
        assert_eq!(LikeMatcher::new("%ab%"), LikeMatcher::Contains("ab".into()));
        assert_eq!(LikeMatcher::new("%%"), LikeMatcher::Any);
        assert_eq!(LikeMatcher::new("50\\%"), LikeMatcher::Exact("50%".into()));
        assert!(matches!(LikeMatcher::new("a_c"), LikeMatcher::General(_)));
    }

    #[test]
    fn matching() {
        assert!(m("pre%", "prefix"));
        assert!(!m("pre%", "xprefix"));
        assert!(m("%fix", "prefix"));
        assert!(m("%ef%", "prefix"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("%", ""));
        assert!(m("a_c", "abc"));
        assert!(m("a_c", "aéc"));
        assert!(!m("a_c", "ac"));
        assert!(m("a%b%c", "aXXbYYc"));
        assert!(m("a%b%c", "abbc"));
        assert!(!m("a%b%c", "acb"));
        assert!(m("%a_", "bab"));
        assert!(m("_%_", "ab"));
        assert!(!m("_%_", "a"));
        assert!(m("100\\%", "100%"));
        assert!(!m("100\\%", "1000"));
        assert!(m("a\\_b", "a_b"));
        assert!(!m("a\\_b", "axb"));
        assert!(m("%\\%%", "5% off"));
        assert!(m("日_語%", "日本語です"));
    }
}
