//! The registry end to end: models, versions and artifacts, aliases with CAS and history,
//! deletion rules, the audit chain (tampering, torn tails) and restart persistence.

use std::collections::BTreeMap;

use quiver_registry::{ArtifactSource, Lineage, NewVersion, Registry, RegistryError, Space};

fn space(dim: u32) -> Space {
    Space {
        dim,
        metric: "cosine".into(),
        normalize: true,
        pooling: "mean".into(),
        query_prefix: String::new(),
        document_prefix: String::new(),
        dtype: "float32".into(),
    }
}

fn new_version(dim: u32) -> NewVersion {
    NewVersion {
        space: space(dim),
        lineage: Lineage {
            source_uri: "hf://sentence-transformers/all-MiniLM-L6-v2".into(),
            run_id: "run-1".into(),
            ..Default::default()
        },
        tags: BTreeMap::from([("team".to_string(), "search".to_string())]),
    }
}

fn files(tag: &str) -> ArtifactSource {
    ArtifactSource::Bytes(vec![
        (
            "config.json".into(),
            format!("{{\"tag\":\"{tag}\"}}").into_bytes(),
        ),
        ("weights/model.bin".into(), vec![7u8; 1000]),
    ])
}

fn none(_: &str, _: u32) -> Option<String> {
    None
}

#[test]
fn models_versions_artifacts_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2);
    {
        let r = Registry::open(dir.path()).unwrap();
        let m = r
            .create_model("minilm", "sentence encoder", "alice")
            .unwrap();
        assert_eq!((m.name.as_str(), m.versions.len()), ("minilm", 0));
        assert!(matches!(
            r.create_model("minilm", "again", "bob"),
            Err(RegistryError::Conflict(_))
        ));
        assert!(matches!(
            r.create_model("9bad name", "", "bob"),
            Err(RegistryError::BadRequest(_))
        ));
        v1 = r
            .register_version("minilm", files("a"), new_version(384), "alice")
            .unwrap();
        assert_eq!(v1.version, 1);
        assert_eq!(v1.files.len(), 2);
        assert_eq!(v1.space.metric, "COSINE");
        assert!(v1.space_id.starts_with("sp_") && v1.space_id.len() == 19);
        assert_eq!(v1.lineage.created_by, "alice");
        // Same space, same id; another dim, another id.
        v2 = r
            .register_version("minilm", files("b"), new_version(384), "bob")
            .unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.space_id, v1.space_id);
        assert_ne!(v2.sha256, v1.sha256);
        let v3 = r
            .register_version("minilm", files("a"), new_version(768), "bob")
            .unwrap();
        assert_ne!(v3.space_id, v1.space_id);
        assert_eq!(v3.sha256, v1.sha256, "same files, same version hash");
        // Bad input.
        let mut bad = new_version(384);
        bad.space.metric = "manhattan".into();
        assert!(matches!(
            r.register_version("minilm", files("x"), bad, "a"),
            Err(RegistryError::BadRequest(_))
        ));
        let traversal = ArtifactSource::Bytes(vec![("../etc/passwd".into(), b"x".to_vec())]);
        assert!(matches!(
            r.register_version("minilm", traversal, new_version(8), "a"),
            Err(RegistryError::BadRequest(_))
        ));
        assert!(matches!(
            r.register_version("nope", files("x"), new_version(8), "a"),
            Err(RegistryError::NotFound(_))
        ));
        assert_eq!(
            r.read_file("minilm", 1, "config.json").unwrap(),
            b"{\"tag\":\"a\"}".to_vec()
        );
        assert!(matches!(
            r.read_file("minilm", 1, "missing.txt"),
            Err(RegistryError::NotFound(_))
        ));
    }
    // Everything is back after a restart.
    let r = Registry::open(dir.path()).unwrap();
    assert_eq!(r.version("minilm", 1).unwrap(), v1);
    assert_eq!(r.version("minilm", 2).unwrap(), v2);
    assert_eq!(r.model("minilm").unwrap().versions, vec![1, 2, 3]);
    r.verify_version("minilm", 2).unwrap();
}

#[test]
fn tampered_artifacts_are_reported_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::open(dir.path()).unwrap();
    r.create_model("m", "", "a").unwrap();
    let v = r
        .register_version("m", files("t"), new_version(8), "a")
        .unwrap();
    let blob = |sha: &str| dir.path().join("blobs/sha256").join(&sha[..2]).join(sha);
    let f = v
        .files
        .iter()
        .find(|f| f.path == "weights/model.bin")
        .unwrap();
    let mut bytes = std::fs::read(blob(&f.sha256)).unwrap();
    bytes[10] ^= 1;
    std::fs::write(blob(&f.sha256), &bytes).unwrap();
    let err = r.read_file("m", 1, "weights/model.bin").unwrap_err();
    assert!(matches!(err, RegistryError::Tampered { .. }), "{err}");
    assert_eq!(err.http_status(), 500);
    assert!(r.verify_version("m", 1).is_err());
    // The untouched file still reads.
    assert!(r.read_file("m", 1, "config.json").is_ok());
}

#[test]
fn aliases_move_with_cas_and_keep_history() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::open(dir.path()).unwrap();
    r.create_model("m", "", "a").unwrap();
    for t in ["1", "2", "3"] {
        r.register_version("m", files(t), new_version(8), "a")
            .unwrap();
    }
    r.set_alias("m", "champion", 1, Some(None), "first", "alice")
        .unwrap();
    // CAS: must not exist yet -> conflict now.
    assert!(matches!(
        r.set_alias("m", "champion", 2, Some(None), "", "bob"),
        Err(RegistryError::Conflict(_))
    ));
    // Wrong expectation -> conflict, alias unchanged.
    assert!(matches!(
        r.set_alias("m", "champion", 2, Some(Some(3)), "", "bob"),
        Err(RegistryError::Conflict(_))
    ));
    assert_eq!(r.alias("m", "champion").unwrap().version, 1);
    r.set_alias("m", "champion", 2, Some(Some(1)), "better ndcg", "bob")
        .unwrap();
    r.set_alias("m", "champion", 3, None, "", "carol").unwrap();
    assert!(matches!(
        r.set_alias("m", "champion", 9, None, "", "carol"),
        Err(RegistryError::NotFound(_))
    ));
    let h = r.alias_history("m", "champion").unwrap();
    let moves: Vec<(Option<u32>, Option<u32>, &str)> =
        h.iter().map(|m| (m.from, m.to, m.actor.as_str())).collect();
    assert_eq!(
        moves,
        vec![
            (None, Some(1), "alice"),
            (Some(1), Some(2), "bob"),
            (Some(2), Some(3), "carol")
        ]
    );
    assert_eq!(h[1].reason, "better ndcg");
    // A version an alias points at cannot be deleted; others can, and their blobs go.
    let err = r.delete_version("m", 3, "a", &none).unwrap_err();
    assert!(matches!(err, RegistryError::Conflict(_)) && err.to_string().contains("champion"));
    let err = r
        .delete_version("m", 2, "a", &|_, v| {
            (v == 2).then(|| "field docs.vec is bound to it".into())
        })
        .unwrap_err();
    assert!(err.to_string().contains("docs.vec"), "{err}");
    let blobs_before = count_files(&dir.path().join("blobs/sha256"));
    r.delete_version("m", 1, "a", &none).unwrap();
    assert!(count_files(&dir.path().join("blobs/sha256")) < blobs_before);
    assert!(matches!(r.version("m", 1), Err(RegistryError::NotFound(_))));
    // History survives the alias being deleted, and a restart.
    r.delete_alias("m", "champion", "a").unwrap();
    drop(r);
    let r = Registry::open(dir.path()).unwrap();
    assert!(matches!(
        r.alias("m", "champion"),
        Err(RegistryError::NotFound(_))
    ));
    assert_eq!(r.alias_history("m", "champion").unwrap().len(), 4);
    assert_eq!(r.model("m").unwrap().versions, vec![2, 3]);
    // Numbers are never reused.
    let v = r
        .register_version("m", files("4"), new_version(8), "a")
        .unwrap();
    assert_eq!(v.version, 4);
}

fn count_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for d in std::fs::read_dir(dir).unwrap().flatten() {
        n += std::fs::read_dir(d.path()).map_or(0, |r| r.count());
    }
    n
}

#[test]
fn audit_chain_verifies_and_catches_an_edited_event() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = Registry::open(dir.path()).unwrap();
        r.create_model("m", "", "alice").unwrap();
        r.register_version("m", files("1"), new_version(8), "alice")
            .unwrap();
        r.register_version("m", files("2"), new_version(8), "alice")
            .unwrap();
        r.set_alias("m", "prod", 1, None, "", "alice").unwrap();
        let rep = r.verify_audit().unwrap();
        assert!(
            rep.ok && rep.events == 4 && rep.first_bad.is_none(),
            "{rep:?}"
        );
        let ev = r.audit(2).unwrap();
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(ev[0].prev, r.audit(0).unwrap()[1].hash);
        assert_eq!(ev[1].kind, "alias_set");
    }
    // Someone edits event 2 (the alias target would change on replay).
    let log = dir.path().join("audit.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[1] = lines[1].replace("\"alice\"", "\"mallory\"");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let r = Registry::open(dir.path()).unwrap();
    let rep = r.verify_audit().unwrap();
    assert!(!rep.ok);
    assert_eq!(rep.first_bad.as_ref().unwrap().seq, 2, "{rep:?}");
    assert_eq!(rep.events, 1);
    // Nothing after the broken link is acted on, and changes are refused.
    assert_eq!(r.model("m").unwrap().versions, Vec::<u32>::new());
    assert!(matches!(
        r.create_model("other", "", "a"),
        Err(RegistryError::Conflict(_))
    ));
}

#[test]
fn a_torn_last_event_is_dropped_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = Registry::open(dir.path()).unwrap();
        r.create_model("m", "", "a").unwrap();
        r.create_model("n", "", "a").unwrap();
    }
    let log = dir.path().join("audit.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let keep = bytes.len() - 20; // cut into the middle of the second event
    bytes.truncate(keep);
    std::fs::write(&log, &bytes).unwrap();
    let r = Registry::open(dir.path()).unwrap();
    assert!(r.verify_audit().unwrap().ok);
    assert_eq!(r.list_models().len(), 1);
    r.create_model("o", "", "a").unwrap();
    drop(r);
    let r = Registry::open(dir.path()).unwrap();
    let rep = r.verify_audit().unwrap();
    assert!(rep.ok && rep.events == 2, "{rep:?}");
    // A last line of zeros (power cut) is torn too.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[0u8; 30]);
    bytes.push(b'\n');
    std::fs::write(&log, &bytes).unwrap();
    drop(r);
    let r = Registry::open(dir.path()).unwrap();
    assert!(r.verify_audit().unwrap().ok);
    assert_eq!(r.list_models().len(), 2);
}

#[test]
fn versions_from_a_server_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("1_Pooling")).unwrap();
    std::fs::write(src.path().join("config.json"), b"{}").unwrap();
    std::fs::write(src.path().join("1_Pooling/config.json"), b"{\"mean\":true}").unwrap();
    let r = Registry::open(dir.path()).unwrap();
    r.create_model("m", "", "a").unwrap();
    let v = r
        .register_version(
            "m",
            ArtifactSource::Path(src.path().into()),
            new_version(8),
            "a",
        )
        .unwrap();
    let paths: Vec<&str> = v.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["1_Pooling/config.json", "config.json"]);
    assert_eq!(
        r.read_file("m", 1, "1_Pooling/config.json").unwrap(),
        b"{\"mean\":true}"
    );
    let one = r
        .register_version(
            "m",
            ArtifactSource::Path(src.path().join("config.json")),
            new_version(8),
            "a",
        )
        .unwrap();
    assert_eq!(one.files[0].path, "config.json");
    assert!(matches!(
        r.register_version(
            "m",
            ArtifactSource::Path("/no/such/dir".into()),
            new_version(8),
            "a"
        ),
        Err(RegistryError::BadRequest(_))
    ));
}

#[test]
fn field_bindings_fix_the_space_and_protect_the_version() {
    use quiver_registry::BindField;
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::open(dir.path()).unwrap();
    r.create_model("m", "", "a").unwrap();
    let v1 = r
        .register_version("m", files("1"), new_version(8), "a")
        .unwrap();
    let v2 = r
        .register_version("m", files("2"), new_version(8), "a")
        .unwrap();
    let v3 = r
        .register_version("m", files("3"), new_version(16), "a")
        .unwrap();
    let req = |v: u32| BindField {
        db: "default".into(),
        collection: "docs".into(),
        collection_id: 42,
        field: "vec".into(),
        model: "m".into(),
        version: v,
    };
    let b = r.bind_field(req(1), false, "initial", "alice").unwrap();
    assert_eq!((b.version, b.space_id.as_str()), (1, v1.space_id.as_str()));
    // Same space, data present: allowed (v2 produces comparable vectors).
    assert_eq!(
        r.bind_field(req(2), true, "", "bob").unwrap().space_id,
        v2.space_id
    );
    // Another space with data present: refused.
    let err = r.bind_field(req(3), true, "", "bob").unwrap_err();
    assert!(
        matches!(err, RegistryError::Conflict(_)) && err.to_string().contains("migration"),
        "{err}"
    );
    assert_eq!(r.binding(42, "vec").unwrap().version, 2);
    // The bound version cannot be deleted.
    let err = r.delete_version("m", 2, "a", &none).unwrap_err();
    assert!(err.to_string().contains("docs"), "{err}");
    assert!(matches!(
        r.bind_field(req(9), false, "", "a"),
        Err(RegistryError::NotFound(_))
    ));
    drop(r);
    let r = Registry::open(dir.path()).unwrap();
    assert_eq!(r.binding(42, "vec").unwrap().space_id, v2.space_id);
    r.bind_field(req(3), false, "empty again", "a").unwrap();
    assert_eq!(r.binding(42, "vec").unwrap().space_id, v3.space_id);
    r.unbind_field(42, "vec", "a").unwrap();
    assert!(r.binding(42, "vec").is_none());
    r.delete_version("m", 2, "a", &none).unwrap();
    let kinds: Vec<String> = r.audit(0).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "binding_set").count(), 3);
    assert!(r.verify_audit().unwrap().ok);
}

#[test]
fn serving_aliases_promote_with_cas_and_roll_back() {
    use quiver_registry::Bundle;
    let dir = tempfile::tempdir().unwrap();
    let bundle = |c: &str| Bundle {
        db: "default".into(),
        collection: c.into(),
        field: "vec".into(),
        model: Some("m".into()),
        version: Some(1),
        index: None,
        search_params: serde_json::json!({"ef": 64}),
    };
    {
        let r = Registry::open(dir.path()).unwrap();
        let s = r
            .create_serving("prod", bundle("a"), "launch", "alice")
            .unwrap();
        assert_eq!((s.revision, s.bundle.collection.as_str()), (1, "a"));
        assert!(matches!(
            r.create_serving("prod", bundle("b"), "", "bob"),
            Err(RegistryError::Conflict(_))
        ));
        assert!(matches!(
            r.rollback_serving("prod", None, None, "", vec![], "bob"),
            Err(RegistryError::Conflict(_))
        ));
        // CAS on the revision.
        assert!(matches!(
            r.promote_serving("prod", bundle("b"), 7, "", vec![], "bob"),
            Err(RegistryError::Conflict(_))
        ));
        let s = r
            .promote_serving(
                "prod",
                bundle("b"),
                1,
                "wins A/B",
                vec!["exp-1".into()],
                "bob",
            )
            .unwrap();
        assert_eq!((s.revision, s.bundle.collection.as_str()), (2, "b"));
        r.promote_serving("prod", bundle("c"), 2, "", vec![], "bob")
            .unwrap();
        // Roll back to the previous revision (b), then to revision 1 (a).
        let s = r
            .rollback_serving(
                "prod",
                None,
                Some(3),
                "c regressed",
                vec!["alert-9".into()],
                "carol",
            )
            .unwrap();
        assert_eq!((s.revision, s.bundle.collection.as_str()), (4, "b"));
        let s = r
            .rollback_serving("prod", Some(1), None, "", vec![], "carol")
            .unwrap();
        assert_eq!((s.revision, s.bundle.collection.as_str()), (5, "a"));
        assert!(matches!(
            r.rollback_serving("prod", Some(99), None, "", vec![], "carol"),
            Err(RegistryError::NotFound(_))
        ));
    }
    let r = Registry::open(dir.path()).unwrap();
    let h = r.serving_history("prod").unwrap();
    let kinds: Vec<(&str, Option<u32>)> = h.iter().map(|x| (x.kind.as_str(), x.restored)).collect();
    assert_eq!(
        kinds,
        vec![
            ("created", None),
            ("promoted", None),
            ("promoted", None),
            ("rolled_back", Some(2)),
            ("rolled_back", Some(1))
        ]
    );
    assert_eq!(h[1].evidence, vec!["exp-1".to_string()]);
    assert_eq!(h[3].evidence, vec!["alert-9".to_string()]);
    // A rollback with a stale expected revision is refused.
    assert!(matches!(
        r.rollback_serving("prod", None, Some(1), "", vec![], "dave"),
        Err(RegistryError::Conflict(_))
    ));
    assert_eq!(r.serving("prod").unwrap().revision, 5);
    let kept = r.kept_collections();
    for c in ["a", "b", "c"] {
        assert!(
            kept.contains(&("default".to_string(), c.to_string())),
            "{c}"
        );
    }
    assert!(r.verify_audit().unwrap().ok);
}

fn migration(collection_id: u64) -> quiver_registry::Migration {
    quiver_registry::Migration {
        id: String::new(),
        db: "default".into(),
        collection: format!("c{collection_id}"),
        collection_id,
        source_field: "text".into(),
        target_field: "vec2".into(),
        model: "m".into(),
        version: 1,
        space_id: String::new(),
        batch_size: 64,
        max_rows_per_s: Some(10.0),
        state: String::new(),
        paused: false,
        error: None,
        created_ms: 0,
        updated_ms: 0,
        created_by: String::new(),
    }
}

#[test]
fn migrations_are_audited_records_with_one_active_per_collection() {
    use quiver_registry::migrations::{ABORTED, BACKFILLING, FAILED, PENDING, READY};
    let dir = tempfile::tempdir().unwrap();
    {
        let r = Registry::open(dir.path()).unwrap();
        // The model must exist.
        assert!(matches!(
            r.create_migration(migration(7), "ann"),
            Err(RegistryError::NotFound(_))
        ));
        r.create_model("m", "", "ann").unwrap();
        let m = r.create_migration(migration(7), "ann").unwrap();
        assert_eq!((m.id.as_str(), m.state.as_str()), ("mig-1", PENDING));
        assert_eq!(m.created_by, "ann");
        // One active migration per collection; another collection is fine.
        assert!(matches!(
            r.create_migration(migration(7), "ann"),
            Err(RegistryError::Conflict(_))
        ));
        let other = r.create_migration(migration(8), "bob").unwrap();
        assert_eq!(other.id, "mig-2");
        r.update_migration("mig-1", BACKFILLING, false, None, "quiver")
            .unwrap();
        r.update_migration("mig-1", BACKFILLING, true, None, "ann")
            .unwrap();
        r.update_migration("mig-1", FAILED, true, Some("row 3 has no text"), "quiver")
            .unwrap();
        r.update_migration("mig-2", ABORTED, false, None, "bob")
            .unwrap();
        // A finished migration cannot change; an unknown one is not found.
        assert!(matches!(
            r.update_migration("mig-2", BACKFILLING, false, None, "bob"),
            Err(RegistryError::Conflict(_))
        ));
        assert!(matches!(
            r.update_migration("mig-9", READY, false, None, "bob"),
            Err(RegistryError::NotFound(_))
        ));
        // After an abort the collection can migrate again.
        assert_eq!(r.create_migration(migration(8), "bob").unwrap().id, "mig-3");
    }
    // The records are the fold of the audit log.
    let r = Registry::open(dir.path()).unwrap();
    let m = r.migration("mig-1").unwrap();
    assert_eq!(m.state, FAILED);
    assert!(m.paused);
    assert_eq!(m.error.as_deref(), Some("row 3 has no text"));
    assert_eq!(m.max_rows_per_s, Some(10.0));
    assert_eq!(r.migration("mig-2").unwrap().state, ABORTED);
    assert_eq!(
        r.migrations()
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        vec!["mig-1", "mig-2", "mig-3"]
    );
    let kinds: Vec<String> = r
        .audit(0)
        .unwrap()
        .into_iter()
        .filter(|e| e.subject.starts_with("migration:"))
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "migration_created").count(),
        3
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "migration_updated").count(),
        4
    );
    assert!(r.verify_audit().unwrap().ok);
}

#[test]
fn eval_sets_are_versioned_kept_by_gc_and_replayed() {
    use quiver_registry::EvalData;
    let dir = tempfile::tempdir().unwrap();
    let corpus = "{\"_id\": \"d1\", \"text\": \"red apples\"}\n{\"_id\": \"d2\", \"title\": \"T\", \"text\": \"pears\", \"judged\": false}\n";
    let queries = "{\"_id\": \"q1\", \"text\": \"apples\"}\n";
    let data = EvalData::from_beir(
        corpus,
        queries,
        &["query-id\tcorpus-id\tscore\nq1\td1\t2\n"],
    )
    .unwrap();
    assert!(data.has_judged_flags());
    assert_eq!(data.corpus[1].title, "T");
    let other = EvalData::from_beir(corpus, queries, &["q1\td2\t1\n"]).unwrap();
    let (s1, s2);
    {
        let r = Registry::open(dir.path()).unwrap();
        s1 = r.create_eval_set("tiny", &data, "upload", "alice").unwrap();
        assert_eq!(
            (s1.version, s1.documents, s1.queries, s1.judgments),
            (1, 2, 1, 1)
        );
        // Identical content is the same version; new content a new one.
        assert_eq!(
            r.create_eval_set("tiny", &data, "again", "bob").unwrap(),
            s1
        );
        s2 = r.create_eval_set("tiny", &other, "upload", "bob").unwrap();
        assert_eq!(s2.version, 2);
        assert_ne!(s1.sha256, s2.sha256);
        // Deleting a model version collects unused blobs, but not the eval sets'.
        r.create_model("m", "", "alice").unwrap();
        r.register_version("m", files("a"), new_version(8), "alice")
            .unwrap();
        r.delete_version("m", 1, "alice", &none).unwrap();
        assert_eq!(r.eval_data(&s1).unwrap(), data);
        let id = r
            .record_evaluation(
                serde_json::json!({"ndcg": 0.5}),
                &serde_json::json!({"report": [1, 2]}),
                "alice",
            )
            .unwrap();
        assert_eq!(id, "eval-1");
    }
    let r = Registry::open(dir.path()).unwrap();
    assert_eq!(r.eval_set("tiny", None).unwrap(), s2);
    assert_eq!(r.eval_set("tiny", Some(1)).unwrap(), s1);
    assert_eq!(r.eval_data(&s2).unwrap(), other);
    assert_eq!(
        r.evaluation("eval-1").unwrap(),
        serde_json::json!({"report": [1, 2]})
    );
    assert!(matches!(
        r.eval_set("tiny", Some(9)),
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        r.evaluation("eval-9"),
        Err(RegistryError::NotFound(_))
    ));
    // Bad sets: unknown ids in qrels, duplicates, nothing relevant.
    for (c, q, j) in [
        (corpus, queries, "q1\tnope\t1\n"),
        (corpus, queries, "q9\td1\t1\n"),
        (corpus, queries, "q1\td1\t0\n"),
        (
            corpus,
            "{\"_id\": \"q1\", \"text\": \"a\"}\n{\"_id\": \"q1\", \"text\": \"b\"}\n",
            "q1\td1\t1\n",
        ),
        ("not json\n", queries, "q1\td1\t1\n"),
    ] {
        assert!(
            matches!(
                EvalData::from_beir(c, q, &[j]),
                Err(RegistryError::BadRequest(_))
            ),
            "{c} {q} {j}"
        );
    }
    assert!(r.verify_audit().unwrap().ok);
}

#[test]
fn experiments_are_audited_and_survive_reopen() {
    use quiver_registry::experiments::{PAUSED, PROMOTED, RUNNING};
    use quiver_registry::{Bundle, Experiment, Guardrail};
    let dir = tempfile::tempdir().unwrap();
    let bundle = |field: &str| Bundle {
        db: "default".into(),
        collection: "docs".into(),
        field: field.into(),
        model: None,
        version: None,
        index: None,
        search_params: serde_json::json!({}),
    };
    let r = Registry::open(dir.path()).unwrap();
    r.create_serving("prod", bundle("vec"), "", "alice")
        .unwrap();
    let x = Experiment {
        id: String::new(),
        alias: "prod".into(),
        mode: "shadow".into(),
        champion_revision: 1,
        champion: bundle("vec"),
        challenger: bundle("vec2"),
        traffic: 0.3,
        shadow_sample: 0.0,
        assignment: serde_json::json!({"header": "client-request-id"}),
        guardrails: vec![Guardrail {
            metric: "overlap".into(),
            min: Some(0.5),
            max: None,
            action: "pause".into(),
            min_samples: 20,
        }],
        decision: None,
        on_success: "notify".into(),
        k: 10,
        cpu_budget: 0.25,
        status: String::new(),
        outcome: None,
        snapshot: None,
        reason: "v2".into(),
        created_ms: 0,
        updated_ms: 0,
        created_by: String::new(),
    };
    // The champion revision must be the alias's current one.
    let stale = Experiment {
        champion_revision: 7,
        ..x.clone()
    };
    assert!(matches!(
        r.create_experiment(stale, "alice"),
        Err(RegistryError::Conflict(_))
    ));
    let made = r.create_experiment(x.clone(), "alice").unwrap();
    assert_eq!((made.id.as_str(), made.status.as_str()), ("exp-1", RUNNING));
    // One active experiment per alias.
    assert!(matches!(
        r.create_experiment(x.clone(), "alice"),
        Err(RegistryError::Conflict(_))
    ));
    // Metrics with floats that do not print back the way they parse unless parsing is exact.
    let awkward: Vec<f64> = (1..200).map(|i| 1.0 / i as f64 + 0.1 * i as f64).collect();
    let snap = serde_json::json!({"overlap": 0.1 + 0.2, "values": awkward, "p": 2.5e-8});
    let paused = r
        .update_experiment(
            "exp-1",
            &[RUNNING],
            PAUSED,
            Some(serde_json::json!({"by": "guardrail"})),
            Some(snap.clone()),
            "experiment",
        )
        .unwrap();
    assert_eq!(paused.status, PAUSED);
    // A state it may not leave from.
    assert!(matches!(
        r.update_experiment("exp-1", &[RUNNING], PROMOTED, None, None, "bob"),
        Err(RegistryError::Conflict(_))
    ));
    assert!(r.verify_audit().unwrap().ok);
    drop(r);
    let r = Registry::open(dir.path()).unwrap();
    let back = r.experiment("exp-1").unwrap();
    assert_eq!(back.status, PAUSED);
    assert_eq!(back.snapshot, Some(snap));
    assert_eq!(back.guardrails, x.guardrails);
    assert!(r.verify_audit().unwrap().ok);
    assert_eq!(r.experiments(Some("prod")).len(), 1);
    assert!(r.experiments(Some("other")).is_empty());
}
