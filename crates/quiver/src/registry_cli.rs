//! `quiver model | alias | serving | audit`: the model registry's REST API (`/v1`) from the
//! command line, against a running server (`--server`, default `http://127.0.0.1:19530`;
//! `--token user:password` when it runs with `--auth`). Prints the server's JSON answers; an
//! error answer (`{code, message}`) is the command's error and a non-zero exit.
//!
//! The client is a minimal HTTP/1.1 client over one TCP connection per call (`Connection:
//! close`), plain `http://` only: a server started with TLS is reached with curl or pymilvus.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value as Json};

#[derive(Args, Clone)]
pub struct Conn {
    /// The server's address.
    #[arg(
        long,
        env = "QUIVER_SERVER",
        default_value = "http://127.0.0.1:19530",
        global = true
    )]
    server: String,
    /// `user:password` when the server runs with --auth.
    #[arg(long, env = "QUIVER_TOKEN", global = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Register a model, or (with --from) a new version of it from a file or directory on the server.
    Register {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A file or directory (on the server's file system) holding the version's artifacts.
        #[arg(long)]
        from: Option<PathBuf>,
        /// The vector space as JSON, e.g. '{"dim":384,"metric":"COSINE","normalize":true}'.
        #[arg(long)]
        space: Option<String>,
        #[arg(long, default_value = "")]
        source_uri: String,
        #[arg(long, default_value = "")]
        run_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List models.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a model, or one of its versions.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum AliasCommand {
    /// Point a model alias at a version (compare-and-swap with --expected; 0 = must not exist).
    Set {
        model: String,
        alias: String,
        version: u32,
        #[arg(long)]
        expected: Option<u32>,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Promote a serving alias to a new bundle (JSON) if it is still at --expected-revision.
    Promote {
        name: String,
        #[arg(long)]
        bundle: String,
        #[arg(long)]
        expected_revision: u32,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        evidence: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Roll a serving alias back to the previous revision (or --to REVISION).
    Rollback {
        name: String,
        #[arg(long)]
        to: Option<u32>,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// History of a model alias (`MODEL ALIAS`) or of a serving alias (`NAME`).
    History {
        name: String,
        alias: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit chain; fails when it is broken.
    Verify {
        #[command(flatten)]
        conn: Conn,
    },
    /// Print every event as JSON lines.
    Export {
        #[command(flatten)]
        conn: Conn,
    },
}

/// One request; returns the body (JSON is parsed by the caller).
fn request(conn: &Conn, method: &str, path: &str, body: Option<&Json>) -> Result<(u16, Vec<u8>)> {
    let rest = conn.server.strip_prefix("http://").ok_or_else(|| {
        anyhow!(
            "--server must be an http:// address (TLS: use curl), got {}",
            conn.server
        )
    })?;
    let host = rest.trim_end_matches('/');
    let mut stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        payload.len()
    );
    if let Some(t) = &conn.token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(payload.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP answer from {host}"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("malformed HTTP status line from {host}"))?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..line_end]).trim(), 16)?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or_else(|| anyhow!("bad chunked body"))?);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

pub(crate) fn call(conn: &Conn, method: &str, path: &str, body: Option<Json>) -> Result<Json> {
    let (status, bytes) = request(conn, method, path, body.as_ref())?;
    let j: Json = serde_json::from_slice(&bytes)
        .with_context(|| format!("the server's answer to {method} {path} is not JSON"))?;
    if status != 200 {
        bail!(
            "{} ({status}): {}",
            j.get("code").and_then(Json::as_str).unwrap_or("error"),
            j.get("message").and_then(Json::as_str).unwrap_or("")
        );
    }
    Ok(j)
}

pub(crate) fn print(j: &Json) {
    println!("{}", serde_json::to_string_pretty(j).unwrap_or_default());
}

pub fn model(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Register {
            name,
            description,
            from,
            space,
            source_uri,
            run_id,
            conn,
        } => match from {
            None => print(&call(
                &conn,
                "POST",
                "/v1/models",
                Some(json!({"name": name, "description": description})),
            )?),
            Some(path) => {
                let space: Json = serde_json::from_str(
                    space
                        .as_deref()
                        .ok_or_else(|| anyhow!("--space is required with --from"))?,
                )
                .context("--space is not JSON")?;
                let body = json!({
                    "source_path": path.to_string_lossy(),
                    "space": space,
                    "lineage": {"source_uri": source_uri, "run_id": run_id},
                });
                print(&call(
                    &conn,
                    "POST",
                    &format!("/v1/models/{name}/versions"),
                    Some(body),
                )?)
            }
        },
        ModelCommand::List { conn } => print(&call(&conn, "GET", "/v1/models", None)?),
        ModelCommand::Show {
            name,
            version,
            conn,
        } => match version {
            None => print(&call(&conn, "GET", &format!("/v1/models/{name}"), None)?),
            Some(v) => print(&call(
                &conn,
                "GET",
                &format!("/v1/models/{name}/versions/{v}"),
                None,
            )?),
        },
    }
    Ok(())
}

pub fn alias(cmd: AliasCommand) -> Result<()> {
    match cmd {
        AliasCommand::Set {
            model,
            alias,
            version,
            expected,
            reason,
            conn,
        } => {
            let mut body = json!({"version": version, "reason": reason});
            if let Some(e) = expected {
                body["expected_version"] = if e == 0 { Json::Null } else { json!(e) };
            }
            print(&call(
                &conn,
                "PUT",
                &format!("/v1/models/{model}/aliases/{alias}"),
                Some(body),
            )?)
        }
        AliasCommand::Promote {
            name,
            bundle,
            expected_revision,
            reason,
            evidence,
            conn,
        } => {
            let bundle: Json = serde_json::from_str(&bundle).context("--bundle is not JSON")?;
            let body = json!({"bundle": bundle, "expected_revision": expected_revision, "reason": reason, "evidence": evidence});
            print(&call(
                &conn,
                "POST",
                &format!("/v1/serving-aliases/{name}/promote"),
                Some(body),
            )?)
        }
        AliasCommand::Rollback {
            name,
            to,
            reason,
            conn,
        } => {
            let to = to.map_or(json!("previous"), |r| json!(r));
            print(&call(
                &conn,
                "POST",
                &format!("/v1/serving-aliases/{name}/rollback"),
                Some(json!({"to": to, "reason": reason})),
            )?)
        }
        AliasCommand::History { name, alias, conn } => match alias {
            Some(a) => print(&call(
                &conn,
                "GET",
                &format!("/v1/models/{name}/aliases/{a}/history"),
                None,
            )?),
            None => print(&call(
                &conn,
                "GET",
                &format!("/v1/serving-aliases/{name}/history"),
                None,
            )?),
        },
    }
    Ok(())
}

pub fn audit(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Verify { conn } => {
            let r = call(&conn, "GET", "/v1/audit/verify", None)?;
            print(&r);
            if r.get("ok") != Some(&Json::Bool(true)) {
                bail!("the audit chain is broken");
            }
        }
        AuditCommand::Export { conn } => {
            let (status, bytes) = request(&conn, "GET", "/v1/audit/export", None)?;
            if status != 200 {
                bail!(
                    "export failed ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}
