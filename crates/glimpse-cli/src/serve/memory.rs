//! The memory panel: a bit sequence typed or drawn, copied by the NTM or the DNC, with the
//! heads' write and read weightings over memory through time (introspective attention).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use glimpse::burn::tensor::activation::sigmoid;
use glimpse::data::algorithmic::{Task, copy_episode_of};
use glimpse::models::ntm::Trace;
use glimpse::train::sequence::{self, SequenceModel};
use serde::{Deserialize, Serialize};

use super::panels::find;
use super::{ApiError, Body, Panels, answer};

/// The longest sequence taken: the committed models are scored up to 120.
pub(crate) const MAX_LEN: usize = 120;

/// `POST /api/memory`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemoryRequest {
    /// Which model (default `ntm-copy`).
    #[serde(default)]
    checkpoint: Option<String>,
    /// The sequence: one row of 0/1 values per time step, as wide as the model's vectors (8).
    bits: Vec<Vec<f32>>,
}

/// The copy, and where the heads wrote and read.
#[derive(Serialize)]
pub(crate) struct MemoryAnswer {
    checkpoint: &'static str,
    /// Per step, the inputs (the bits and the delimiter channel).
    inputs: Vec<Vec<f32>>,
    /// Per step, the targets (zero outside the answer).
    targets: Vec<Vec<f32>>,
    /// Per step, the output probabilities where they are scored (zero elsewhere).
    outputs: Vec<Vec<f32>>,
    /// Output bits on the wrong side of ½.
    bit_errors: f64,
    /// Memory rows.
    memory: usize,
    /// `writes[h][t][i]`: write head `h`'s weighting of row `i` at step `t`.
    writes: Vec<Vec<Vec<f32>>>,
    /// `reads[h][t][i]`: the same for read head `h`.
    reads: Vec<Vec<Vec<f32>>>,
}

/// Checks a typed sequence against a copy model's vector width.
fn checked_bits(bits: &[Vec<f32>], width: usize) -> Result<(), ApiError> {
    if bits.is_empty() {
        return Err(ApiError::bad("`bits` is empty: give at least one row"));
    }
    if bits.len() > MAX_LEN {
        return Err(ApiError::bad(format!("{} rows; the panel copies at most {MAX_LEN}", bits.len())));
    }
    for (t, row) in bits.iter().enumerate() {
        if row.len() != width {
            return Err(ApiError::bad(format!("row {t} has {} values; this model's vectors have {width}", row.len())));
        }
        if row.iter().any(|&v| v != 0.0 && v != 1.0) {
            return Err(ApiError::bad(format!("row {t} holds a value other than 0 or 1")));
        }
    }
    Ok(())
}

/// Per head, the weightings through time: `per_step[t][h]` → `[h][t]`.
fn by_head(per_step: &[Vec<Vec<f32>>]) -> Vec<Vec<Vec<f32>>> {
    let heads = per_step.first().map_or(0, Vec::len);
    (0..heads).map(|h| per_step.iter().map(|s| s[h].clone()).collect()).collect()
}

/// `POST /api/memory`.
pub(crate) async fn memory(
    State(p): State<Arc<Panels>>,
    Body(req): Body<MemoryRequest>,
) -> Result<Json<MemoryAnswer>, ApiError> {
    answer(p, move |p| {
        let picked = find(&p.memory, req.checkpoint.as_deref())?;
        let m = picked.lock()?;
        let Task::Copy { bits: width, .. } = m.cfg.task else {
            return Err(ApiError::bad("this checkpoint is not a copy model"));
        };
        if matches!(m.model, SequenceModel::Lstm(_)) {
            return Err(ApiError::bad("an LSTM has no memory to show"));
        }
        checked_bits(&req.bits, width)?;
        let e = copy_episode_of(width, &req.bits);
        let ep = sequence::episode_tensors(&e, &p.dev);
        let mut trace = Trace::default();
        let logits = m.model.forward(ep.inputs.clone(), Some(&mut trace)); // (T, O)
        let bit_errors = sequence::bit_errors(&logits, &ep);
        let probs: Vec<f32> = sigmoid(logits).into_data().try_to_vec().unwrap_or_default();
        let rows = |v: &[f32], w: usize| -> Vec<Vec<f32>> { v.chunks(w).map(<[f32]>::to_vec).collect() };
        let outputs = probs.chunks(width).zip(&e.mask).map(|(r, &mk)| r.iter().map(|v| v * mk).collect()).collect();
        let writes = by_head(&trace.writes);
        let memory = writes.first().and_then(|h| h.first()).map_or(0, Vec::len);
        Ok(MemoryAnswer {
            checkpoint: picked.name,
            inputs: rows(&e.inputs, width + 1),
            targets: rows(&e.targets, width),
            outputs,
            bit_errors,
            memory,
            writes,
            reads: by_head(&trace.reads),
        })
    })
    .await
}
