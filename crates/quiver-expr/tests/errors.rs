//! Error reporting (positions, messages, the variant used) and the
//! nesting limit.

mod common;

use std::collections::HashMap;

use common::{err, filter, params, row, schema};
use quiver_expr::{compile, ExprError, FieldType, StaticSchema};

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
            for shape in shapes {
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
