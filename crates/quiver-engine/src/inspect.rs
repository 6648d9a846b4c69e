//! Read-only views of on-disk files for operators (`quiver inspect ...`). Nothing here writes.

use std::fmt::Write as _;
use std::path::Path;

use quiver_core::codec::{decode_column, Reader};
use quiver_core::storage::open_envelope;
use quiver_core::{ColumnData, Error, Result};

use crate::catalog::Catalog;
use crate::manifest::Manifest;
use crate::segment::{SEGMENT_MAGIC, SEGMENT_VERSION};

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("read", path, e))
}

fn type_name(d: &ColumnData) -> String {
    match d {
        ColumnData::Bool(_) => "Bool".into(),
        ColumnData::Int8(_) => "Int8".into(),
        ColumnData::Int16(_) => "Int16".into(),
        ColumnData::Int32(_) => "Int32".into(),
        ColumnData::Int64(_) => "Int64".into(),
        ColumnData::Float(_) => "Float".into(),
        ColumnData::Double(_) => "Double".into(),
        ColumnData::VarChar(_) => "VarChar".into(),
        ColumnData::Json(_) => "JSON".into(),
        ColumnData::Array(_) => "Array".into(),
        ColumnData::Vector(v) => format!("{}(dim={})", v.data_type().name(), v.dim),
        ColumnData::Sparse(v) => format!("SparseFloatVector(nnz={})", v.indices.len()),
    }
}

/// Describe a segment file: header, and per column its field id, type, nulls and first values.
pub fn segment(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    let (version, body) = open_envelope(SEGMENT_MAGIC, SEGMENT_VERSION, path, &bytes)?;
    let mut r = Reader::new(body);
    let bad = |e: quiver_core::codec::DecodeError| Error::corrupt(path, 24, e.0);
    let id = r.u64("segment id").map_err(bad)?;
    let partition = r.u64("partition").map_err(bad)?;
    let rows = r.u64("rows").map_err(bad)?;
    let ncols = r.u32("column count").map_err(bad)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "segment file {}\n  format version {version}, {} bytes, checksum ok",
        path.display(),
        bytes.len()
    );
    let _ = writeln!(
        out,
        "  segment {id}, partition {partition}, {rows} rows, {ncols} columns"
    );
    for _ in 0..ncols {
        let fid = r.i64("field id").map_err(bad)?;
        let col = decode_column(&mut r).map_err(bad)?;
        let nulls = col
            .valid
            .as_ref()
            .map_or(0, |v| v.iter().filter(|x| !**x).count());
        let sample: Vec<String> = (0..col.len().min(3))
            .map(|i| {
                let s = col.cell(i).to_json().to_string();
                if s.len() > 60 {
                    format!(
                        "{}...",
                        &s[..s.char_indices().nth(57).map_or(s.len(), |c| c.0)]
                    )
                } else {
                    s
                }
            })
            .collect();
        let name = if fid == -1 {
            "$meta".to_string()
        } else {
            format!("field {fid}")
        };
        let _ = writeln!(
            out,
            "  {name}: {}, {nulls} nulls, first: [{}]",
            type_name(&col.data),
            sample.join(", ")
        );
    }
    Ok(out)
}

/// Describe the catalog of a data directory (or a catalog file) and each collection's manifest.
pub fn catalog(path: &Path) -> Result<String> {
    let (dir, file) = if path.is_dir() {
        (path.to_path_buf(), path.join(crate::catalog::CATALOG_KEY))
    } else {
        (
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            path.to_path_buf(),
        )
    };
    let cat = Catalog::decode(&file, &read(&file)?)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "catalog {} (version {}, next id {})",
        file.display(),
        cat.version,
        cat.next_id
    );
    for d in cat.databases.values() {
        let _ = writeln!(
            out,
            "database {} (id {}), aliases: {:?}",
            d.name, d.id, d.aliases
        );
        for c in cat.collections.values().filter(|c| c.db == d.name) {
            let fields: Vec<String> = c
                .schema
                .fields
                .iter()
                .map(|f| {
                    format!(
                        "{}:{}{}",
                        f.name,
                        f.data_type.name(),
                        if f.is_primary_key { "(pk)" } else { "" }
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "  collection {} (id {}): {}{}",
                c.name,
                c.id,
                fields.join(", "),
                if c.schema.enable_dynamic_field {
                    ", $meta"
                } else {
                    ""
                }
            );
            let parts: Vec<String> = c
                .partitions
                .iter()
                .map(|p| format!("{}({})", p.name, p.id))
                .collect();
            let _ = writeln!(out, "    partitions: {}", parts.join(", "));
            for i in &c.indexes {
                let _ = writeln!(out, "    index {} on {}: {:?}", i.name, i.field, i.params);
            }
            let mdir = dir.join(format!("collections/{}/manifest", c.id));
            let latest = std::fs::read_dir(&mdir).ok().and_then(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "man"))
                    .max()
            });
            match latest {
                None => {
                    let _ = writeln!(out, "    no manifest yet (all rows are in the WAL)");
                }
                Some(p) => match Manifest::decode(&p, &read(&p)?) {
                    Ok(m) => {
                        let rows: u64 = m.segments.iter().map(|s| s.rows).sum();
                        let del: u64 = m.segments.iter().map(|s| s.deleted).sum();
                        let _ = writeln!(out, "    manifest v{}: checkpoint LSN {}, {} sealed segments, {rows} rows, {del} deleted", m.version, m.checkpoint_lsn, m.segments.len());
                    }
                    Err(e) => {
                        let _ = writeln!(out, "    manifest {}: {e}", p.display());
                    }
                },
            }
        }
    }
    Ok(out)
}

/// Describe a manifest file.
pub fn manifest(path: &Path) -> Result<String> {
    let m = Manifest::decode(path, &read(path)?)?;
    Ok(serde_json::to_string_pretty(&m).unwrap_or_default())
}
