//! Online experiments on a serving alias as registry records: the champion (the alias's bundle
//! when the experiment started), the challenger bundle, how traffic is split, the guardrails,
//! the sequential decision rule, and the lifecycle. Every change is an audit event
//! (`experiment_started`, `experiment_updated`), so a guardrail that paused an experiment or a
//! decision that promoted a challenger is in the chain beside the promotion itself. The live
//! per-arm counters are not events: the server keeps them in memory and checkpoints them to a
//! file (see the server's `experiments` module), and copies them into the record at every
//! state change.
//!
//! States: `running` (traffic is split or shadowed) <-> `paused` (the champion answers
//! everything; resume continues the same counters), then one terminal state: `stopped` (by a
//! user), `rolled_back` (a guardrail with `action: rollback` fired: the champion takes all
//! traffic again, for good), `promoted` (the challenger became the alias's bundle through the
//! serving-alias promote path, with this experiment as evidence), `concluded` (the decision
//! rule reached a verdict that does not promote: the champion won, or `on_success: notify`).
//! At most one experiment per serving alias is active (running or paused).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::{now_ms, Bundle, Registry, RegistryError, Result};

pub const RUNNING: &str = "running";
pub const PAUSED: &str = "paused";
pub const STOPPED: &str = "stopped";
pub const ROLLED_BACK: &str = "rolled_back";
pub const PROMOTED: &str = "promoted";
pub const CONCLUDED: &str = "concluded";

/// A limit on one live metric of the challenger arm, checked as the counters move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guardrail {
    /// `error_rate`, `p50_ms`, `p99_ms`, `overlap`, `rbo`, `feedback_rate`, `mean_feedback`.
    pub metric: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// `pause` or `rollback`.
    pub action: String,
    /// Observations the metric needs before the guardrail may fire.
    #[serde(default = "default_guard_samples")]
    pub min_samples: u64,
}

fn default_guard_samples() -> u64 {
    20
}

/// The sequential test that ends an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `feedback_rate`, `mean_feedback`, `latency_ms` or `error_rate`.
    pub metric: String,
    /// `msprt` (mixture sequential probability ratio test, normal mixture).
    #[serde(default = "default_test")]
    pub test: String,
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Standard deviation of the normal mixture over the effect (in the metric's units).
    #[serde(default)]
    pub tau: Option<f64>,
    /// Requests each arm needs before a verdict.
    #[serde(default = "default_decision_samples")]
    pub min_samples: u64,
}

fn default_test() -> String {
    "msprt".into()
}
fn default_alpha() -> f64 {
    0.05
}
fn default_decision_samples() -> u64 {
    100
}

/// One experiment's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: String,
    pub alias: String,
    /// `shadow` or `ab`.
    pub mode: String,
    /// The alias's revision when the experiment started; a promotion replaces exactly it.
    pub champion_revision: u32,
    pub champion: Bundle,
    pub challenger: Bundle,
    /// Share of live searches the challenger answers (ab) or shadows (shadow).
    pub traffic: f64,
    /// ab only: share of searches on which the arm that did not answer runs in shadow too.
    #[serde(default)]
    pub shadow_sample: f64,
    /// `{"header": name}` or `{"field": template-parameter name}`: the sticky hashing key.
    pub assignment: Json,
    #[serde(default)]
    pub guardrails: Vec<Guardrail>,
    #[serde(default)]
    pub decision: Option<Decision>,
    /// `promote` or `notify`.
    pub on_success: String,
    /// Hits compared for overlap@k and rank-biased overlap.
    pub k: u32,
    /// Share of one core the shadow searches may use (over budget they are dropped).
    pub cpu_budget: f64,
    pub status: String,
    /// Why it is where it is: the guardrail that fired, the decision, who stopped it.
    #[serde(default)]
    pub outcome: Option<Json>,
    /// The live metrics as of the last state change.
    #[serde(default)]
    pub snapshot: Option<Json>,
    pub reason: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub created_by: String,
}

impl Experiment {
    pub fn is_active(&self) -> bool {
        self.status == RUNNING || self.status == PAUSED
    }
}

impl crate::State {
    pub(crate) fn apply_experiment(&mut self, kind: &str, data: &Json, ts: u64) {
        if kind == "experiment_started" {
            if let Ok(x) = serde_json::from_value::<Experiment>(data.clone()) {
                self.experiments.insert(x.id.clone(), x);
            }
            return;
        }
        let id = data.get("id").and_then(Json::as_str).unwrap_or_default();
        if let Some(x) = self.experiments.get_mut(id) {
            if let Some(s) = data.get("status").and_then(Json::as_str) {
                x.status = s.to_string();
            }
            if let Some(o) = data.get("outcome").filter(|o| !o.is_null()) {
                x.outcome = Some(o.clone());
            }
            if let Some(s) = data.get("snapshot").filter(|s| !s.is_null()) {
                x.snapshot = Some(s.clone());
            }
            x.updated_ms = ts;
        }
    }
}

impl Registry {
    /// Record a new experiment (the caller validated its bundles and rules): id `exp-N`,
    /// status `running`. Refused while the alias has another active experiment or has moved
    /// past `champion_revision`.
    pub fn create_experiment(&self, mut x: Experiment, actor: &str) -> Result<Experiment> {
        let mut g = self.inner.lock();
        let cur = Self::serving_of(&g, &x.alias)?;
        if cur.revision != x.champion_revision {
            return Err(RegistryError::Conflict(format!(
                "serving alias {} is at revision {}, not {}",
                x.alias, cur.revision, x.champion_revision
            )));
        }
        if let Some(other) = g
            .state
            .experiments
            .values()
            .find(|o| o.alias == x.alias && o.is_active())
        {
            return Err(RegistryError::Conflict(format!(
                "serving alias {} already has an active experiment, {} ({})",
                x.alias, other.id, other.status
            )));
        }
        let now = now_ms();
        x.id = format!("exp-{}", g.state.experiments.len() + 1);
        x.status = RUNNING.into();
        x.outcome = None;
        x.snapshot = None;
        x.created_ms = now;
        x.updated_ms = now;
        x.created_by = actor.to_string();
        let data = serde_json::to_value(&x).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let subject = format!("experiment:{}", x.id);
        Self::commit(&mut g, actor, "experiment_started", &subject, data)?;
        Ok(g.state.experiments[&x.id].clone())
    }

    /// Move an experiment to `status`. `from` lists the states it may leave (a guardrail and
    /// a user racing each other: the second finds the state moved and gets 409).
    pub fn update_experiment(
        &self,
        id: &str,
        from: &[&str],
        status: &str,
        outcome: Option<Json>,
        snapshot: Option<Json>,
        actor: &str,
    ) -> Result<Experiment> {
        let mut g = self.inner.lock();
        let x = g
            .state
            .experiments
            .get(id)
            .ok_or_else(|| RegistryError::NotFound(format!("no experiment {id}")))?;
        if !from.contains(&x.status.as_str()) {
            return Err(RegistryError::Conflict(format!(
                "experiment {id} is {}, so it cannot become {status}",
                x.status
            )));
        }
        let data = json!({"id": id, "status": status, "outcome": outcome, "snapshot": snapshot});
        Self::commit(
            &mut g,
            actor,
            "experiment_updated",
            &format!("experiment:{id}"),
            data,
        )?;
        Ok(g.state.experiments[id].clone())
    }

    pub fn experiment(&self, id: &str) -> Result<Experiment> {
        self.inner
            .lock()
            .state
            .experiments
            .get(id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("no experiment {id}")))
    }

    /// Every experiment (of one alias when given), oldest first.
    pub fn experiments(&self, alias: Option<&str>) -> Vec<Experiment> {
        let g = self.inner.lock();
        let mut v: Vec<Experiment> = g
            .state
            .experiments
            .values()
            .filter(|x| alias.is_none_or(|a| x.alias == a))
            .cloned()
            .collect();
        v.sort_by_key(|x| (x.created_ms, x.id.clone()));
        v
    }
}
