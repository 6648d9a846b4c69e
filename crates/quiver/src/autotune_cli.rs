//! `quiver autotune COLLECTION FIELD`: sweep a field's index search parameter through a running
//! server's `/v1/collections/{c}/fields/{f}/autotune` and print the measured points as a table
//! (Pareto points marked, the recommendation starred); `--json` prints the report instead.

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
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// The report as a table: one row per point.
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

pub fn run(a: AutotuneArgs) -> Result<()> {
    let body = json!({
        "target_recall": a.target_recall, "k": a.k, "budget_s": a.budget_s,
        "sample": a.sample, "db": a.db, "levels": ["search"],
    });
    let path = format!(
        "/v1/collections/{}/fields/{}/autotune",
        a.collection, a.field
    );
    let r = call(&a.conn, "POST", &path, Some(body))?;
    if a.json {
        print(&r);
    } else {
        print!("{}", table(&r));
    }
    Ok(())
}
