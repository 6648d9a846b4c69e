//! `quiver inspect wal|segment|catalog|manifest PATH`: read-only views of on-disk files for
//! operators. Nothing here writes or takes the data directory's lock, so it is safe to run
//! beside a live server.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum InspectCommand {
    /// A collection's WAL directory (collections/<id>/wal).
    Wal { path: PathBuf },
    /// A sealed segment file.
    Segment { path: PathBuf },
    /// A data directory or its catalog.qvc.
    Catalog { path: PathBuf },
    /// A manifest file.
    Manifest { path: PathBuf },
}

pub fn run(cmd: InspectCommand) -> anyhow::Result<()> {
    let text = match cmd {
        InspectCommand::Wal { path } => wal(&path)?,
        InspectCommand::Segment { path } => quiver_engine::inspect::segment(&path)?,
        InspectCommand::Catalog { path } => quiver_engine::inspect::catalog(&path)?,
        InspectCommand::Manifest { path } => quiver_engine::inspect::manifest(&path)?,
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// A formatted view of `quiver_wal::inspect`.
fn wal(dir: &Path) -> anyhow::Result<String> {
    let report =
        quiver_wal::inspect(dir).with_context(|| format!("inspecting WAL {}", dir.display()))?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "WAL {} : {} segment(s)",
        report.dir.display(),
        report.segments.len()
    );
    for s in &report.segments {
        let version = s
            .version
            .map_or("torn/unreadable".to_string(), |v| v.to_string());
        let lsns = match s.last_lsn {
            Some(last) => format!("LSN {}..={last}", s.first_lsn),
            None => format!("first LSN {}", s.first_lsn),
        };
        let _ = writeln!(
            out,
            "  {}: format {version}, {lsns}, {} record(s), {} of {} bytes valid",
            s.path.display(),
            s.record_count,
            s.valid_bytes,
            s.bytes
        );
        if let Some(p) = &s.problem {
            let _ = writeln!(out, "    problem: {p}");
        }
    }
    match &report.problem {
        None => {
            let _ = writeln!(out, "status: clean");
        }
        Some(p) if p.is_repairable() => {
            let _ = writeln!(out, "status: repairable on open: {p}");
        }
        Some(p) => {
            let _ = writeln!(out, "status: CORRUPT (open will refuse): {p}");
        }
    }
    Ok(out)
}
