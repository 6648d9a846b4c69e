//! One test per construct of the language, on a fixed schema and row.

mod common;

use std::collections::HashMap;

use common::{Cell, OwnedRow};
use quiver_expr::{compile, ExprError, FieldType, Filter, PkLiteral, StaticSchema};
use serde_json::{json, Value};

const ID: usize = 0;
const AGE: usize = 1;
const NAME: usize = 3;
const J: usize = 6;
const META: usize = 10;

fn schema() -> StaticSchema {
    StaticSchema::new()
        .field("id", ID, FieldType::Int64)
        .field("age", AGE, FieldType::Int32)
        .field("price", 2, FieldType::Double)
        .field("name", NAME, FieldType::VarChar)
        .field("flag", 4, FieldType::Bool)
        .nullable_field("score", 5, FieldType::Int64)
        .field("j", J, FieldType::Json)
        .field("arr", 7, FieldType::Array(Box::new(FieldType::Int64)))
        .field("tags", 8, FieldType::Array(Box::new(FieldType::VarChar)))
        .field("small", 9, FieldType::Int8)
        .nullable_field("nj", 11, FieldType::Json)
        .field("ratio", 12, FieldType::Float)
        .unfilterable("vec", "vector fields cannot be filtered")
        .dynamic(META)
}

fn row() -> OwnedRow {
    OwnedRow::default()
        .set(ID, Cell::Int(7))
        .set(AGE, Cell::Int(30))
        .set(2, Cell::Float(19.5))
        .set(NAME, Cell::Str("apple pie".into()))
        .set(4, Cell::Bool(true))
        .set(5, Cell::Null)
        .set(
            J,
            Cell::Json(json!({
                "a": 5, "b": "x", "arr": [1, 2.0, "three"], "nested": {"k": [10, 20]},
                "n": null, "t": true, "big": 1e300
            })),
        )
        .set(7, Cell::Json(json!([1, 2, 3])))
        .set(8, Cell::Json(json!(["red", "green"])))
        .set(9, Cell::Int(-5))
        .set(
            META,
            Cell::Json(json!({"color": "blue", "size": 3, "list": [1, 2]})),
        )
        .set(11, Cell::Null)
        .set(12, Cell::Float(0.25))
}

fn params() -> HashMap<String, Value> {
    HashMap::from([
        ("ids".to_string(), json!([7, 8])),
        ("min".to_string(), json!(20)),
        ("n".to_string(), json!("apple pie")),
        ("fmin".to_string(), json!(19.25)),
        ("pat".to_string(), json!("app%")),
        ("yes".to_string(), json!(true)),
    ])
}

fn filter(src: &str) -> Filter {
    compile(src, &schema(), &params()).unwrap_or_else(|e| panic!("compile {src:?}: {e}"))
}

fn tri(src: &str) -> Option<bool> {
    filter(src).eval_tri(&row())
}

fn err(src: &str) -> ExprError {
    match compile(src, &schema(), &params()) {
        Ok(f) => panic!("{src:?} compiled to {f:?}"),
        Err(e) => e,
    }
}

/// Each case: (source, expected three-valued result on `row()`).
fn check(cases: &[(&str, Option<bool>)]) {
    let mut failures = Vec::new();
    for (src, want) in cases {
        let got = tri(src);
        if got != *want {
            failures.push(format!("{src:?}: got {got:?}, want {want:?}"));
        }
        assert_eq!(filter(src).eval(&row()), *want == Some(true));
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

const T: Option<bool> = Some(true);
const F: Option<bool> = Some(false);
const U: Option<bool> = None;

#[test]
fn comparisons_and_numeric_promotion() {
    check(&[
        ("id == 7", T),
        ("id != 7", F),
        ("7 == id", T),
        ("id > 6.5", T),
        ("id >= 7.0", T),
        ("id < 7", F),
        ("id <= 7", T),
        ("price == 19.5", T),
        ("price > age", F),
        ("age > id", T),
        ("ratio == 0.25", T),
        ("small > 1000", F),
        ("small < 1000", T),
        ("small > -129", T),
        ("small == -5", T),
        ("name > 'apple'", T),
        ("name < 'b'", T),
        ("name == \"apple pie\"", T),
        ("'B' < 'a'", T),
        ("flag == true", T),
        ("flag != false", T),
        ("flag == FALSE", F),
        ("flag == True", T),
        ("id > -9223372036854775808", T),
        ("id < 9223372036854775807", T),
    ]);
}

#[test]
fn integer_and_float_literals() {
    check(&[
        ("id == 0x7", T),
        ("id == 0X07", T),
        ("id == 0o7", T),
        ("id == 07", T),
        ("id == 0b111", T),
        ("age == 036", T),
        ("price > 1e1", T),
        ("price < .5e2", T),
        ("price == 19.5e0", T),
        ("ratio == .25", T),
        ("age == 30.", T),
        ("age == 3E1", T),
    ]);
}

#[test]
fn string_escapes() {
    check(&[
        (r#"name == "apple\u0020pie""#, T),
        (r"name == 'apple\x20pie'", T),
        (r#"name == "apple\tpie""#, F),
        (r#"j["b"] == 'x'"#, T),
        (r#"name == 'apple pie\''"#, F),
    ]);
}

#[test]
fn arithmetic() {
    check(&[
        ("price * 2 > 38", T),
        ("price * 2 == 39", T),
        ("age + id == 37", T),
        ("age - id == 23", T),
        ("age % 7 == 2", T),
        ("age % 2 == 0", T),
        ("age / 7 == 4", T),
        ("age / 7.0 > 4.28", T),
        ("age / 7.0 < 4.29", T),
        ("-age == -30", T),
        ("age - -5 == 35", T),
        ("+age == 30", T),
        ("age ** 2 == 900", T),
        ("2 ** 3 ** 2 == 512", T),
        ("-2 ** 2 == -4", T),
        ("(-2) ** 2 == 4", T),
        ("2 ** -1 == 0.5", T),
        ("1 + 2 * 3 == 7", T),
        ("(1 + 2) * 3 == 9", T),
        ("10 - 4 - 3 == 3", T),
        ("j['a'] * 2 == 10", T),
        ("j['b'] * 2 == 10", U),
        ("size + 1 == 4", T),
        ("id * 9223372036854775807 > 0", T),
        ("-7 % 3 == -1", T),
    ]);
}

#[test]
fn division_by_zero_is_unknown() {
    check(&[
        ("age / 0 == 1", U),
        ("not (age / 0 == 1)", U),
        ("age % 0 == 0", U),
        ("price / 0 > 1", U),
        ("price % 0.0 > 1", U),
        ("age / 0 == 1 or id == 7", T),
        ("age / (id - 7) > 0", U),
    ]);
    assert!(filter("1 / 0 == 1").is_always_false());
}

#[test]
fn ranges() {
    check(&[
        ("1 < id <= 7", T),
        ("1 < id < 7", F),
        ("10 >= id > 6", T),
        ("7 >= id >= 7", T),
        ("7 > id >= 0", F),
        ("0 <= price * 2 < 40", T),
        ("'a' < name < 'b'", T),
        ("1 < score < 10", U),
        ("8 < id < score", F),
        ("1 < j['a'] < 9", T),
        ("1 < j['b'] < 9", F),
    ]);
}

#[test]
fn logical_operators_and_case_insensitivity() {
    check(&[
        ("id == 7 and age == 30", T),
        ("id == 7 && age == 31", F),
        ("id == 8 or age == 30", T),
        ("id == 8 || age == 31", F),
        ("not id == 8", T),
        ("!(id == 7)", F),
        ("NOT (id == 7) OR flag", T),
        ("id IN [7] AND name LIKE 'apple%'", T),
        ("id == 8 Or age == 30 aNd flag", T),
        ("not not flag", T),
        ("!flag", F),
        ("flag", T),
        ("flag and not flag", F),
        ("(id == 7 or id == 8) and (age == 1 or age == 30)", T),
        ("id == 8 or id == 9 or id == 7", T),
        ("id == 7 and (age == 30 and (flag and price > 1))", T),
    ]);
}

#[test]
fn in_lists() {
    check(&[
        ("age in [10, 30]", T),
        ("age not in [10, 30]", F),
        ("age NOT IN [10, 31]", T),
        ("age in []", F),
        ("age in [30.0]", T),
        ("price in [19.5, 1]", T),
        ("price in [19, 20]", F),
        ("name in ['apple pie', 'x']", T),
        ("name in ['apple']", F),
        ("flag in [true]", T),
        ("age in [1, 2, 30,]", T),
        ("j['a'] in [5, 'x']", T),
        ("j['b'] in [5, 'x']", T),
        ("j['b'] in [5]", F),
        ("j['b'] not in [5]", T),
        ("j['missing'] in [5]", U),
        ("j['arr'] in [[1, 2, 'three']]", T),
        ("age in [-30, -1 - 29]", F),
        ("-age in [-30]", T),
    ]);
}

#[test]
fn like_patterns() {
    check(&[
        ("name like 'apple%'", T),
        ("name like '%pie'", T),
        ("name like '%le p%'", T),
        ("name like 'a_ple pie'", T),
        ("name like 'apple'", F),
        ("name like '%'", T),
        ("name like 'a%e%e'", T),
        ("name not like 'x%'", T),
        ("name NOT LIKE 'app%'", F),
        (r"name like 'apple\%'", F),
        (r#"j["b"] like "x""#, T),
        (r#"j["a"] like "5""#, F),
        (r#"j["a"] not like "5""#, T),
        (r#"j["missing"] like "%""#, U),
        ("color like 'bl%'", T),
        ("name like {pat}", T),
    ]);
}

#[test]
fn like_escapes_wildcards() {
    let schema = StaticSchema::new().field("s", 0, FieldType::VarChar);
    let p = HashMap::new();
    let eval = |src: &str, s: &str| {
        let f = compile(src, &schema, &p).unwrap();
        f.eval(&OwnedRow::default().set(0, Cell::Str(s.into())))
    };
    assert!(eval(r"s like '100\%'", "100%"));
    assert!(!eval(r"s like '100\%'", "1000"));
    assert!(eval(r"s like '100\\%'", "100%"));
    assert!(eval(r"s like 'a\_c'", "a_c"));
    assert!(!eval(r"s like 'a\_c'", "abc"));
    assert!(eval("s like '日_語'", "日本語"));
}

#[test]
fn null_semantics() {
    check(&[
        ("score == 1", U),
        ("score != 1", U),
        ("not (score == 1)", U),
        ("score is null", T),
        ("score IS NULL", T),
        ("score is not null", F),
        ("score IS NOT NULL", F),
        ("score == 1 or id == 7", T),
        ("score == 1 or id == 8", U),
        ("score == 1 and id == 7", U),
        ("score == 1 and id == 8", F),
        ("not (score == 1 and id == 8)", T),
        ("score in [1]", U),
        ("score not in [1]", U),
        ("score + 1 > 0", U),
        ("(score + 1) is null", T),
        ("age is null", F),
        ("age is not null", T),
        ("nj is null", T),
        ("nj['a'] is null", T),
        ("json_contains(nj, 1)", U),
    ]);
}

#[test]
fn json_paths() {
    check(&[
        ("j['a'] == 5", T),
        (r#"j["a"] == 5.0"#, T),
        (r#"j["a"] > 4"#, T),
        (r#"j["b"] == "x""#, T),
        (r#"j["b"] == 5"#, F),
        (r#"j["b"] != 5"#, T),
        (r#"j["b"] > 5"#, F),
        (r#"j["missing"] == 1"#, U),
        (r#"j["missing"] != 1"#, U),
        (r#"j["missing"] is null"#, T),
        (r#"j["n"] is null"#, T),
        (r#"j["n"] == 1"#, U),
        (r#"j["a"] is not null"#, T),
        (r#"j["nested"]["k"][1] == 20"#, T),
        (r#"j["nested"]["k"][2] is null"#, T),
        (r#"j["arr"][2] == "three""#, T),
        (r#"j["arr"][1] == 2"#, T),
        (r#"j["arr"][9] is null"#, T),
        (r#"j["a"]["deeper"] is null"#, T),
        (r#"j["t"]"#, T),
        (r#"j["t"] == true"#, T),
        (r#"j["a"]"#, F),
        (r#"j["big"] > 9223372036854775807"#, T),
        (r#"j["arr"] == [1, 2, "three"]"#, T),
        (r#"j["arr"] != [1, 2]"#, T),
        (r#"j["a"] > j["nested"]["k"][0]"#, F),
        (r#"j["a"] == age / 6"#, T),
    ]);
}

#[test]
fn dynamic_field() {
    check(&[
        ("color == 'blue'", T),
        (r#"$meta["color"] == "blue""#, T),
        ("size > 2", T),
        ("list[1] == 2", T),
        ("$meta['list'][0] == 1", T),
        ("unknown_key == 1", U),
        ("unknown_key is null", T),
        ("exists color", T),
        ("exists unknown_key", F),
        ("json_contains(list, 2)", T),
        ("array_length($meta['list']) == 2", T),
    ]);
    assert_eq!(filter("color == 'x'").fields(), vec![META]);
}

#[test]
fn exists() {
    check(&[
        (r#"exists j["a"]"#, T),
        (r#"EXISTS j["n"]"#, T),
        (r#"exists j["zz"]"#, F),
        (r#"exists j["nested"]["k"]"#, T),
        (r#"exists j["nested"]["zz"]"#, F),
        (r#"exists $meta["color"]"#, T),
        (r#"exists nj["a"]"#, F),
        (r#"not exists j["zz"]"#, T),
        (r#"exists j["a"] and exists j["b"]"#, T),
        ("exists j", T),
        ("exists nj", F),
    ]);
}

#[test]
fn json_contains_family() {
    check(&[
        (r#"json_contains(j["arr"], 2)"#, T),
        (r#"json_contains(j["arr"], 1.0)"#, T),
        (r#"json_contains(j["arr"], "three")"#, T),
        (r#"JSON_CONTAINS(j["arr"], 4)"#, F),
        (r#"json_contains_all(j["arr"], [1, 2])"#, T),
        (r#"JSON_CONTAINS_ALL(j["arr"], [1, 4])"#, F),
        (r#"json_contains_all(j["arr"], [])"#, T),
        (r#"json_contains_any(j["arr"], [4, "three"])"#, T),
        (r#"json_contains_any(j["arr"], [4, 5])"#, F),
        (r#"json_contains_any(j["arr"], [])"#, F),
        (r#"json_contains(j["a"], 5)"#, F),
        (r#"json_contains(j["missing"], 5)"#, U),
        (r#"not json_contains(j["missing"], 5)"#, U),
        (r#"json_contains(j["nested"]["k"], 10)"#, T),
        (r#"json_contains(j["arr"], {ids})"#, F),
        (r#"json_contains(arr, 3)"#, T),
    ]);
}

#[test]
fn array_functions_and_indexing() {
    check(&[
        ("array_contains(arr, 2)", T),
        ("ARRAY_CONTAINS(arr, 2.0)", T),
        ("array_contains(arr, 5)", F),
        ("array_contains_all(arr, [1, 3])", T),
        ("array_contains_all(arr, [1, 4])", F),
        ("array_contains_any(arr, [7, 8])", F),
        ("array_contains_any(arr, [7, 3])", T),
        ("array_length(arr) == 3", T),
        ("ARRAY_LENGTH(arr) > 3", F),
        ("array_length(tags) == 2", T),
        ("array_length(j['arr']) == 3", T),
        ("array_length(j['a']) == 1", U),
        ("arr[0] == 1", T),
        ("arr[2] > 2", T),
        ("arr[5] > 0", U),
        ("arr[5] is null", T),
        ("arr[0] + arr[1] == arr[2]", T),
        ("array_contains(tags, 'red')", T),
        ("array_contains_any(tags, ['blue', 'green'])", T),
        ("tags[1] like 'gr%'", T),
        ("arr == [1, 2, 3]", T),
        ("arr == [1.0, 2, 3]", T),
        ("arr != [1, 2]", T),
    ]);
}

#[test]
fn templates() {
    check(&[
        ("id in {ids}", T),
        ("id not in {ids}", F),
        ("age > {min}", T),
        ("name == {n}", T),
        ("price > {fmin}", T),
        ("flag == {yes}", T),
        ("{min} < age <= {min} + 10", T),
        ("age in [{min}, 30]", T),
        ("array_contains_any(arr, {ids})", F),
    ]);
    let e = err("id in {nope}");
    assert_eq!(e, ExprError::UnboundTemplate("nope".into()));
    assert_eq!(
        e.to_string(),
        "template placeholder '{nope}' has no bound value"
    );
    let p = HashMap::from([
        ("o".to_string(), json!({"a": 1})),
        ("z".to_string(), Value::Null),
    ]);
    assert!(
        matches!(compile("j == {o}", &schema(), &p), Err(ExprError::Invalid(m)) if m.contains("{o}"))
    );
    assert!(
        matches!(compile("j == {z}", &schema(), &p), Err(ExprError::Invalid(m)) if m.contains("null"))
    );
    let p = HashMap::from([("s".to_string(), json!("x"))]);
    assert!(matches!(
        compile("id > {s}", &schema(), &p),
        Err(ExprError::TypeMismatch { field, .. }) if field == "id"
    ));
}

#[test]
fn constant_filters() {
    for src in [
        "",
        "   ",
        "\n\t",
        "true",
        "TRUE",
        "1 == 1",
        "true and true",
        "not false",
        "true or id == 1",
    ] {
        let f = filter(src);
        assert!(f.is_always_true(), "{src:?}");
        assert!(f.eval(&row()));
    }
    for src in ["false", "1 == 2", "id == 1 and false", "not true"] {
        let f = filter(src);
        assert!(!f.is_always_true() && f.is_always_false(), "{src:?}");
        assert!(!f.eval(&row()));
    }
    let f = filter("true and id == 7");
    assert!(!f.is_always_true());
    assert_eq!(f.fields(), vec![ID]);
    assert!(f.eval(&row()));
    assert!(filter("").fields().is_empty());
}

#[test]
fn fields_read() {
    assert_eq!(
        filter("age > 1 and name like 'a%' or j['x'] == 1").fields(),
        vec![AGE, NAME, J]
    );
    assert_eq!(filter("age > 1 and age < 5").fields(), vec![AGE]);
    assert_eq!(
        filter("exists j['k'] and array_length(arr) > 0").fields(),
        vec![J, 7]
    );
}

#[test]
fn pk_lookup() {
    let pk = |src: &str| filter(src).pk_lookup(ID);
    use PkLiteral::{Int, Str};
    assert_eq!(pk("id == 7"), Some(vec![Int(7)]));
    assert_eq!(pk("7 == id"), Some(vec![Int(7)]));
    assert_eq!(pk("id in [3, 1, 3]"), Some(vec![Int(1), Int(3)]));
    assert_eq!(
        pk("id == 1 or id in [2, 3] or 4 == id"),
        Some(vec![Int(1), Int(2), Int(3), Int(4)])
    );
    assert_eq!(pk("id in {ids}"), Some(vec![Int(7), Int(8)]));
    assert_eq!(pk("id == 1.0"), Some(vec![Int(1)]));
    assert_eq!(pk("id == 1.5"), Some(vec![]));
    assert_eq!(pk("id in []"), Some(vec![]));
    assert_eq!(pk("id == -0x10"), Some(vec![Int(-16)]));
    assert_eq!(pk("(id == 1) or (id == 2)"), Some(vec![Int(1), Int(2)]));
    assert_eq!(pk("id == 1 and age == 2"), None);
    assert_eq!(pk("id == 1 or age == 2"), None);
    assert_eq!(pk("id != 1"), None);
    assert_eq!(pk("id not in [1]"), None);
    assert_eq!(pk("id > 1"), None);
    assert_eq!(pk("age == 1"), None);
    assert_eq!(pk(""), None);
    assert_eq!(
        filter("name in ['b', 'a'] or name == 'c'").pk_lookup(NAME),
        Some(vec![Str("a".into()), Str("b".into()), Str("c".into())])
    );
    // A long generated OR chain stays within the nesting limit and is a pk lookup.
    let src = (0..3000)
        .map(|i| format!("id == {i}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let keys = filter(&src).pk_lookup(ID).unwrap();
    assert_eq!(keys.len(), 3000);
}

#[test]
fn parse_error_positions_and_messages() {
    let cases: &[(&str, usize, &str)] = &[
        (
            r#"j["key""#,
            7,
            "expected ']' at position 7, found end of input",
        ),
        (
            "id ==",
            5,
            "expected an expression at position 5, found end of input",
        ),
        (
            "(id == 1",
            8,
            "expected ')' at position 8, found end of input",
        ),
        (
            "id == 1)",
            7,
            "expected end of input (unbalanced brackets) at position 7, found ')'",
        ),
        (
            "age in [1, 2 3]",
            13,
            "expected ',' or ']' at position 13, found integer 3",
        ),
        ("id == 1 age == 2", 8, "found identifier 'age'"),
        (
            "id = 1",
            3,
            "expected '==' (a single '=' is not an operator) at position 3, found '='",
        ),
        ("1 < id > 0", 7, "a range must use one direction"),
        ("1 < id < 5 < 7", 11, "at most two chained comparisons"),
        ("id == 1 == 2", 8, "'==' and '!=' cannot be chained"),
        ("foo(1)", 0, "unknown function 'foo'"),
        (
            "json_contains(j)",
            0,
            "expected 2 arguments for json_contains() at position 0, found 1 argument",
        ),
        ("array_length(arr, 1)", 0, "found 2 arguments"),
        (
            "name == 'abc",
            12,
            "expected closing ' (string opened at position 8) at position 12",
        ),
        ("id == 9223372036854775808", 6, "signed 64-bit range"),
        ("id is 1", 6, "expected 'null' or 'not null' after 'is'"),
        ("id not 1", 7, "expected 'in' or 'like' after 'not'"),
        ("id == null", 6, "use 'is null'"),
        ("id in {1}", 7, "a placeholder name"),
        ("j[x]", 2, "a string key or an integer index"),
        ("id @ 1", 3, "found '@'"),
        ("id == 0x", 6, "hexadecimal digits"),
        ("id == 09", 6, "octal digits"),
        (r#"name == "\q""#, 9, "valid escape sequence"),
        ("$metadata", 0, "expected '$meta'"),
        ("id ==\n  and", 8, "found keyword 'and'"),
    ];
    for (src, pos, msg) in cases {
        let e = err(src);
        match &e {
            ExprError::Parse { pos: p, .. } => assert_eq!(p, pos, "{src:?}: {e}"),
            other => panic!("{src:?}: expected a parse error, got {other:?}"),
        }
        assert!(e.to_string().contains(msg), "{src:?}: {e}");
    }
    let src = "id == 1\nand (";
    assert_eq!(err(src).line_col(src), Some((2, 6)));
}

#[test]
fn name_resolution_errors() {
    let no_dyn = StaticSchema::new()
        .field("id", 0, FieldType::Int64)
        .field("v", 1, FieldType::VarChar)
        .unfilterable("emb", "vector field 'emb' cannot be used in filters");
    let p = HashMap::new();
    let e = compile("nope == 1", &no_dyn, &p).unwrap_err();
    assert_eq!(e, ExprError::UnknownField("nope".into()));
    assert!(e.to_string().starts_with("unknown field 'nope'"), "{e}");
    let e = compile("id == 1 and nope['k'] == 1", &no_dyn, &p).unwrap_err();
    assert_eq!(e, ExprError::UnknownField("nope".into()));
    let e = compile("emb == 1", &no_dyn, &p).unwrap_err();
    assert!(
        matches!(&e, ExprError::Invalid(m) if m.contains("vector field 'emb'")),
        "{e}"
    );
    let e = compile("$meta['a'] == 1", &no_dyn, &p).unwrap_err();
    assert!(e.to_string().contains("no dynamic field"), "{e}");
    let e = compile("v[0] == 'a'", &no_dyn, &p).unwrap_err();
    assert!(
        matches!(&e, ExprError::TypeMismatch { field, .. } if field == "v"),
        "{e}"
    );
    let e = err("arr['k'] == 1");
    assert!(e.to_string().contains("arr[0]"), "{e}");
    let e = err("arr[0][1] == 1");
    assert!(matches!(e, ExprError::Invalid(_)), "{e}");
}

#[test]
fn type_errors_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "id == 'abc'",
            "id",
            "type mismatch for 'id': expected a number, found string \"abc\"",
        ),
        ("'abc' == id", "id", "found string \"abc\""),
        (
            "age like 'a%'",
            "age",
            "expected a VarChar field or JSON path for 'like', found Int32 field 'age'",
        ),
        (
            "array_contains(age, 1)",
            "age",
            "expected an Array field or JSON value for array_contains()",
        ),
        (
            "json_contains_any(name, ['a'])",
            "name",
            "found VarChar field 'name'",
        ),
        ("array_length(id) == 1", "id", "for array_length()"),
        (
            "name + 1 > 2",
            "name",
            "expected a numeric value for arithmetic, found VarChar field 'name'",
        ),
        ("-name == 'a'", "name", "numeric value"),
        ("flag * 2 == 2", "flag", "numeric value"),
        (
            "array_contains(arr, 'x')",
            "arr",
            "expected a number, found string \"x\"",
        ),
        (
            "array_contains_all(tags, ['a', 1])",
            "tags",
            "expected a string, found number 1",
        ),
        (
            "flag < true",
            "flag",
            "booleans and arrays only support == and !=",
        ),
        ("flag == 1", "flag", "expected a boolean, found integer 1"),
        ("id in [1, 'a']", "id", "found string \"a\""),
        ("name in ['a', 2]", "name", "found number 2"),
        ("arr == 1", "arr", "expected an array, found integer 1"),
        ("arr > [1]", "arr", "only support == and !="),
        ("arr in [1]", "arr", "use array_contains_any"),
        (
            "age",
            "age",
            "expected a boolean expression, found Int32 field 'age'",
        ),
        ("age + 1", "age + 1", "expected a boolean expression"),
        ("not age", "age", "a boolean expression"),
        ("flag and name", "name", "a boolean expression"),
        (
            "name > age",
            "name",
            "expected a string, found Int32 field 'age'",
        ),
        ("1 < name < 5", "name", "expected a string"),
        ("arr[0] == 'x'", "arr[0]", "expected a number"),
    ];
    for (src, field, msg) in cases {
        let e = err(src);
        match &e {
            ExprError::TypeMismatch { field: f, .. } => assert_eq!(f, field, "{src:?}: {e}"),
            other => panic!("{src:?}: expected a type mismatch, got {other:?}"),
        }
        assert!(e.to_string().contains(msg), "{src:?}: {e}");
    }
}

#[test]
fn other_invalid_constructs() {
    let cases: &[(&str, &str)] = &[
        ("1", "must be a boolean expression, found integer 1"),
        ("'x'", "found string \"x\""),
        (
            "id in 5",
            "the right side of 'in' must be a list of constants",
        ),
        ("id in [age]", "array literals may only contain constants"),
        (
            "name like name",
            "the pattern of 'like' must be a string literal",
        ),
        ("json_contains(j, age)", "must be a constant"),
        ("json_contains_all(j, 5)", "must be a list of constants"),
        ("exists age", "'exists' needs a JSON path"),
        ("exists arr[0]", "'exists' needs a JSON path"),
    ];
    for (src, msg) in cases {
        let e = err(src);
        assert!(matches!(e, ExprError::Invalid(_)), "{src:?}: {e:?}");
        assert!(e.to_string().contains(msg), "{src:?}: {e}");
    }
}

#[test]
fn deep_nesting_is_rejected_not_overflowing() {
    let deep_parens = format!("{}flag{}", "(".repeat(5000), ")".repeat(5000));
    assert!(matches!(err(&deep_parens), ExprError::Invalid(m) if m.contains("nested too deeply")));
    assert!(err(&format!("{}flag", "not ".repeat(5000)))
        .to_string()
        .contains("too deeply"));
    assert!(err(&format!("{}1 == 1", "-".repeat(5000)))
        .to_string()
        .contains("too deeply"));
    assert!(err(&format!("id == 1{}", " + 1".repeat(5000)))
        .to_string()
        .contains("too deeply"));
    assert!(err(&format!("id == 2{}", " ** 2".repeat(5000)))
        .to_string()
        .contains("too deeply"));
    assert!(
        err(&format!("id in {}1{}", "[".repeat(5000), "]".repeat(5000)))
            .to_string()
            .contains("too deeply")
    );
    // Moderate nesting is fine.
    let ok = format!("{}flag{}", "(".repeat(40), ")".repeat(40));
    assert!(filter(&ok).eval(&row()));
    let ok = format!("id == 1{}", " + 1".repeat(40));
    assert!(!filter(&ok).eval(&row()));
    // A long flat conjunction is not nesting.
    let flat = (0..5000)
        .map(|_| "id == 7")
        .collect::<Vec<_>>()
        .join(" and ");
    assert!(filter(&flat).eval(&row()));
}

#[test]
fn display_round_trips() {
    let srcs = [
        "id == 7 and not (age > 1 or name like 'a\\%b%')",
        "1 < id <= 7 and 10 >= age > 3",
        "-2 ** 2 == -(4) and (-2) ** 2 == 4 and age % 2 != 0",
        "j[\"a\"][0] in [1, -2.5, \"x\\\"y\\n\"] && exists $meta['k'] || flag is not null",
        "json_contains_all(arr, {ids}) and array_length(tags) == 2 and name not in ['a']",
        "id > -9223372036854775808 and price != -0.0",
    ];
    for src in srcs {
        let printed = quiver_expr::parse(src).unwrap().to_string();
        let reparsed = quiver_expr::parse(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
        assert_eq!(reparsed.to_string(), printed, "{src}");
        assert_eq!(
            filter(src).eval_tri(&row()),
            filter(&printed).eval_tri(&row()),
            "{src} vs {printed}"
        );
    }
}

#[test]
fn rows_as_slices() {
    let schema =
        StaticSchema::new()
            .field("a", 0, FieldType::Int64)
            .field("b", 1, FieldType::VarChar);
    let f = compile("a > 1 and b == 'x'", &schema, &HashMap::new()).unwrap();
    use quiver_expr::ValueRef;
    assert!(f.eval(&vec![ValueRef::Int(2), ValueRef::Str("x")]));
    assert!(!f.eval(&[ValueRef::Int(2)]));
    assert_eq!(f.eval_tri(&[ValueRef::Int(2)]), None);
}

#[test]
fn filter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Filter>();
}

/// Every shape of nesting, at the deepest level the parser accepts, compiles
/// and evaluates on a thread with a small (1 MiB) stack.
#[test]
fn maximal_nesting_fits_a_small_stack() {
    let shapes: Vec<Box<dyn Fn(usize) -> String + Send>> = vec![
        Box::new(|k| format!("{}flag{}", "(".repeat(k), ")".repeat(k))),
        Box::new(|k| format!("{}flag", "not ".repeat(k))),
        Box::new(|k| format!("{}age == -30", "- ".repeat(k * 2))),
        Box::new(|k| format!("{}age{} == 1", "(".repeat(k), " + 1)".repeat(k))),
        Box::new(|k| format!("{}flag{}", "(flag and ".repeat(k), ")".repeat(k))),
        Box::new(|k| format!("{}flag{}", "(not (".repeat(k), "))".repeat(k))),
        Box::new(|k| format!("json_contains(j, {}1{})", "[".repeat(k), "]".repeat(k))),
        Box::new(|k| format!("age{} == 30", " ** 1".repeat(k))),
        Box::new(|k| format!("age{} == 30", " * 1".repeat(k))),
        Box::new(|k| format!("{}age{} > 0", "-(".repeat(k), ")".repeat(k))),
        Box::new(|k| format!("{}1{} == age", "array_length([".repeat(k), "])".repeat(k))),
    ];
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            for (i, shape) in shapes.into_iter().enumerate() {
                eprintln!("shape {i}");
                let mut deepest = None;
                for k in 1..400 {
                    match compile(&shape(k), &schema(), &params()) {
                        Ok(f) => deepest = Some(f),
                        Err(e) => {
                            assert!(e.to_string().contains("too deeply"), "{}: {e}", shape(k));
                            break;
                        }
                    }
                }
                let f = deepest.expect("depth 1 compiles");
                let _ = f.eval(&row());
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
