//! The per-step loss log, `log.jsonl`: one JSON object per outer step, appended and flushed
//! as training goes, cut back to the checkpoint's step on resume so it never holds steps the
//! weights have not seen.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One outer step's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Outer steps completed, counting this one.
    pub step: u64,
    /// f-step loss, mean f(T(x)) − mean f(y).
    pub l_f: f64,
    /// Last T-step's loss, cost (− γ·spread) − mean f(T(x)).
    pub l_t: f64,
    /// Last T-step's transport cost, mean ‖x − T(x)‖²/D.
    pub cost: f64,
    /// Wall-clock seconds of this outer step.
    pub seconds: f64,
    /// Weak cost only: γ at this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// Weak cost only: last T-step's spread, mean ‖T(x,z) − mean_z T(x,z)‖²/D.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<f64>,
    /// Anchored NOT only: last T-step's regression term ‖T(x) − y‖²/D on the OT pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_fit: Option<f64>,
}

pub struct LossLog {
    path: PathBuf,
    file: std::fs::File,
}

pub fn log_path(run: &Path) -> PathBuf {
    run.join("log.jsonl")
}

impl LossLog {
    /// Opens the run's log for appending, first dropping records past `keep_through` (the
    /// step of the checkpoint being resumed, 0 for a new run).
    pub fn open(run: &Path, keep_through: u64) -> std::io::Result<Self> {
        let path = log_path(run);
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            let kept: String = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<StepRecord>(line).is_ok_and(|r| r.step <= keep_through)
                })
                .map(|line| format!("{line}\n"))
                .collect();
            crate::atomic_file::write_atomic(&path, kept.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Self { path, file })
    }

    pub fn append(&mut self, record: &StepRecord) -> std::io::Result<()> {
        let line = serde_json::to_string(record).expect("a record serializes");
        writeln!(self.file, "{line}")?;
        self.file.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every record of a run's log.
pub fn read_log(run: &Path) -> std::io::Result<Vec<StepRecord>> {
    let text = std::fs::read_to_string(log_path(run))?;
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .collect()
}
