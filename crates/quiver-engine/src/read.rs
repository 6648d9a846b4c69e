//! Reads: query, get, search, counts, and the row matching they share.

use std::sync::Arc;

use quiver_core::{CollectionSchema, Error, Result};
use rayon::prelude::*;

use crate::catalog::CollectionMeta;
use crate::collection::State;
use crate::output::OutputSpec;
use crate::pk::Pk;
use crate::{
    filter, search, Engine, QueryRequest, QueryResult, SearchRequest, SearchResult, SegmentInfo,
    MAX_TOPK,
};

impl Engine {
    // ---------------------------------------------------------------- reads

    /// Rows matching a filter, ordered by primary key.
    pub fn query(&self, db: &str, coll: &str, req: &QueryRequest) -> Result<QueryResult> {
        let (meta, c) = self.collection(db, coll)?;
        let st = c.state.read();
        let schema = Arc::clone(&st.schema);
        let schema = &*schema;
        let want_count = req
            .output_fields
            .iter()
            .any(|f| f.trim().eq_ignore_ascii_case("count(*)"));
        if want_count && req.output_fields.len() > 1 {
            return Err(Error::InvalidArgument(
                "count(*) cannot be combined with other output fields".into(),
            ));
        }
        if !want_count && req.filter.trim().is_empty() && req.limit.is_none() {
            return Err(Error::InvalidArgument(
                "empty expression should be used with limit".into(),
            ));
        }
        if let Some(limit) = req.limit {
            if limit.saturating_add(req.offset) > MAX_TOPK {
                return Err(Error::InvalidArgument(format!(
                    "invalid max query result window, (offset+limit) should be in range [1, {MAX_TOPK}], but got {}",
                    limit.saturating_add(req.offset)
                )));
            }
        }
        let parts = self.partition_scope(&meta, &req.partitions)?;
        let plan = filter::compile(schema, &req.filter, &req.filter_params)?;
        let spec = if want_count {
            None
        } else {
            Some(OutputSpec::resolve(schema, &req.output_fields, true)?)
        };
        let rows = matching_rows(schema, &st, &plan, parts.as_deref())?;
        if want_count {
            return Ok(QueryResult {
                fields: vec![],
                output_names: vec!["count(*)".into()],
                count: Some(rows.len() as u64),
            });
        }
        let spec = spec.unwrap_or_else(|| OutputSpec {
            fields: vec![],
            dynamic: None,
            names: vec![],
        });
        let hits: Vec<(u64, u32)> = rows
            .into_iter()
            .skip(req.offset)
            .take(req.limit.unwrap_or(usize::MAX))
            .map(|(_, seg, row)| (seg, row))
            .collect();
        Ok(QueryResult {
            fields: spec.gather(schema, &st, &hits),
            output_names: spec.names.clone(),
            count: None,
        })
    }

    /// Rows by primary key (missing keys are skipped), ordered by key.
    pub fn get(
        &self,
        db: &str,
        coll: &str,
        pks: &[Pk],
        output_fields: &[String],
        partitions: &[String],
    ) -> Result<QueryResult> {
        let (meta, c) = self.collection(db, coll)?;
        let parts = self.partition_scope(&meta, partitions)?;
        let st = c.state.read();
        let spec = OutputSpec::resolve(&st.schema, output_fields, true)?;
        let mut keys: Vec<&Pk> = pks.iter().collect();
        keys.sort();
        keys.dedup();
        let hits: Vec<(u64, u32)> = keys
            .into_iter()
            .filter_map(|pk| st.pk_index.get(pk))
            .filter(|loc| {
                parts.as_ref().is_none_or(|p| {
                    st.segments
                        .get(&loc.seg)
                        .is_some_and(|s| p.contains(&s.partition))
                })
            })
            .map(|loc| (loc.seg, loc.row))
            .collect();
        Ok(QueryResult {
            fields: spec.gather(&st.schema, &st, &hits),
            output_names: spec.names.clone(),
            count: None,
        })
    }

    fn partition_scope(&self, meta: &CollectionMeta, names: &[String]) -> Result<Option<Vec<u64>>> {
        if names.is_empty() {
            return Ok(None);
        }
        names
            .iter()
            .map(|n| {
                meta.partition(n)
                    .map(|p| p.id)
                    .ok_or_else(|| Error::PartitionNotFound(n.clone()))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Top-k search: indexed sealed segments through their index (or exactly, when the filter
    /// leaves few candidates), the rest exactly. See search.rs.
    pub fn search(&self, db: &str, coll: &str, req: &SearchRequest) -> Result<SearchResult> {
        let (meta, c) = self.collection(db, coll)?;
        let st = c.state.read();
        let schema = Arc::clone(&st.schema);
        let schema = &*schema;
        let field = match &req.anns_field {
            Some(f) if !f.is_empty() => schema
                .field_index(f)
                .ok_or_else(|| Error::FieldNotFound(f.clone()))?,
            _ => {
                let v: Vec<usize> = schema.vector_fields().collect();
                if v.len() != 1 {
                    return Err(Error::InvalidArgument(
                        "multiple anns_fields exist, please specify a anns_field in search_params"
                            .into(),
                    ));
                }
                v[0]
            }
        };
        let fs = &schema.fields[field];
        if !fs.data_type.is_vector() {
            return Err(Error::InvalidArgument(format!(
                "field {} is not a vector field",
                fs.name
            )));
        }
        let dim = fs.dim();
        let binary = fs.data_type == quiver_core::DataType::BinaryVector;
        let bm25 = crate::text::bm25_of_output(schema, field)?;
        let analyzed: Vec<(Vec<u32>, Vec<f32>)>;
        let queries = if fs.data_type == quiver_core::DataType::SparseFloatVector {
            if !req.texts.is_empty() {
                let Some(f) = &bm25 else {
                    return Err(Error::InvalidArgument(format!(
                        "field {} is not the output of a BM25 function: search it with sparse vectors, not text",
                        fs.name
                    )));
                };
                analyzed = req
                    .texts
                    .iter()
                    .map(|t| f.analyzer.term_frequencies(t))
                    .collect();
                search::Queries::Sparse(&analyzed)
            } else {
                if req.sparse_vectors.is_empty() {
                    return Err(Error::InvalidArgument(if bm25.is_some() {
                        format!(
                            "field {} is the output of a BM25 function: search it with query texts",
                            fs.name
                        )
                    } else {
                        format!(
                            "field {} holds sparse vectors: search it with sparse query vectors",
                            fs.name
                        )
                    }));
                }
                for (i, v) in &req.sparse_vectors {
                    quiver_core::value::check_sparse(&fs.name, i, v)?;
                }
                search::Queries::Sparse(&req.sparse_vectors)
            }
        } else if binary {
            if req.binary_vectors.is_empty() {
                return Err(Error::InvalidArgument(if req.vectors.is_empty() {
                    "no query vectors".into()
                } else {
                    format!(
                        "field {} holds binary vectors: search it with binary query vectors",
                        fs.name
                    )
                }));
            }
            for v in &req.binary_vectors {
                if v.len() * 8 != dim {
                    return Err(Error::DimMismatch {
                        field: fs.name.clone(),
                        expected: dim,
                        got: v.len() * 8,
                    });
                }
            }
            search::Queries::Binary(&req.binary_vectors)
        } else {
            if req.vectors.is_empty() {
                return Err(Error::InvalidArgument(if req.binary_vectors.is_empty() {
                    "no query vectors".into()
                } else {
                    format!(
                        "field {} holds {} vectors: binary query vectors do not apply",
                        fs.name,
                        fs.data_type.name()
                    )
                }));
            }
            for v in &req.vectors {
                if v.len() != dim {
                    return Err(Error::DimMismatch {
                        field: fs.name.clone(),
                        expected: dim,
                        got: v.len(),
                    });
                }
                quiver_core::value::check_finite(&fs.name, v)?;
            }
            search::Queries::F32(&req.vectors)
        };
        let index_metric = meta
            .index_on(&fs.name)
            .and_then(|i| i.metric())
            .map(str::to_string);
        let metric_name = match (&req.metric, &index_metric) {
            (Some(m), Some(im)) if !m.is_empty() && !m.eq_ignore_ascii_case(im) => {
                return Err(Error::InvalidArgument(format!(
                    "metric type not match: invalid parameter[expected={im}][actual={m}]"
                )));
            }
            (Some(m), _) if !m.is_empty() => m.clone(),
            (_, Some(im)) => im.clone(),
            _ if bm25.is_some() => "BM25".to_string(),
            _ => search::VMetric::default_name(fs.data_type).to_string(),
        };
        let metric = search::VMetric::parse(&metric_name, fs.data_type)?;
        check_sparse_metric(&fs.name, metric, bm25.is_some())?;
        let sparse = match meta.index_on(&fs.name) {
            Some(ix) if fs.data_type == quiver_core::DataType::SparseFloatVector => {
                search::SparseParams::from_index(&ix.params)?
            }
            _ => search::SparseParams::default(),
        }
        .with_search(&req.params)?;
        search::check_limits(req.limit, req.offset)?;
        let num = |k: &str| {
            req.params.get(k).and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let radius = req.radius.or_else(|| num("radius"));
        let range_filter = req.range_filter.or_else(|| num("range_filter"));
        let range = match (radius, range_filter) {
            (None, None) => None,
            (Some(r), rf) => {
                let rf = rf.unwrap_or(if metric.higher_is_better() {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                });
                let ok = if metric.higher_is_better() {
                    r < rf
                } else {
                    r > rf
                };
                if !ok {
                    return Err(Error::InvalidArgument(format!(
                        "range_filter {rf} and radius {r} are inconsistent for metric {metric_name} (need {})",
                        if metric.higher_is_better() { "radius < range_filter" } else { "range_filter < radius" }
                    )));
                }
                Some((r as f32, rf as f32))
            }
            (None, Some(_)) => {
                return Err(Error::InvalidArgument("range_filter needs radius".into()))
            }
        };
        let group_by = match &req.group_by {
            Some(g) if !g.is_empty() => {
                let gi = schema
                    .field_index(g)
                    .ok_or_else(|| Error::FieldNotFound(g.clone()))?;
                let t = schema.fields[gi].data_type;
                if t.is_vector()
                    || matches!(
                        t,
                        quiver_core::DataType::Json
                            | quiver_core::DataType::Array
                            | quiver_core::DataType::Float
                            | quiver_core::DataType::Double
                    )
                {
                    return Err(Error::InvalidArgument(format!(
                        "group by is not supported on field {g} of type {}",
                        t.name()
                    )));
                }
                Some(gi)
            }
            _ => None,
        };
        let group_size = req.group_size.unwrap_or(1).max(1);
        let parts = self.partition_scope(&meta, &req.partitions)?;
        let filter = filter::compile(schema, &req.filter, &req.filter_params)?;
        let out = OutputSpec::resolve(schema, &req.output_fields, false)?;
        // Index search parameters are validated against the field's index (Milvus's ranges).
        let def = match req.index_id {
            None => c.index_def(field),
            Some(id) => match c.known_index_def(id) {
                Some(d) if d.field == field => Some(d),
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "field {} has no index with id {id}",
                        schema.fields[field].name
                    )))
                }
            },
        };
        let index = match def {
            Some(d) if d.needs_build() && !req.exact => Some((
                d.id,
                quiver_index::parse_search_params(&d.spec, &req.params)
                    .map_err(crate::index::index_error)?,
            )),
            _ => None,
        };
        let plan = search::Plan {
            field,
            dim,
            metric,
            index,
            sparse,
            filter: &filter,
            partitions: parts,
            k: req.offset + req.limit,
            range,
            group_by,
            group_size,
        };
        Ok(search::execute(
            schema, &st, &plan, queries, req.offset, &out,
        ))
    }

    /// The segments of a collection (in id order).
    pub fn segments(&self, db: &str, coll: &str) -> Result<Vec<SegmentInfo>> {
        let (_, c) = self.collection(db, coll)?;
        let st = c.state.read();
        Ok(st
            .segments
            .values()
            .map(|s| SegmentInfo {
                id: s.id,
                partition: s.partition,
                rows: s.rows() as u64,
                deleted: s.deleted.len(),
                sealed: s.sealed,
                persisted: s.persisted,
                index_ids: s.indexes.iter().map(|i| i.index_id).collect(),
            })
            .collect())
    }

    /// Live rows of a collection (or of some partitions).
    pub fn row_count(&self, db: &str, coll: &str, partitions: &[String]) -> Result<u64> {
        let (meta, c) = self.collection(db, coll)?;
        let parts = self.partition_scope(&meta, partitions)?;
        let st = c.state.read();
        Ok(match parts {
            None => st.live_rows() as u64,
            Some(p) => st
                .segments
                .values()
                .filter(|s| p.contains(&s.partition))
                .map(|s| s.live_rows() as u64)
                .sum(),
        })
    }
}

/// BM25 scores only the output of a BM25 function, and such an output only by BM25.
pub(crate) fn check_sparse_metric(field: &str, metric: search::VMetric, bm25: bool) -> Result<()> {
    match metric {
        search::VMetric::Sparse(search::SparseMetric::Bm25) if !bm25 => {
            Err(Error::InvalidArgument(format!(
                "metric BM25 applies only to the output field of a BM25 function; {field} is not one (use IP)"
            )))
        }
        search::VMetric::Sparse(search::SparseMetric::Ip) if bm25 => {
            Err(Error::InvalidArgument(format!(
                "field {field} is the output of a BM25 function: its metric must be BM25, not IP"
            )))
        }
        _ => Ok(()),
    }
}

/// Every live row passing `filter` (and in `partitions`), as (key, segment, row), by key.
pub(crate) fn matching_rows(
    schema: &CollectionSchema,
    st: &State,
    plan: &quiver_expr::Filter,
    partitions: Option<&[u64]>,
) -> Result<Vec<(Pk, u64, u32)>> {
    let pk_col = schema.pk_index();
    let in_scope = |seg: u64| {
        partitions.is_none_or(|p| {
            st.segments
                .get(&seg)
                .is_some_and(|s| p.contains(&s.partition))
        })
    };
    let mut rows: Vec<(Pk, u64, u32)> = if let Some(keys) = plan.pk_lookup(pk_col) {
        let varchar = schema.fields[pk_col].data_type == quiver_core::DataType::VarChar;
        let mut out = Vec::new();
        for k in keys {
            let pk = match (k, varchar) {
                (quiver_expr::PkLiteral::Int(i), false) => Pk::Int(i),
                (quiver_expr::PkLiteral::Str(s), true) => Pk::Str(s),
                _ => continue,
            };
            if let Some(loc) = st.pk_index.get(&pk) {
                if in_scope(loc.seg) {
                    out.push((pk, loc.seg, loc.row));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    } else {
        let all = plan.is_always_true();
        let segs: Vec<_> = st.segments.values().filter(|s| in_scope(s.id)).collect();
        segs.par_iter()
            .flat_map_iter(|s| {
                (0..s.rows()).filter_map(move |r| {
                    if s.is_live(r)
                        && (all
                            || plan.eval(&filter::SegRow {
                                data: &s.data,
                                row: r,
                            }))
                    {
                        Some((Pk::at(&s.data.columns[pk_col], r), s.id, r as u32))
                    } else {
                        None
                    }
                })
            })
            .collect()
    };
    rows.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(rows)
}
