//! Re-embedding migrations as registry records: which collection moves which text field to
//! which model version, into which new vector field, and the job's lifecycle state. Every
//! change is an audit event (`migration_created`, `migration_updated`), like any other model
//! change; the job's progress (rows done, its scan cursor) is not, since the server derives it
//! from the data and keeps the cursor in a checkpoint file beside the log.
//!
//! States: `PENDING` (recorded, target field not set up yet) -> `BACKFILLING` (filling existing
//! rows in key order) -> `CATCHING_UP` (a pass from the start over rows still missing a vector)
//! -> `READY` (every live row has one); `FAILED` (an error stopped it; resume retries) and
//! `ABORTED` (stopped for good) from any state before `READY`. `paused` holds any active state.
//! At most one migration per collection is active (not `READY` / `ABORTED`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{now_ms, Registry, RegistryError, Result};

pub const PENDING: &str = "PENDING";
pub const BACKFILLING: &str = "BACKFILLING";
pub const CATCHING_UP: &str = "CATCHING_UP";
pub const READY: &str = "READY";
pub const FAILED: &str = "FAILED";
pub const ABORTED: &str = "ABORTED";

/// One migration's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub id: String,
    pub db: String,
    pub collection: String,
    pub collection_id: u64,
    pub source_field: String,
    pub target_field: String,
    pub model: String,
    pub version: u32,
    pub space_id: String,
    pub batch_size: u32,
    #[serde(default)]
    pub max_rows_per_s: Option<f64>,
    pub state: String,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub error: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub created_by: String,
}

impl Migration {
    /// Neither READY nor ABORTED.
    pub fn is_active(&self) -> bool {
        self.state != READY && self.state != ABORTED
    }
}

impl crate::State {
    pub(crate) fn apply_migration(&mut self, kind: &str, data: &serde_json::Value, ts: u64) {
        match kind {
            "migration_created" => {
                if let Ok(m) = serde_json::from_value::<Migration>(data.clone()) {
                    self.migrations.insert(m.id.clone(), m);
                }
            }
            _ => {
                let id = data.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                if let Some(m) = self.migrations.get_mut(id) {
                    if let Some(s) = data.get("state").and_then(|v| v.as_str()) {
                        m.state = s.to_string();
                    }
                    if let Some(p) = data.get("paused").and_then(|v| v.as_bool()) {
                        m.paused = p;
                    }
                    m.error = data
                        .get("error")
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    m.updated_ms = ts;
                }
            }
        }
    }
}

impl Registry {
    /// Record a new migration (the caller checked the collection, fields and version): its id
    /// is assigned here (`mig-N`), its state is `PENDING`. Refused while another migration of
    /// the collection is active.
    pub fn create_migration(&self, mut m: Migration, actor: &str) -> Result<Migration> {
        let mut g = self.inner.lock();
        if let Some(other) = g
            .state
            .migrations
            .values()
            .find(|o| o.collection_id == m.collection_id && o.is_active())
        {
            return Err(RegistryError::Conflict(format!(
                "collection {} already has an active migration, {} ({})",
                m.collection, other.id, other.state
            )));
        }
        if !g.state.models.contains_key(&m.model) {
            return Err(RegistryError::NotFound(format!("no model {}", m.model)));
        }
        let now = now_ms();
        m.id = format!("mig-{}", g.state.migrations.len() + 1);
        m.state = PENDING.into();
        m.paused = false;
        m.error = None;
        m.created_ms = now;
        m.updated_ms = now;
        m.created_by = actor.to_string();
        let data = serde_json::to_value(&m).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let subject = format!("migration:{}", m.id);
        Self::commit(&mut g, actor, "migration_created", &subject, data)?;
        Ok(g.state.migrations[&m.id].clone())
    }

    /// Move a migration to `state` (and/or pause it), with an error for FAILED. Refused once
    /// it is READY or ABORTED.
    pub fn update_migration(
        &self,
        id: &str,
        state: &str,
        paused: bool,
        error: Option<&str>,
        actor: &str,
    ) -> Result<Migration> {
        let mut g = self.inner.lock();
        let m = g
            .state
            .migrations
            .get(id)
            .ok_or_else(|| RegistryError::NotFound(format!("no migration {id}")))?;
        if !m.is_active() {
            return Err(RegistryError::Conflict(format!(
                "migration {id} is {} and cannot change",
                m.state
            )));
        }
        if m.state == state && m.paused == paused && m.error.as_deref() == error {
            return Ok(m.clone());
        }
        let data = json!({"id": id, "state": state, "paused": paused, "error": error});
        Self::commit(
            &mut g,
            actor,
            "migration_updated",
            &format!("migration:{id}"),
            data,
        )?;
        Ok(g.state.migrations[id].clone())
    }

    pub fn migration(&self, id: &str) -> Result<Migration> {
        self.inner
            .lock()
            .state
            .migrations
            .get(id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("no migration {id}")))
    }

    /// The active migration filling `field` of collection `collection_id`, if any (serving
    /// aliases wait for it to be READY).
    pub fn active_migration_into(&self, collection_id: u64, field: &str) -> Option<Migration> {
        self.inner
            .lock()
            .state
            .migrations
            .values()
            .find(|m| m.collection_id == collection_id && m.target_field == field && m.is_active())
            .cloned()
    }

    /// Every migration, oldest first.
    pub fn migrations(&self) -> Vec<Migration> {
        let g = self.inner.lock();
        let mut v: Vec<Migration> = g.state.migrations.values().cloned().collect();
        v.sort_by_key(|m| (m.created_ms, m.id.clone()));
        v
    }
}
