//! Adding a nullable vector field to a collection that holds data, and filling it in: NULLs
//! for old rows (in memory, in sealed files, in WAL records from before the change), fills
//! that never overwrite a written value, searches that skip rows without a vector, and all of
//! it after reopening.

mod common;

use common::*;
use quiver_core::{Cell, Column, ColumnData, DataType, Error, FieldSchema, VectorColumn};
use quiver_engine::{Engine, Pk, QueryRequest, SearchRequest};

fn added() -> FieldSchema {
    let mut f = FieldSchema::new("v2", DataType::FloatVector).with_param("dim", 3);
    f.nullable = true;
    f
}

fn v2_of(i: i64) -> Vec<f32> {
    vec![1.0, (i % 17) as f32, (i % 5) as f32 - 2.0]
}

fn values(ids: &[i64]) -> Column {
    Column::new(ColumnData::Vector(VectorColumn::f32(
        3,
        ids.iter().flat_map(|&i| v2_of(i)).collect(),
    )))
}

fn pks(ids: &[i64]) -> Vec<Pk> {
    ids.iter().map(|&i| Pk::Int(i)).collect()
}

/// The v2 value of each id (None for NULL), by key.
fn v2_cells(e: &Engine, ids: &[i64]) -> Vec<Option<Vec<f32>>> {
    let r = e
        .get("default", "c", &pks(ids), &["v2".into()], &[])
        .unwrap();
    let col = r.fields.iter().find(|c| c.name == "v2").unwrap();
    (0..col.column.len())
        .map(|i| match col.column.cell(i) {
            Cell::Null => None,
            Cell::Vector(v) => Some(v),
            other => panic!("not a vector: {other:?}"),
        })
        .collect()
}

fn search_v2(e: &Engine, q: Vec<f32>, k: usize) -> Vec<i64> {
    let r = e
        .search(
            "default",
            "c",
            &SearchRequest {
                anns_field: Some("v2".into()),
                vectors: vec![q],
                metric: Some("L2".into()),
                limit: k,
                ..Default::default()
            },
        )
        .unwrap();
    r.pks
        .iter()
        .map(|p| match p {
            Pk::Int(i) => *i,
            _ => panic!(),
        })
        .collect()
}

fn missing(e: &Engine, after: Option<i64>, limit: usize) -> (Vec<i64>, u64) {
    let (rows, total) = e
        .rows_missing(
            "default",
            "c",
            "v2",
            "n",
            after.map(Pk::Int).as_ref(),
            limit,
        )
        .unwrap();
    let ids = rows
        .iter()
        .map(|(pk, n)| {
            let Pk::Int(i) = pk else { panic!() };
            assert_eq!(
                *n,
                Cell::Int(i % 10),
                "the companion value is the row's own"
            );
            *i
        })
        .collect();
    (ids, total)
}

#[test]
fn added_field_reads_null_fills_once_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<i64> = (0..1500).collect();
    {
        let e = Engine::open(dir.path(), small_opts()).unwrap();
        create(&e, "c", 4);
        // 1,000 rows sealed into a file, 500 growing (WAL only).
        e.insert("default", "c", None, batch(&ids[..1000], 4, |i| rvec(i, 4)))
            .unwrap();
        e.flush("default", "c").unwrap();
        e.insert("default", "c", None, batch(&ids[1000..], 4, |i| rvec(i, 4)))
            .unwrap();

        // Refused: not nullable, an existing name.
        let mut strict = added();
        strict.nullable = false;
        assert!(matches!(
            e.add_field("default", "c", strict, None),
            Err(Error::InvalidSchema(_))
        ));
        let mut dup = added();
        dup.name = "vec".into();
        assert!(matches!(
            e.add_field("default", "c", dup, None),
            Err(Error::AlreadyExists { .. })
        ));

        let meta = e.add_field("default", "c", added(), None).unwrap();
        assert_eq!(meta.schema.fields.last().unwrap().name, "v2");
        assert!(meta.schema.fields.last().unwrap().field_id > 100);
        assert!(v2_cells(&e, &[0, 1200]).iter().all(Option::is_none));
        // The dynamic column still answers (it moved one column to the right).
        let q = e
            .query(
                "default",
                "c",
                &QueryRequest {
                    filter: "color == 'red' and id < 6".into(),
                    output_fields: vec!["id".into()],
                    limit: Some(10),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(ints(&q.fields, "id"), vec![0, 2, 4]);
        // No row has a v2 vector yet, so nothing is found through it.
        assert!(search_v2(&e, v2_of(3), 5).is_empty());

        // New writes may carry the field, or leave it NULL.
        let mut b = batch(&[2000, 2001], 4, |i| rvec(i, 4));
        b.columns.push(("v2".into(), values(&[2000, 2001])));
        e.insert("default", "c", None, b).unwrap();
        e.insert("default", "c", None, batch(&[2002], 4, |i| rvec(i, 4)))
            .unwrap();
        assert_eq!(search_v2(&e, v2_of(2000), 1), vec![2000]);

        let (first, total) = missing(&e, None, 100);
        assert_eq!(total, 1501);
        assert_eq!(first, (0..100).collect::<Vec<_>>());
        let (next, _) = missing(&e, Some(1499), 10);
        assert_eq!(next, vec![2002]);

        // Fill 0..100: all set; again: none (already set); a row written meanwhile keeps its value.
        assert_eq!(
            e.fill_field("default", "c", "v2", pks(&first), values(&first))
                .unwrap(),
            100
        );
        assert_eq!(
            e.fill_field("default", "c", "v2", pks(&first), values(&[7; 100]))
                .unwrap(),
            0
        );
        assert_eq!(v2_cells(&e, &[5]), vec![Some(v2_of(5))]);
        assert_eq!(
            e.fill_field("default", "c", "v2", pks(&[2000, 9999]), values(&[1, 1]))
                .unwrap(),
            0,
            "a written value and a missing row are both left alone"
        );
        assert_eq!(v2_cells(&e, &[2000]), vec![Some(v2_of(2000))]);
        // A filled row keeps its other values.
        let r = e
            .get("default", "c", &pks(&[5]), &["n".into(), "tag".into()], &[])
            .unwrap();
        let cell = |name: &str| {
            let c = r.fields.iter().find(|c| c.name == name).unwrap();
            c.column.cell(0)
        };
        assert_eq!(cell("n"), Cell::Int(5));
        assert_eq!(cell("tag"), Cell::Str("t2".into()));
        // Bad fills are refused.
        assert!(e
            .fill_field("default", "c", "vec", pks(&[1]), values(&[1]))
            .is_err());
        assert!(e
            .fill_field("default", "c", "v2", pks(&[1, 2]), values(&[1]))
            .is_err());
        // Fill rows from the growing part too (WAL only, before and after the field was added).
        let later: Vec<i64> = (1400..1500).collect();
        assert_eq!(
            e.fill_field("default", "c", "v2", pks(&later), values(&later))
                .unwrap(),
            100
        );
        assert_eq!(missing(&e, None, 0).1, 1301);
        let found = search_v2(&e, v2_of(1450), 3);
        assert_eq!(found.len(), 3);
        assert!(found
            .iter()
            .all(|i| v2_of(*i) == v2_of(1450) && (*i < 100 || *i >= 1400)));
        // No flush: the next open replays everything from the WAL.
    }
    {
        let e = Engine::open(dir.path(), small_opts()).unwrap();
        assert_eq!(missing(&e, None, 0).1, 1301);
        assert_eq!(
            v2_cells(&e, &[5, 150, 1450, 2000, 2002]),
            vec![
                Some(v2_of(5)),
                None,
                Some(v2_of(1450)),
                Some(v2_of(2000)),
                None,
            ]
        );
        assert_eq!(e.row_count("default", "c", &[]).unwrap(), 1503);
        // Fill the rest, flush, reopen: files written before and after the change both read.
        loop {
            let (next, _) = missing(&e, None, 400);
            if next.is_empty() {
                break;
            }
            e.fill_field("default", "c", "v2", pks(&next), values(&next))
                .unwrap();
        }
        e.flush("default", "c").unwrap();
    }
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    assert_eq!(missing(&e, None, 0).1, 0);
    assert_eq!(e.row_count("default", "c", &[]).unwrap(), 1503);
    assert_eq!(
        v2_cells(&e, &[0, 999, 1000, 2002]),
        vec![
            Some(v2_of(0)),
            Some(v2_of(999)),
            Some(v2_of(1000)),
            Some(v2_of(2002)),
        ]
    );
    let found = search_v2(&e, v2_of(3), 2000);
    assert_eq!(found.len(), 1503, "every row has a vector now");
}
