//! The text panels: a date or a German sentence translated with its alignment (associative),
//! and a line written by the handwriting synthesis network, streamed as it is written
//! (location).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::panels::{find, pick};
use super::{ApiError, Body, Panels, answer};

/// The widest beam taken.
pub(crate) const MAX_BEAM: usize = 16;

/// `POST /api/translate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TranslateRequest {
    /// Which model (default `seq2seq-dates`).
    #[serde(default)]
    checkpoint: Option<String>,
    /// The text: a date in any of the model's languages, or a German sentence.
    text: String,
    /// Beam width (default 1: greedy).
    #[serde(default)]
    beam: Option<usize>,
}

/// A translation with its alignment.
#[derive(Serialize)]
pub(crate) struct TranslateAnswer {
    checkpoint: &'static str,
    /// The answer (of the beam when one was asked for).
    answer: String,
    /// The greedy answer, for comparison with the beam's.
    greedy: String,
    log_prob: f32,
    /// Why the answer is not to be trusted: a date model's answer that is no calendar date.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    /// Words the model reads as `<unk>`.
    unknown: Vec<String>,
    /// The source tokens (the alignment's columns).
    source: Vec<String>,
    /// The answer's tokens (the alignment's rows).
    target: Vec<String>,
    /// `alignment[i][j]`: the attention on source token `j` when writing target token `i`
    /// (empty for a model without attention).
    alignment: Vec<Vec<f32>>,
}

/// `POST /api/translate`.
pub(crate) async fn translate(
    State(p): State<Arc<Panels>>,
    Body(req): Body<TranslateRequest>,
) -> Result<Json<TranslateAnswer>, ApiError> {
    answer(p, move |p| {
        let beam = req.beam.unwrap_or(1);
        if beam == 0 || beam > MAX_BEAM {
            return Err(ApiError::bad(format!("`beam` {beam} is out of range: 1 (greedy) to {MAX_BEAM}")));
        }
        if req.text.trim().is_empty() {
            return Err(ApiError::bad("the text is empty"));
        }
        let picked = find(&p.associative, req.checkpoint.as_deref())?;
        let m = picked.lock()?;
        let run = |b: usize| {
            crate::text::translate_text(&m.cfg, &m.toks, &m.model, &req.text, b, &p.dev)
                .map_err(|e| ApiError::bad(format!("{e:#}")))
        };
        let greedy = run(1)?;
        let t = if beam > 1 { run(beam)? } else { greedy.clone() };
        Ok(TranslateAnswer {
            checkpoint: picked.name,
            answer: t.answer,
            greedy: greedy.answer,
            log_prob: t.log_prob,
            refused: t.refused,
            unknown: t.unknown,
            source: t.source,
            target: t.target,
            alignment: t.weights,
        })
    })
    .await
}

/// The longest line the page writes, in characters (a line is some 25 pen points a
/// character).
pub(crate) const WRITE_LIMIT: usize = 80;

/// The largest bias taken (Graves' samples use 0 to 10).
pub(crate) const MAX_BIAS: f32 = 10.0;

/// `POST /api/write`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteRequest {
    /// The line to write (printable ASCII).
    text: String,
    /// Graves' bias `b` (default 1: neat).
    #[serde(default)]
    bias: Option<f32>,
    /// The seed of the pen's draws (default 0).
    #[serde(default)]
    seed: u64,
}

/// One line of the stream: the start, a pen point with the window over the text, or the end.
#[derive(Serialize)]
#[serde(untagged)]
enum WriteEvent {
    /// First: the text written and its characters as the window's columns.
    Start { text: String, chars: Vec<String> },
    /// A pen offset `[Δx, Δy, end of stroke]` (in the data's units, y down) and `φ(t, u)` over
    /// the characters and one past the end.
    Point { point: [f32; 3], phi: Vec<f32> },
    /// Last: whether the window moved past the last character before the step limit.
    Done { done: bool, finished: bool, points: usize },
}

impl WriteEvent {
    fn line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Checks a write request: a non-empty text within [`WRITE_LIMIT`] that the alphabet holds,
/// and a bias in `[0, MAX_BIAS]`; returns the encoded text and the bias.
fn checked_write(req: &WriteRequest) -> Result<(Vec<usize>, f32), ApiError> {
    if req.text.trim().is_empty() {
        return Err(ApiError::bad("the text is empty"));
    }
    let n = req.text.chars().count();
    if n > WRITE_LIMIT {
        return Err(ApiError::bad(format!("the text is {n} characters; the page writes at most {WRITE_LIMIT}")));
    }
    let text = glimpse::data::handwriting::encode(&req.text).map_err(|e| ApiError::bad(format!("{e:#}")))?;
    let bias = req.bias.unwrap_or(1.0);
    if !(0.0..=MAX_BIAS).contains(&bias) {
        return Err(ApiError::bad(format!("`bias` {bias} is out of range: 0 to {MAX_BIAS}")));
    }
    Ok((text, bias))
}

/// `POST /api/write`: newline-delimited JSON ([`WriteEvent`]s), one line per pen point as
/// the network writes it.
pub(crate) async fn write(State(p): State<Arc<Panels>>, Body(req): Body<WriteRequest>) -> Result<Response, ApiError> {
    let (text, bias) = checked_write(&req)?;
    find(&p.location, None)?.ready()?; // 503 now, before the stream starts, when the model is missing
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(256);
    tokio::task::spawn_blocking(move || {
        let Ok(m) = pick(&p.location, None) else { return };
        let chars: Vec<String> = req.text.chars().map(String::from).collect();
        let _ = tx.blocking_send(WriteEvent::Start { text: req.text.clone(), chars }.line());
        let how = glimpse::models::handwriting::Sampling { bias, max_steps: 40 * text.len() + 50 };
        let mut rng = glimpse::rng::Rng::derive(req.seed, "serve-write", 0);
        let (sx, sy) = (m.meta.scale.sx, m.meta.scale.sy);
        let out = m.model.generate_streamed(
            Some(std::slice::from_ref(&text)),
            1,
            None,
            how,
            &mut rng,
            &p.dev,
            &mut |_, g| {
                if let (Some(o), Some(phi)) = (g.offsets.last(), g.phi.last()) {
                    let point = [o[0] * sx, o[1] * sy, o[2]];
                    let _ = tx.blocking_send(WriteEvent::Point { point, phi: phi.clone() }.line());
                }
            },
        );
        let (finished, points) = out.first().map_or((false, 0), |g| (g.finished, g.offsets.len()));
        let _ = tx.blocking_send(WriteEvent::Done { done: true, finished, points }.line());
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(stream)).into_response())
}
