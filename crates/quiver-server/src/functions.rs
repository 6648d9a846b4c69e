//! Schema functions the server runs: `TextEmbedding` (Milvus `FunctionType` 2).
//!
//! A TextEmbedding function turns one VARCHAR input field into one FLOAT_VECTOR output field
//! with a model version from the registry, run in process ([`Embedders`], quiver-embed). Its
//! params name the model as Milvus's do: `model_name` (or `model`) is `name@version`, or
//! `name@alias` for a model alias, resolved once when the collection is created; `provider`,
//! when given, must be `quiver` (Quiver calls no external embedding service).
//!
//! Invariants:
//! - Creating the collection binds the output field to the resolved version (the registry's
//!   field binding, with dim / type / metric checks), so the field declares its model like any
//!   bound field; every later embedding uses the *binding's* version, never the alias again.
//!   Vectors in the field therefore always come from the model the field declares.
//! - Writes never carry the output field (pymilvus leaves function outputs out; a client that
//!   sends it is refused): the server embeds the input texts with the `document` prefix and
//!   adds the column before the engine sees the batch, so the WAL holds the vectors and recovery
//!   never re-runs a model.
//! - A search whose query is text (`data=["..."]`, a VARCHAR placeholder) on an output field is
//!   embedded with the `query` prefix; text against any other field is refused.
//! - BM25 functions (type 1) are the engine's: it checks them when the collection is created,
//!   computes the output's term counts on every write and analyses query texts
//!   (`quiver_engine::text`); this module only lets them through.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use quiver_core::schema::FunctionSchema;
use quiver_core::{CollectionSchema, DataType, Error, Result};
use quiver_registry::{Registry, RegistryError};

use crate::proto::schema::{self as pb, field_data::Field, scalar_field::Data as Sd};

/// Milvus `FunctionType` numbers.
pub const BM25: i32 = 1;
pub const TEXT_EMBEDDING: i32 = 2;

/// Loaded encoders by version hash (a model is loaded once, on first use), over the registry.
pub struct Embedders {
    pub registry: Arc<Registry>,
    encoders: Mutex<HashMap<String, Arc<quiver_embed::Encoder>>>,
}

impl std::fmt::Debug for Embedders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedders")
            .field("loaded", &self.encoders.lock().len())
            .finish()
    }
}

/// Which prefix of the version's space applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Query,
    Document,
}

impl Embedders {
    pub fn new(registry: Arc<Registry>) -> Embedders {
        Embedders {
            registry,
            encoders: Mutex::new(HashMap::new()),
        }
    }

    /// Embed `inputs` with `name@v`: its files (verified) as a directory, its encoder loaded
    /// once, the space's prefix for `role`, normalised when the space says so; the encoder
    /// must produce the space's dim.
    pub fn embed(
        &self,
        name: &str,
        v: u32,
        inputs: &[String],
        role: Role,
    ) -> Result<(Vec<Vec<f32>>, quiver_registry::VersionInfo), RegistryError> {
        let ver = self.registry.version(name, v)?;
        let cached = self.encoders.lock().get(&ver.sha256).cloned();
        let enc = match cached {
            Some(e) => e,
            None => {
                let dir = self.registry.materialize(name, v)?;
                let e = Arc::new(quiver_embed::Encoder::load(&dir).map_err(|e| {
                    RegistryError::BadRequest(format!(
                        "{name}@{v} cannot be run as a sentence-transformers BERT encoder: {e}"
                    ))
                })?);
                self.encoders
                    .lock()
                    .insert(ver.sha256.clone(), Arc::clone(&e));
                e
            }
        };
        if enc.dim() != ver.space.dim as usize {
            return Err(RegistryError::Conflict(format!(
                "{name}@{v} produces {}-d vectors but its space says dim {}",
                enc.dim(),
                ver.space.dim
            )));
        }
        // The space is the version's contract: an encoder that pools otherwise would produce
        // vectors the space_id does not describe.
        let pooling = match enc.pooling() {
            quiver_embed::Pooling::Mean => "mean",
            quiver_embed::Pooling::Cls => "cls",
            quiver_embed::Pooling::Max => "max",
        };
        if pooling != ver.space.pooling {
            return Err(RegistryError::Conflict(format!(
                "{name}@{v}'s space says pooling {} but the model pools with {pooling} \
                 (1_Pooling/config.json); register a version whose space matches the model",
                ver.space.pooling
            )));
        }
        let prefix = match role {
            Role::Query => &ver.space.query_prefix,
            Role::Document => &ver.space.document_prefix,
        };
        let texts: Vec<String> = inputs.iter().map(|t| format!("{prefix}{t}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut vectors = enc
            .embed(&refs)
            .map_err(|e| RegistryError::BadRequest(e.to_string()))?;
        if ver.space.normalize && !enc.normalizes() {
            for v in &mut vectors {
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= n);
            }
        }
        Ok((vectors, ver))
    }
}

/// Registry errors as Milvus errors.
pub fn registry_error(e: RegistryError) -> Error {
    match e {
        RegistryError::BadRequest(m) | RegistryError::NotFound(m) => Error::InvalidArgument(m),
        RegistryError::Conflict(m) => Error::FailedPrecondition(m),
        other => Error::Internal(other.to_string()),
    }
}

/// The model a TextEmbedding function names: (model, version or alias).
fn model_param(f: &FunctionSchema) -> Result<(String, String)> {
    if let Some(p) = f.params.get("provider") {
        if !p.eq_ignore_ascii_case("quiver") {
            return Err(Error::Unsupported(format!(
                "function {}: embedding provider {p:?}; Quiver runs registered models in process \
                 (provider \"quiver\", model_name \"name@version\" or \"name@alias\")",
                f.name
            )));
        }
    }
    let v = f
        .params
        .get("model_name")
        .or_else(|| f.params.get("model"))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "function {}: params need model_name = \"name@version\" or \"name@alias\" of a \
                 registered model",
                f.name
            ))
        })?;
    v.rsplit_once('@')
        .filter(|(m, r)| !m.is_empty() && !r.is_empty())
        .map(|(m, r)| (m.to_string(), r.to_string()))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "function {}: model_name must be name@version or name@alias, got {v:?}",
                f.name
            ))
        })
}

/// Check the schema's functions and resolve each TextEmbedding model: the (output field,
/// model, version) bindings creating the collection must make.
pub fn create_bindings(
    schema: &CollectionSchema,
    registry: Option<&Registry>,
) -> Result<Vec<(String, String, u32)>> {
    let mut out = Vec::new();
    let mut outputs = std::collections::HashSet::new();
    for f in &schema.functions {
        match f.function_type {
            TEXT_EMBEDDING => {}
            BM25 => continue,
            t => {
                return Err(Error::InvalidArgument(format!(
                    "function {}: unknown function type {t}",
                    f.name
                )))
            }
        }
        let (input, output) = match (
            f.input_field_names.as_slice(),
            f.output_field_names.as_slice(),
        ) {
            ([i], [o]) => (i, o),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "function {}: a TextEmbedding function has one input and one output field",
                    f.name
                )))
            }
        };
        let field = |n: &str| {
            schema.field(n).ok_or_else(|| {
                Error::InvalidArgument(format!("function {}: no field named {n}", f.name))
            })
        };
        if field(input)?.data_type != DataType::VarChar {
            return Err(Error::InvalidArgument(format!(
                "function {}: the input field {input} must be VARCHAR",
                f.name
            )));
        }
        let o = field(output)?;
        if o.data_type != DataType::FloatVector || o.is_primary_key {
            return Err(Error::InvalidArgument(format!(
                "function {}: the output field {output} must be a FLOAT_VECTOR field",
                f.name
            )));
        }
        if !outputs.insert(output.clone()) {
            return Err(Error::InvalidArgument(format!(
                "field {output} is the output of more than one function"
            )));
        }
        let (model, which) = model_param(f)?;
        let reg = registry.ok_or_else(|| {
            Error::Unavailable("the model registry is not open on this server".into())
        })?;
        let version = match which.parse::<u32>() {
            Ok(v) => reg.version(&model, v).map_err(registry_error)?.version,
            Err(_) => reg.alias(&model, &which).map_err(registry_error)?.version,
        };
        out.push((output.clone(), model, version));
    }
    Ok(out)
}

/// RunAnalyzer: the tokens of each text under the analyzer of a collection's field
/// (`collection_name` + `field_name`) or of `analyzer_params` (JSON; empty is the standard
/// analyzer). `with_detail` adds offsets and positions, `with_hash` the term ids that BM25 rows
/// use as indices.
pub fn run_analyzer(
    ctx: &crate::service::Ctx,
    req: crate::proto::milvus::RunAnalyzerRequest,
) -> Result<crate::proto::milvus::RunAnalyzerResponse> {
    use crate::proto::milvus::{AnalyzerResult, AnalyzerToken, RunAnalyzerResponse};
    use quiver_engine::text::{term_id, Analyzer};
    if !req.analyzer_names.is_empty() {
        return Err(Error::Unsupported(
            "multi-language analyzers (analyzer_names) are not available".into(),
        ));
    }
    let analyzer = if !req.collection_name.is_empty() {
        let m = ctx
            .engine()
            .describe_collection(&ctx.db, &req.collection_name)?;
        let f = m
            .schema
            .field(&req.field_name)
            .ok_or_else(|| Error::FieldNotFound(req.field_name.clone()))?;
        if f.data_type != DataType::VarChar {
            return Err(Error::InvalidArgument(format!(
                "field {} is not a VARCHAR field: it has no analyzer",
                f.name
            )));
        }
        Analyzer::for_field(f)?
    } else if req.analyzer_params.trim().is_empty() {
        Analyzer::standard()
    } else {
        let j: serde_json::Value = serde_json::from_str(&req.analyzer_params)
            .map_err(|e| Error::InvalidArgument(format!("analyzer_params is not JSON: {e}")))?;
        Analyzer::from_params(&j)?
    };
    let mut results = Vec::with_capacity(req.placeholder.len());
    for bytes in &req.placeholder {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::InvalidArgument("a text to analyze is not valid UTF-8".into()))?;
        let tokens = analyzer
            .analyze(text)
            .into_iter()
            .map(|t| AnalyzerToken {
                hash: if req.with_hash { term_id(&t.text) } else { 0 },
                start_offset: if req.with_detail { t.start as i64 } else { 0 },
                end_offset: if req.with_detail { t.end as i64 } else { 0 },
                position: if req.with_detail {
                    t.position as i64
                } else {
                    0
                },
                position_length: if req.with_detail { 1 } else { 0 },
                token: t.text,
            })
            .collect();
        results.push(AnalyzerResult { tokens });
    }
    Ok(RunAnalyzerResponse {
        status: Some(crate::status::ok()),
        results,
    })
}

/// The TextEmbedding function whose output is `field`, if any.
pub fn producing<'a>(schema: &'a CollectionSchema, field: &str) -> Option<&'a FunctionSchema> {
    schema.functions.iter().find(|f| {
        f.function_type == TEXT_EMBEDDING
            && f.output_field_names.first().is_some_and(|o| o == field)
    })
}

/// The model version bound to a function's output field.
fn bound_version(
    emb: &Embedders,
    m: &quiver_engine::CollectionMeta,
    field: &str,
) -> Result<(String, u32)> {
    emb.registry
        .binding(m.id, field)
        .map(|b| (b.model, b.version))
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "field {field} of collection {} is a TextEmbedding output but is bound to no \
                 model version",
                m.name
            ))
        })
}

fn embedders(e: Option<&Embedders>) -> Result<&Embedders> {
    e.ok_or_else(|| Error::Unavailable("the model registry is not open on this server".into()))
}

/// Run the collection's TextEmbedding functions on a write: refuse given output columns, embed
/// each input column (document role) and append the output column.
pub fn embed_write(
    emb: Option<&Embedders>,
    m: &quiver_engine::CollectionMeta,
    fields: &mut Vec<pb::FieldData>,
) -> Result<()> {
    for f in m
        .schema
        .functions
        .iter()
        .filter(|f| f.function_type == TEXT_EMBEDDING)
    {
        let (Some(input), Some(output)) =
            (f.input_field_names.first(), f.output_field_names.first())
        else {
            continue;
        };
        if fields.iter().any(|c| &c.field_name == output) {
            return Err(Error::InvalidArgument(format!(
                "field {output} is the output of function {}: it is computed from {input} and \
                 cannot be written",
                f.name
            )));
        }
        let col = fields
            .iter()
            .find(|c| &c.field_name == input)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "field {input} is missing: function {} embeds it into {output}",
                    f.name
                ))
            })?;
        let texts = match &col.field {
            Some(Field::Scalars(pb::ScalarField {
                data: Some(Sd::StringData(s)),
            })) => &s.data,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "field {input} must be sent as strings"
                )))
            }
        };
        if col.valid_data.iter().any(|v| !v) {
            return Err(Error::InvalidArgument(format!(
                "field {input} is NULL in some rows; function {} needs text to embed",
                f.name
            )));
        }
        let emb = embedders(emb)?;
        let (model, version) = bound_version(emb, m, output)?;
        let (vectors, _) = emb
            .embed(&model, version, texts, Role::Document)
            .map_err(registry_error)?;
        let dim = m.schema.field(output).map_or(0, |o| o.dim()) as i64;
        let data: Vec<f32> = vectors.into_iter().flatten().collect();
        fields.push(pb::FieldData {
            r#type: DataType::FloatVector.wire(),
            field_name: output.clone(),
            field: Some(Field::Vectors(pb::VectorField {
                dim,
                data: Some(pb::vector_field::Data::FloatVector(pb::FloatArray { data })),
            })),
            ..Default::default()
        });
    }
    Ok(())
}

/// Embed the query texts of a search on `field` (query role).
pub fn embed_queries(
    emb: Option<&Embedders>,
    m: &quiver_engine::CollectionMeta,
    field: Option<&str>,
    texts: &[String],
) -> Result<Vec<Vec<f32>>> {
    let field = field.ok_or_else(|| {
        Error::InvalidArgument(
            "a text query needs anns_field naming a TextEmbedding output field".into(),
        )
    })?;
    if producing(&m.schema, field).is_none() {
        return Err(Error::InvalidArgument(format!(
            "field {field} is not the output of a TextEmbedding function, so it cannot be \
             searched with text; send vectors"
        )));
    }
    let emb = embedders(emb)?;
    let (model, version) = bound_version(emb, m, field)?;
    let (vectors, _) = emb
        .embed(&model, version, texts, Role::Query)
        .map_err(registry_error)?;
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::FieldSchema;

    fn schema(functions: Vec<FunctionSchema>) -> CollectionSchema {
        let mut s = CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("text", DataType::VarChar).with_param("max_length", 100),
                FieldSchema::new("v", DataType::FloatVector).with_param("dim", 4),
            ],
            enable_dynamic_field: false,
            functions,
        };
        s.validate().unwrap();
        s
    }

    fn func(t: i32, input: &str, output: &str, params: &[(&str, &str)]) -> FunctionSchema {
        FunctionSchema {
            name: "f".into(),
            description: String::new(),
            function_type: t,
            input_field_names: vec![input.into()],
            output_field_names: vec![output.into()],
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn function_shapes_are_checked_before_the_registry() {
        let err = |f: FunctionSchema| create_bindings(&schema(vec![f]), None).unwrap_err();
        // BM25 functions are the engine's to check; they bind no model.
        assert!(
            create_bindings(&schema(vec![func(BM25, "text", "v", &[])]), None)
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            err(func(9, "text", "v", &[])),
            Error::InvalidArgument(_)
        ));
        assert!(
            err(func(TEXT_EMBEDDING, "id", "v", &[("model_name", "m@1")]))
                .to_string()
                .contains("VARCHAR")
        );
        assert!(err(func(
            TEXT_EMBEDDING,
            "text",
            "text",
            &[("model_name", "m@1")]
        ))
        .to_string()
        .contains("FLOAT_VECTOR"));
        assert!(err(func(TEXT_EMBEDDING, "text", "v", &[]))
            .to_string()
            .contains("model_name"));
        assert!(
            err(func(TEXT_EMBEDDING, "text", "v", &[("model_name", "m")]))
                .to_string()
                .contains("name@version")
        );
        assert!(matches!(
            err(func(
                TEXT_EMBEDDING,
                "text",
                "v",
                &[("provider", "openai"), ("model_name", "m@1")]
            )),
            Error::Unsupported(_)
        ));
        // A well-formed function still needs the registry.
        assert!(matches!(
            err(func(TEXT_EMBEDDING, "text", "v", &[("model_name", "m@1")])),
            Error::Unavailable(_)
        ));
        assert!(create_bindings(&schema(vec![]), None).unwrap().is_empty());
    }

    #[test]
    fn producing_finds_the_output_field() {
        let s = schema(vec![func(TEXT_EMBEDDING, "text", "v", &[("model", "m@1")])]);
        assert!(producing(&s, "v").is_some());
        assert!(producing(&s, "text").is_none());
    }
}
