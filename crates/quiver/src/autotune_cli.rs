//! `quiver autotune COLLECTION FIELD`: tune a field's index through a running server's
//! `/v1/collections/{c}/fields/{f}/autotune` and print the measured points as tables (Pareto
//! points marked, the recommendation starred); `--json` prints the job instead.
//!
//! Without `--build` it sweeps the current index's `ef` / `nprobe`. With `--build` it also
//! builds candidate indexes on a sample (progress on stderr) and prints their frontier; with
//! `--apply` it then builds the recommended index beside the serving one and switches to it
//! only if its recall on the whole collection reaches the target.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value as Json};

use crate::registry_cli::{call, print, Conn};

#[derive(Args)]
pub struct AutotuneArgs {
    collection: String,
    field: String,
    /// Recall@k to reach.
    #[arg(long, default_value_t = 0.95)]
    target_recall: f64,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Stop sweeping after this many seconds (points so far are kept).
    #[arg(long, default_value_t = 60.0)]
    budget_s: f64,
    /// Sampled queries (vectors of the collection's own rows).
    #[arg(long, default_value_t = 200)]
    sample: usize,
    #[arg(long, default_value = "default")]
    db: String,
    /// Also sweep build parameters (index type, M, efConstruction, nlist, PQ m) on a sample.
    #[arg(long)]
    build: bool,
    /// What the build-level recommendation optimises: qps or memory.
    #[arg(long, default_value = "qps")]
    objective: String,
    /// Rows the build-level candidates are built on.
    #[arg(long, default_value_t = 20_000)]
    sample_rows: usize,
    /// After a build-level sweep, apply the recommendation (verified before the switch).
    #[arg(long, requires = "build")]
    apply: bool,
    /// Print the JSON job instead of the tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// A search-level report as a table: one row per point.
pub fn table(r: &Json) -> String {
    let rec = r.get("recommendation").and_then(Json::as_u64);
    let mut out = format!(
        "{} on {}: recall@{} against exact search ({} queries, exact {:.0} qps), target {}\n",
        r["index_type"].as_str().unwrap_or("?"),
        r["field"].as_str().unwrap_or("?"),
        r["k"],
        r["queries"],
        r["exact_qps"].as_f64().unwrap_or(0.0),
        r["target_recall"],
    );
    out.push_str("  params        recall      qps   p50 ms   p99 ms  pareto\n");
    for (i, p) in r["points"].as_array().into_iter().flatten().enumerate() {
        let params: Vec<String> = p["params"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
        out.push_str(&format!(
            "{} {:<12} {:>6.4} {:>8.0} {:>8.3} {:>8.3}  {}\n",
            if rec == Some(i as u64) { "*" } else { " " },
            params.join(","),
            f("recall"),
            f("qps"),
            f("p50_ms"),
            f("p99_ms"),
            if p["pareto"].as_bool() == Some(true) {
                "yes"
            } else {
                ""
            },
        ));
    }
    if r["target_reached"].as_bool() != Some(true) {
        out.push_str("  no setting reached the target: * marks the best recall\n");
    }
    if r["stopped_by_budget"].as_bool() == Some(true) {
        out.push_str("  the budget ran out before the sweep ended\n");
    }
    out
}

/// A build-level report as a table: one row per candidate and search setting.
pub fn build_table(r: &Json) -> String {
    let rec = r.get("recommendation").and_then(Json::as_u64);
    let mut out = format!(
        "build level on {} ({}): {} sample rows of {}, {} held-out queries, recall@{} target {}, objective {}\n",
        r["field"].as_str().unwrap_or("?"),
        r["metric"].as_str().unwrap_or("?"),
        r["sample_rows"],
        r["live_rows"],
        r["queries"],
        r["k"],
        r["target_recall"],
        r["objective"].as_str().unwrap_or("?"),
    );
    out.push_str("  index     build params                 search       recall      qps   est. index MB  est. build s  pareto\n");
    for (i, p) in r["points"].as_array().into_iter().flatten().enumerate() {
        let build: Vec<String> = p["build_params"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "index_type" && *k != "metric_type")
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let search: Vec<String> = p["search_params"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
        out.push_str(&format!(
            "{} {:<9} {:<28} {:<12} {:>6.4} {:>8.0} {:>14.2} {:>13.2}  {}\n",
            if rec == Some(i as u64) { "*" } else { " " },
            p["index_type"].as_str().unwrap_or("?"),
            build.join(","),
            search.join(","),
            f("recall"),
            f("qps"),
            f("est_index_bytes") / 1e6,
            f("est_build_s"),
            if p["pareto"].as_bool() == Some(true) {
                "yes"
            } else {
                ""
            },
        ));
    }
    if r["target_reached"].as_bool() != Some(true) {
        out.push_str("  no candidate reached the target: * marks the best recall\n");
    }
    if r["stopped_by_budget"].as_bool() == Some(true) {
        out.push_str("  the budget ran out before every candidate was measured\n");
    }
    out
}

/// Poll a job until it leaves `running`, showing its progress on stderr.
fn follow(conn: &Conn, base: &str, mut job: Json) -> Result<Json> {
    let id = job["id"].as_str().unwrap_or_default().to_string();
    while job["state"] == "running" {
        let p = &job["progress"];
        eprint!(
            "\r  {} {}/{}            ",
            p["phase"].as_str().unwrap_or(""),
            p["done"],
            p["total"]
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        job = call(conn, "GET", &format!("{base}/{id}"), None)?;
    }
    eprintln!();
    Ok(job)
}

pub fn run(a: AutotuneArgs) -> Result<()> {
    let levels = if a.build {
        json!(["search", "build"])
    } else {
        json!(["search"])
    };
    let body = json!({
        "target_recall": a.target_recall, "k": a.k, "budget_s": a.budget_s,
        "sample": a.sample, "db": a.db, "levels": levels, "objective": a.objective,
        "sample_rows": a.sample_rows, "wait": false,
    });
    let base = format!(
        "/v1/collections/{}/fields/{}/autotune",
        a.collection, a.field
    );
    let job = call(&a.conn, "POST", &base, Some(body))?;
    let job = follow(&a.conn, &base, job)?;
    if job["state"] != "done" {
        anyhow::bail!(
            "autotune {}: {}",
            job["state"].as_str().unwrap_or("?"),
            job["error"].as_str().unwrap_or("")
        );
    }
    let applied = if a.apply {
        let body = json!({"job": job["id"], "target_recall": a.target_recall, "k": a.k,
                          "sample": a.sample, "db": a.db});
        let j = call(&a.conn, "POST", &format!("{base}/apply"), Some(body))?;
        Some(follow(&a.conn, &base, j)?)
    } else {
        None
    };
    if a.json {
        print(&json!({"tune": job, "apply": applied}));
        return Ok(());
    }
    let rep = &job["report"];
    if !rep["search"].is_null() {
        print!("{}", table(&rep["search"]));
    } else if let Some(why) = rep["search_skipped"].as_str() {
        println!("search level skipped: {why}");
    }
    if !rep["build"].is_null() {
        print!("{}", build_table(&rep["build"]));
    }
    if let Some(j) = applied {
        let r = &j["report"];
        match j["state"].as_str() {
            Some("applied") => println!(
                "applied: index {} now serves field {} (recall@{} {:.4} on the collection, target {})",
                r["params"]["index_type"].as_str().unwrap_or("?"),
                a.field,
                r["k"],
                r["recall"].as_f64().unwrap_or(0.0),
                r["target_recall"]
            ),
            Some("rejected") => println!(
                "rejected: recall@{} {:.4} on the collection is below the target {}; the serving index is unchanged",
                r["k"],
                r["recall"].as_f64().unwrap_or(0.0),
                r["target_recall"]
            ),
            _ => anyhow::bail!("apply failed: {}", j["error"].as_str().unwrap_or("")),
        }
    }
    Ok(())
}
