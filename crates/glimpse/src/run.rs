//! How and where a run executes: its folder, data root, device and the knobs that tests and the
//! command line set. Part of the foundation: it imports nothing from the rest of the crate.

use std::path::PathBuf;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run directory (`last/`, `best/`, `metrics.jsonl`, `tb/`).
    pub out: PathBuf,
    /// Data root.
    pub data_root: PathBuf,
    /// Device name (`cpu`, `wgpu`, `cuda`).
    pub device: String,
    /// Continue from `out/last`.
    pub resume: bool,
    /// Start afresh over a run folder that already holds a run (its checkpoints and log are
    /// replaced); without it such a folder is refused unless resuming.
    pub force: bool,
    /// Sleep this long after each step (lets tests interrupt a run at a chosen point).
    pub throttle_ms: u64,
    /// Show a progress bar.
    pub progress: bool,
}
