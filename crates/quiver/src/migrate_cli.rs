//! `quiver migrate start | status | pause | resume | abort`: re-embedding migrations from the
//! command line, through a running server's `/v1` (see `quiver_server::migrations`). `start`
//! and `status --watch` draw a progress bar with the rate and ETA on stderr until the migration
//! is READY, FAILED, ABORTED or paused, then print its JSON on stdout.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value as Json};

use crate::registry_cli::{call, print, Conn};

#[derive(Subcommand)]
pub enum MigrateCommand {
    /// Re-embed COLLECTION's text field with another model into a new vector field.
    Start {
        collection: String,
        /// The model: name@version or name@alias.
        #[arg(long = "to")]
        to_model: String,
        /// The new vector field.
        #[arg(long)]
        target: String,
        /// The VARCHAR field holding the text to embed.
        #[arg(long)]
        source: String,
        #[arg(long)]
        batch_size: Option<u32>,
        #[arg(long)]
        max_rows_per_s: Option<f64>,
        #[arg(long, default_value = "default")]
        db: String,
        /// Follow the progress until the migration stops.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// A migration's state and progress (all of COLLECTION's without ID).
    Status {
        collection: String,
        id: Option<String>,
        #[arg(long, default_value = "default")]
        db: String,
        /// Follow the progress until the migration stops (needs ID).
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Pause a migration (resume continues from its checkpoint).
    Pause(Target),
    /// Resume a paused or FAILED migration.
    Resume(Target),
    /// Stop a migration for good (dual writes stop; the partly filled field stays).
    Abort(Target),
}

/// The migration a control command acts on.
#[derive(Args)]
pub struct Target {
    collection: String,
    id: String,
    #[arg(long, default_value = "default")]
    db: String,
    #[command(flatten)]
    conn: Conn,
}

/// `POST .../{id}/{action}` and print the answer.
fn control(t: Target, action: &str) -> Result<()> {
    let p = path(&t.db, &t.collection, &format!("/{}/{action}", t.id));
    print(&call(&t.conn, "POST", &p, None)?);
    Ok(())
}

/// One line of progress: bar, percentage, rows, rate, ETA, state.
pub fn progress_line(m: &Json) -> String {
    let n = |k: &str| m.get(k).and_then(Json::as_f64).unwrap_or(0.0);
    let (done, total) = (n("done"), n("total"));
    let frac = if total > 0.0 { done / total } else { 1.0 };
    let width = 30;
    let filled = ((frac * width as f64).round() as usize).min(width);
    let eta = match m.get("eta_s").and_then(Json::as_f64) {
        Some(s) if s >= 3600.0 => format!("{:.1} h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{s:.0} s"),
        None => "-".into(),
    };
    let state = m.get("state").and_then(Json::as_str).unwrap_or("?");
    let paused = if m.get("paused").and_then(Json::as_bool) == Some(true) {
        " (paused)"
    } else {
        ""
    };
    format!(
        "[{}{}] {:5.1}%  {}/{} rows  {:.1} rows/s  ETA {eta}  {state}{paused}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        frac * 100.0,
        done as u64,
        total as u64,
        n("rows_per_s"),
    )
}

fn stopped(m: &Json) -> bool {
    let state = m.get("state").and_then(Json::as_str).unwrap_or("");
    matches!(state, "READY" | "FAILED" | "ABORTED") || m.get("paused") == Some(&json!(true))
}

fn watch(conn: &Conn, path: &str, mut m: Json) -> Result<Json> {
    let mut err = std::io::stderr();
    loop {
        let _ = write!(err, "\r{}", progress_line(&m));
        let _ = err.flush();
        if stopped(&m) {
            let _ = writeln!(err);
            return Ok(m);
        }
        std::thread::sleep(Duration::from_millis(500));
        m = call(conn, "GET", path, None)?;
    }
}

fn path(db: &str, coll: &str, rest: &str) -> String {
    format!("/v1/collections/{coll}/migrations{rest}?db={db}")
}

pub fn run(cmd: MigrateCommand) -> Result<()> {
    match cmd {
        MigrateCommand::Start {
            collection,
            to_model,
            target,
            source,
            batch_size,
            max_rows_per_s,
            db,
            watch: follow,
            conn,
        } => {
            let mut body = json!({
                "to_model": to_model, "target_field": target, "source_text_field": source, "db": db,
            });
            if let Some(b) = batch_size {
                body["batch_size"] = json!(b);
            }
            if let Some(r) = max_rows_per_s {
                body["max_rows_per_s"] = json!(r);
            }
            let m = call(&conn, "POST", &path(&db, &collection, ""), Some(body))?;
            let m = if follow {
                let id = m.get("id").and_then(Json::as_str).unwrap_or_default();
                watch(&conn, &path(&db, &collection, &format!("/{id}")), m.clone())?
            } else {
                m
            };
            print(&m);
            if m.get("state").and_then(Json::as_str) == Some("FAILED") {
                bail!("migration failed: {}", m["errors"]);
            }
        }
        MigrateCommand::Status {
            collection,
            id,
            db,
            watch: follow,
            conn,
        } => match id {
            None => {
                if follow {
                    bail!("--watch needs a migration id");
                }
                print(&call(&conn, "GET", &path(&db, &collection, ""), None)?)
            }
            Some(id) => {
                let p = path(&db, &collection, &format!("/{id}"));
                let m = call(&conn, "GET", &p, None)?;
                if follow {
                    print(&watch(&conn, &p, m)?);
                } else {
                    eprintln!("{}", progress_line(&m));
                    print(&m);
                }
            }
        },
        MigrateCommand::Pause(t) => control(t, "pause")?,
        MigrateCommand::Resume(t) => control(t, "resume")?,
        MigrateCommand::Abort(t) => control(t, "abort")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_fraction_rate_and_eta() {
        let m = json!({"done": 250, "total": 1000, "rows_per_s": 12.5, "eta_s": 60.0, "state": "BACKFILLING"});
        let line = progress_line(&m);
        assert!(
            line.starts_with(&format!("[{}{}]", "#".repeat(8), ".".repeat(22))),
            "{line}"
        );
        assert!(
            line.contains(" 25.0%") && line.contains("250/1000 rows"),
            "{line}"
        );
        assert!(
            line.contains("12.5 rows/s") && line.contains("ETA 1.0 min"),
            "{line}"
        );
        assert!(!stopped(&m));
        let done = json!({"done": 10, "total": 10, "state": "READY", "eta_s": null});
        assert!(progress_line(&done).contains("100.0%") && progress_line(&done).contains("ETA -"));
        assert!(stopped(&done));
        assert!(stopped(&json!({"state": "BACKFILLING", "paused": true})));
    }
}
