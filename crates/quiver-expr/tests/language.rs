//! One test per construct of the language, on a fixed schema and row.

mod common;

use std::collections::HashMap;

use common::{err, filter, row, schema, tri, Cell, OwnedRow, AGE, ID, J, META, NAME};
use quiver_expr::{compile, ExprError, FieldType, Filter, PkLiteral, StaticSchema};
use serde_json::{json, Value};

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

#[test]
fn precedence_and_associativity() {
    let cases = [
        ("a or b and c", "(a or (b and c))"),
        ("a and b or c and d", "((a and b) or (c and d))"),
        ("a || b || c", "(a or b or c)"),
        ("not a == 1", "(not (a == 1))"),
        ("!a and b", "((not a) and b)"),
        ("not not a", "(not (not a))"),
        ("-2 ** 2", "(-(2 ** 2))"),
        ("2 ** 3 ** 2", "(2 ** (3 ** 2))"),
        ("2 ** -1", "(2 ** (-1))"),
        ("1 + 2 * 3 - 4", "((1 + (2 * 3)) - 4)"),
        ("a - b - c", "((a - b) - c)"),
        ("a / b % c", "((a / b) % c)"),
        ("-a * b", "((-a) * b)"),
        ("a + 1 == b * 2", "((a + 1) == (b * 2))"),
        ("5 >= a > 1", "(1 < a <= 5)"),
        ("1 <= a < 5", "(1 <= a < 5)"),
        (
            "a in [1, 2] and b not in []",
            "((a in [1, 2]) and (b not in []))",
        ),
        (
            "a is not null or b IS NULL",
            "((a is not null) or (b is null))",
        ),
        ("exists a['k'] and b", "((exists a[\"k\"]) and b)"),
        ("a[0][\"x\"] like 'p%'", "(a[0][\"x\"] like \"p%\")"),
        ("JSON_CONTAINS(x, [1, [2]])", "json_contains(x, [1, [2]])"),
        ("{t} < 3", "({t} < 3)"),
        (
            "0x10 == 0o20 and 020 == 0b10000",
            "((16 == 16) and (16 == 16))",
        ),
        ("a == -9223372036854775808", "(a == (-9223372036854775808))"),
        ("TRUE != False", "(true != false)"),
    ];
    for (src, want) in cases {
        assert_eq!(quiver_expr::parse(src).unwrap().to_string(), want, "{src}");
    }
    assert!(quiver_expr::parse("").is_err());
    assert!(quiver_expr::parse("  ").is_err());
}

#[test]
fn literal_on_the_left_flips_the_operator() {
    check(&[
        ("10 > id", T),
        ("7 >= id", T),
        ("0 < id", T),
        ("8 <= id", F),
        ("7 > id", F),
        ("30 == age", T),
        ("31 != age", T),
        ("'b' > name", T),
        ("2 * 15 <= age", T),
    ]);
}

#[test]
fn compile_expr_from_a_tree() {
    let tree = quiver_expr::parse("age > 18 and name like 'apple%'").unwrap();
    let f = quiver_expr::compile_expr(&tree, &schema(), &HashMap::new()).unwrap();
    assert!(f.eval(&row()));
    assert_eq!(f.fields(), vec![AGE, NAME]);
    let tree = quiver_expr::parse("age + 1 == 'x'").unwrap();
    let e = quiver_expr::compile_expr(&tree, &schema(), &HashMap::new()).unwrap_err();
    assert!(
        matches!(e, ExprError::TypeMismatch { ref field, .. } if field == "(age + 1)"),
        "{e}"
    );
}
