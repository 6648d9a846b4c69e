//! Full-text analysis and the BM25 function: text in a VARCHAR field becomes a sparse vector of
//! term frequencies in the function's output field, and query text becomes a sparse query.
//!
//! An analyzer is a tokenizer followed by token filters, configured as Milvus configures them
//! (the field's `analyzer_params` type param, a JSON object):
//!
//! | params                                   | pipeline                                              |
//! |------------------------------------------|-------------------------------------------------------|
//! | absent, `{"type": "standard"}`           | standard tokenizer, lowercase                         |
//! | `{"type": "english"}`                    | standard tokenizer, lowercase, English stemmer, English stop words |
//! | `{"type": ..., "stop_words": [..]}`      | the above plus a stop filter with those words          |
//! | `{"tokenizer": T, "filter": [F, ..]}`    | custom: T is `standard` or `whitespace`; F is `lowercase`, `asciifolding`, `alphanumonly`, `{"type": "stop", "stop_words": [..]}`, `{"type": "stemmer", "language": ..}`, `{"type": "length", "max": n}` |
//!
//! The standard tokenizer splits on Unicode word boundaries (UAX #29) and keeps the segments
//! that contain a letter or digit. `_english_` in a stop-word list stands for the English stop
//! words (Lucene's list). Stemmers are the Snowball stemmers of `rust-stemmers`.
//!
//! Term ids: a token's id is the 32-bit MurmurHash3 (seed 0) of its UTF-8 bytes, with `u32::MAX`
//! (not a valid sparse index) mapped to `u32::MAX - 1`. Two distinct tokens can share an id; with
//! 32 bits that is rare (about one pair in a 100k-term vocabulary) and only merges their counts.
//!
//! A document's BM25 row holds, per distinct term id, the term's count in the text; a row's
//! length (`dl` in the formula) is the sum of its values. Scores are computed at search time
//! (`sparse.rs`) from the live rows' statistics, so nothing stored depends on the collection.

use std::collections::{BTreeMap, HashSet};

use quiver_core::schema::FunctionSchema;
use quiver_core::{CollectionSchema, DataType, Error, FieldSchema, Result};
use rust_stemmers::{Algorithm, Stemmer};
use serde_json::Value as Json;
use unicode_segmentation::UnicodeSegmentation;

/// Milvus `FunctionType::BM25`.
pub const BM25_FUNCTION: i32 = 1;

/// Lucene's English stop words (what `_english_` expands to).
const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tokenizer {
    Standard,
    Whitespace,
}

enum TokenFilter {
    Lowercase,
    AsciiFolding,
    AlphaNumOnly,
    Length(usize),
    Stop(HashSet<String>),
    Stemmer(Stemmer),
}

/// One token of an analysed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// Byte offsets of the source text the token came from.
    pub start: usize,
    pub end: usize,
    pub position: usize,
}

/// A configured analyzer: text to tokens.
pub struct Analyzer {
    tokenizer: Tokenizer,
    filters: Vec<TokenFilter>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Analyzer({:?}, {} filters)",
            self.tokenizer,
            self.filters.len()
        )
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(format!("invalid analyzer params: {}", msg.into()))
}

fn stop_filter(words: &Json) -> Result<TokenFilter> {
    let list = words
        .as_array()
        .ok_or_else(|| bad("stop_words must be a list of strings"))?;
    let mut set = HashSet::new();
    for w in list {
        let w = w
            .as_str()
            .ok_or_else(|| bad("stop_words must be a list of strings"))?;
        if w == "_english_" {
            set.extend(ENGLISH_STOP_WORDS.iter().map(|s| s.to_string()));
        } else {
            set.insert(w.to_string());
        }
    }
    Ok(TokenFilter::Stop(set))
}

fn stemmer(language: &str) -> Result<TokenFilter> {
    let alg = match language.to_ascii_lowercase().as_str() {
        "arabic" => Algorithm::Arabic,
        "danish" => Algorithm::Danish,
        "dutch" => Algorithm::Dutch,
        "english" => Algorithm::English,
        "finnish" => Algorithm::Finnish,
        "french" => Algorithm::French,
        "german" => Algorithm::German,
        "greek" => Algorithm::Greek,
        "hungarian" => Algorithm::Hungarian,
        "italian" => Algorithm::Italian,
        "norwegian" => Algorithm::Norwegian,
        "portuguese" => Algorithm::Portuguese,
        "romanian" => Algorithm::Romanian,
        "russian" => Algorithm::Russian,
        "spanish" => Algorithm::Spanish,
        "swedish" => Algorithm::Swedish,
        "tamil" => Algorithm::Tamil,
        "turkish" => Algorithm::Turkish,
        other => return Err(bad(format!("unknown stemmer language {other:?}"))),
    };
    Ok(TokenFilter::Stemmer(Stemmer::create(alg)))
}

fn filter_of(spec: &Json) -> Result<TokenFilter> {
    let (kind, obj) = match spec {
        Json::String(s) => (s.as_str(), None),
        Json::Object(m) => (
            m.get("type")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("a filter object needs a \"type\""))?,
            Some(m),
        ),
        other => return Err(bad(format!("a filter is a name or an object, got {other}"))),
    };
    let get = |k: &str| obj.and_then(|m| m.get(k));
    Ok(match kind {
        "lowercase" => TokenFilter::Lowercase,
        "asciifolding" => TokenFilter::AsciiFolding,
        "alphanumonly" => TokenFilter::AlphaNumOnly,
        "length" => {
            let max = get("max")
                .and_then(Json::as_u64)
                .ok_or_else(|| bad("the length filter needs an integer \"max\""))?;
            TokenFilter::Length(max as usize)
        }
        "stop" => stop_filter(
            get("stop_words").ok_or_else(|| bad("the stop filter needs \"stop_words\""))?,
        )?,
        "stemmer" => stemmer(
            get("language")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("the stemmer filter needs a \"language\""))?,
        )?,
        other => return Err(bad(format!("unknown filter {other:?}"))),
    })
}

impl Analyzer {
    /// The standard analyzer (what a field without `analyzer_params` uses).
    pub fn standard() -> Analyzer {
        Analyzer {
            tokenizer: Tokenizer::Standard,
            filters: vec![TokenFilter::Lowercase],
        }
    }

    /// Parse Milvus analyzer params (a JSON object; see the module docs).
    pub fn from_params(params: &Json) -> Result<Analyzer> {
        let m = params
            .as_object()
            .ok_or_else(|| bad(format!("expected a JSON object, got {params}")))?;
        if let Some(t) = m.get("type") {
            let t = t.as_str().ok_or_else(|| bad("\"type\" must be a string"))?;
            for k in m.keys() {
                if k != "type" && k != "stop_words" {
                    return Err(bad(format!("unknown key {k:?} for a built-in analyzer")));
                }
            }
            let mut a = match t {
                "standard" => Analyzer::standard(),
                "english" => Analyzer {
                    tokenizer: Tokenizer::Standard,
                    filters: vec![
                        TokenFilter::Lowercase,
                        stemmer("english")?,
                        stop_filter(&Json::from(vec!["_english_"]))?,
                    ],
                },
                "chinese" => {
                    return Err(Error::Unsupported(
                        "the chinese analyzer (jieba) is not available; use standard, english or a custom analyzer".into(),
                    ))
                }
                other => return Err(bad(format!("unknown analyzer type {other:?}"))),
            };
            if let Some(words) = m.get("stop_words") {
                a.filters.push(stop_filter(words)?);
            }
            return Ok(a);
        }
        let tokenizer = match m.get("tokenizer") {
            None => Tokenizer::Standard,
            Some(t) => {
                let name = match t {
                    Json::String(s) => s.as_str(),
                    Json::Object(o) => o.get("type").and_then(Json::as_str).unwrap_or(""),
                    _ => "",
                };
                match name {
                    "standard" => Tokenizer::Standard,
                    "whitespace" => Tokenizer::Whitespace,
                    "jieba" | "lindera" | "icu" => {
                        return Err(Error::Unsupported(format!(
                            "the {name} tokenizer is not available; use standard or whitespace"
                        )))
                    }
                    _ => return Err(bad(format!("unknown tokenizer {t}"))),
                }
            }
        };
        let mut filters = Vec::new();
        match m.get("filter") {
            None => {}
            Some(Json::Array(list)) => {
                for f in list {
                    filters.push(filter_of(f)?);
                }
            }
            Some(other) => return Err(bad(format!("\"filter\" must be a list, got {other}"))),
        }
        for k in m.keys() {
            if k != "tokenizer" && k != "filter" {
                return Err(bad(format!("unknown key {k:?}")));
            }
        }
        Ok(Analyzer { tokenizer, filters })
    }

    /// The analyzer of a VARCHAR field (its `analyzer_params`, or the standard analyzer).
    pub fn for_field(field: &FieldSchema) -> Result<Analyzer> {
        match field.type_params.get("analyzer_params") {
            None => Ok(Analyzer::standard()),
            Some(text) if text.trim().is_empty() => Ok(Analyzer::standard()),
            Some(text) => {
                let j: Json = serde_json::from_str(text).map_err(|e| {
                    bad(format!(
                        "field {}: analyzer_params is not JSON: {e}",
                        field.name
                    ))
                })?;
                Analyzer::from_params(&j)
            }
        }
    }

    /// The tokens of `text`, in order (duplicates kept).
    pub fn tokens(&self, text: &str) -> Vec<String> {
        self.analyze(text).into_iter().map(|t| t.text).collect()
    }

    /// The tokens of `text` with their byte offsets and positions (the token's index among the
    /// tokenizer's tokens, so a removed stop word leaves a gap, as in Lucene).
    pub fn analyze(&self, text: &str) -> Vec<Token> {
        let raw: Vec<(usize, &str)> = match self.tokenizer {
            Tokenizer::Standard => text.unicode_word_indices().collect(),
            Tokenizer::Whitespace => text
                .split_whitespace()
                .map(|w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
                .collect(),
        };
        let mut out = Vec::with_capacity(raw.len());
        'tokens: for (position, (start, t)) in raw.into_iter().enumerate() {
            let mut tok = t.to_string();
            for f in &self.filters {
                match f {
                    TokenFilter::Lowercase => tok = tok.to_lowercase(),
                    TokenFilter::AsciiFolding => tok = fold_ascii(&tok),
                    TokenFilter::AlphaNumOnly => {
                        if !tok.chars().all(|c| c.is_ascii_alphanumeric()) {
                            continue 'tokens;
                        }
                    }
                    TokenFilter::Length(max) => {
                        if tok.chars().count() > *max {
                            continue 'tokens;
                        }
                    }
                    TokenFilter::Stop(set) => {
                        if set.contains(&tok) {
                            continue 'tokens;
                        }
                    }
                    TokenFilter::Stemmer(s) => tok = s.stem(&tok).into_owned(),
                }
            }
            if !tok.is_empty() {
                out.push(Token {
                    text: tok,
                    start,
                    end: start + t.len(),
                    position,
                });
            }
        }
        out
    }

    /// Term counts of `text` as a sparse row (indices sorted, values = counts).
    pub fn term_frequencies(&self, text: &str) -> (Vec<u32>, Vec<f32>) {
        let mut counts: BTreeMap<u32, f32> = BTreeMap::new();
        for t in self.tokens(text) {
            *counts.entry(term_id(&t)).or_default() += 1.0;
        }
        counts.into_iter().unzip()
    }
}

/// Latin letters with diacritics to their ASCII base letters (the common Latin-1 and Latin
/// Extended-A range); other characters unchanged.
fn fold_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let folded = match c {
            'à'..='å' => "a",
            'À'..='Å' => "A",
            'æ' => "ae",
            'Æ' => "AE",
            'ç' => "c",
            'Ç' => "C",
            'è'..='ë' => "e",
            'È'..='Ë' => "E",
            'ì'..='ï' => "i",
            'Ì'..='Ï' => "I",
            'ñ' => "n",
            'Ñ' => "N",
            'ò'..='ö' | 'ø' => "o",
            'Ò'..='Ö' | 'Ø' => "O",
            'ù'..='ü' => "u",
            'Ù'..='Ü' => "U",
            'ý' | 'ÿ' => "y",
            'Ý' => "Y",
            'ß' => "ss",
            'œ' => "oe",
            'Œ' => "OE",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(folded);
    }
    out
}

/// 32-bit MurmurHash3 (x86 variant, seed 0) of a token; never `u32::MAX`.
pub fn term_id(token: &str) -> u32 {
    let h = murmur3_32(token.as_bytes(), 0);
    if h == u32::MAX {
        u32::MAX - 1
    } else {
        h
    }
}

fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k |= (b as u32) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// A BM25 function of a schema, resolved to column positions.
#[derive(Debug)]
pub struct Bm25Function {
    pub name: String,
    pub input: usize,
    pub output: usize,
    pub analyzer: Analyzer,
}

fn is_true(field: &FieldSchema, key: &str) -> bool {
    field
        .type_params
        .get(key)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Check one BM25 function against the schema: one VARCHAR input with `enable_analyzer`, one
/// SPARSE_FLOAT_VECTOR output that nothing else produces, valid analyzer params.
pub fn bm25_function(schema: &CollectionSchema, f: &FunctionSchema) -> Result<Bm25Function> {
    let bad = |m: String| Error::InvalidSchema(format!("function {}: {m}", f.name));
    let (input, output) = match (
        f.input_field_names.as_slice(),
        f.output_field_names.as_slice(),
    ) {
        ([i], [o]) => (i, o),
        _ => {
            return Err(bad(
                "a BM25 function has exactly one input and one output field".into(),
            ))
        }
    };
    let idx = |n: &str| {
        schema
            .field_index(n)
            .ok_or_else(|| bad(format!("no field named {n}")))
    };
    let (ii, oi) = (idx(input)?, idx(output)?);
    let inf = &schema.fields[ii];
    if inf.data_type != DataType::VarChar {
        return Err(bad(format!("the input field {input} must be VARCHAR")));
    }
    if !is_true(inf, "enable_analyzer") {
        return Err(bad(format!(
            "the input field {input} needs enable_analyzer=True"
        )));
    }
    let of = &schema.fields[oi];
    if of.data_type != DataType::SparseFloatVector {
        return Err(bad(format!(
            "the output field {output} must be SPARSE_FLOAT_VECTOR"
        )));
    }
    let analyzer = Analyzer::for_field(inf).map_err(|e| match e {
        Error::InvalidArgument(m) => bad(m),
        e => e,
    })?;
    Ok(Bm25Function {
        name: f.name.clone(),
        input: ii,
        output: oi,
        analyzer,
    })
}

/// Every BM25 function of `schema`, with its analyzer (what each write runs).
pub fn bm25_functions(schema: &CollectionSchema) -> Result<Vec<Bm25Function>> {
    schema
        .functions
        .iter()
        .filter(|f| f.function_type == BM25_FUNCTION)
        .map(|f| bm25_function(schema, f))
        .collect()
}

/// The create-time checks: every BM25 function is valid, no field is the output of two, and
/// the analyzer params of every VARCHAR field parse (BM25 input or not).
pub fn check_schema(schema: &CollectionSchema) -> Result<()> {
    let mut outputs = HashSet::new();
    for b in bm25_functions(schema)? {
        if !outputs.insert(b.output) {
            return Err(Error::InvalidSchema(format!(
                "field {} is the output of more than one function",
                schema.fields[b.output].name
            )));
        }
    }
    for fs in &schema.fields {
        if fs.data_type == DataType::VarChar && fs.type_params.contains_key("analyzer_params") {
            Analyzer::for_field(fs).map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidSchema(format!("field {}: {m}", fs.name))
                }
                e => e,
            })?;
        }
    }
    Ok(())
}

/// The BM25 function whose output is column `field`, if any (only its analyzer is built).
pub fn bm25_of_output(schema: &CollectionSchema, field: usize) -> Result<Option<Bm25Function>> {
    let name = &schema.fields[field].name;
    schema
        .functions
        .iter()
        .find(|f| f.function_type == BM25_FUNCTION && f.output_field_names.first() == Some(name))
        .map(|f| bm25_function(schema, f))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn standard_and_english_analyzers() {
        let s = Analyzer::standard();
        assert_eq!(
            s.tokens("The quick-brown FOX, don't jump! 3.14 Café"),
            vec!["the", "quick", "brown", "fox", "don't", "jump", "3.14", "café"]
        );
        let e = Analyzer::from_params(&json!({"type": "english"})).unwrap();
        assert_eq!(
            e.tokens("The runners were running to the hills"),
            vec!["runner", "were", "run", "hill"]
        );
        let e2 =
            Analyzer::from_params(&json!({"type": "standard", "stop_words": ["fox"]})).unwrap();
        assert_eq!(e2.tokens("the Fox"), vec!["the"]);
        let custom = Analyzer::from_params(&json!({
            "tokenizer": "whitespace",
            "filter": ["lowercase", "asciifolding", {"type": "length", "max": 5}, {"type": "stop", "stop_words": ["_english_"]}]
        }))
        .unwrap();
        assert_eq!(
            custom.tokens("Über the Crème brûlée,"),
            vec!["uber", "creme"]
        );
        for bad in [
            json!({"type": "klingon"}),
            json!({"tokenizer": "nope"}),
            json!({"tokenizer": "standard", "filter": ["nope"]}),
            json!({"tokenizer": "standard", "filter": [{"type": "stemmer", "language": "elvish"}]}),
            json!({"type": "english", "extra": 1}),
            json!("standard"),
        ] {
            assert!(Analyzer::from_params(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn term_frequencies_and_ids() {
        let (ix, vs) = Analyzer::standard().term_frequencies("b a b c b");
        assert_eq!(ix.len(), 3);
        assert!(ix.windows(2).all(|w| w[0] < w[1]));
        let b = ix.iter().position(|&i| i == term_id("b")).unwrap();
        assert_eq!(vs[b], 3.0);
        assert_eq!(vs.iter().sum::<f32>(), 5.0);
        // MurmurHash3 x86_32 reference values (seed 0).
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_32(b"hello, world", 0), 0x149b_bb7f);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }
}
