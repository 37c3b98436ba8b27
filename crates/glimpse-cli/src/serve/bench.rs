//! `glimpse serve --bench`: how long each panel's answer takes, over HTTP to a server on a
//! free local port, with the committed checkpoints: the live page's latency.

use std::io::BufRead;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

/// One timed request: the panel's call and the budget it should meet.
struct Case {
    name: &'static str,
    path: &'static str,
    body: Value,
    budget_ms: f64,
}

/// The timings of one case, in milliseconds.
#[derive(Serialize)]
pub(crate) struct Timing {
    name: &'static str,
    path: &'static str,
    rounds: usize,
    median_ms: f64,
    p90_ms: f64,
    budget_ms: f64,
    /// For the streamed handwriting: the median time to the first pen point.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_point_ms: Option<f64>,
}

/// A 28×28 vertical bar, the panel's drawn "1".
fn drawn_one() -> Vec<f32> {
    (0..784).map(|i| if (4..24).contains(&(i / 28)) && (13..16).contains(&(i % 28)) { 1.0 } else { 0.0 }).collect()
}

/// Every panel's calls; the ones that read a test image are the last two.
fn cases() -> Vec<Case> {
    let bits: Vec<Vec<u8>> = (0..20).map(|t| (0..8).map(|c| ((t * 7 + c * 3) % 5 < 2) as u8).collect()).collect();
    let mut v = vec![
        Case {
            name: "CNN + saliency, drawn digit",
            path: "/api/classify",
            body: json!({ "pixels": drawn_one() }),
            budget_ms: 100.0,
        },
        Case {
            name: "RAM 28×28, drawn digit",
            path: "/api/ram",
            body: json!({ "pixels": drawn_one() }),
            budget_ms: 100.0,
        },
        Case {
            name: "DRAW, a digit in 64 steps",
            path: "/api/draw/generate",
            body: json!({ "seed": 1 }),
            budget_ms: 100.0,
        },
        Case {
            name: "date, greedy",
            path: "/api/translate",
            body: json!({ "text": "Mittwoch, 3. März 2021", "beam": 1 }),
            budget_ms: 100.0,
        },
        Case {
            name: "date, beam 5",
            path: "/api/translate",
            body: json!({ "text": "Mittwoch, 3. März 2021", "beam": 5 }),
            budget_ms: 100.0,
        },
        Case {
            name: "German sentence, seq2seq beam 5",
            path: "/api/translate",
            body: json!({ "checkpoint": "seq2seq-de-en", "text": "Ich habe heute keine Zeit.", "beam": 5 }),
            budget_ms: 1000.0,
        },
        Case {
            name: "German sentence, Transformer beam 5",
            path: "/api/translate",
            body: json!({ "checkpoint": "transformer-de-en", "text": "Ich habe heute keine Zeit.", "beam": 5 }),
            budget_ms: 1000.0,
        },
        Case {
            name: "NTM copy, length 20",
            path: "/api/memory",
            body: json!({ "checkpoint": "ntm-copy", "bits": bits }),
            budget_ms: 100.0,
        },
        Case {
            name: "DNC copy, length 20",
            path: "/api/memory",
            body: json!({ "checkpoint": "dnc-copy", "bits": bits }),
            budget_ms: 100.0,
        },
        Case {
            name: "handwriting, \"hello world\"",
            path: "/api/write",
            body: json!({ "text": "hello world", "bias": 1.5 }),
            budget_ms: 100.0,
        },
    ];
    v.push(Case {
        name: "RAM 100×100 cluttered, test image",
        path: "/api/ram",
        body: json!({ "checkpoint": "ram-cluttered100-8g", "test_index": 3 }),
        budget_ms: 100.0,
    });
    v.push(Case {
        name: "DRAW classifier, cluttered test image",
        path: "/api/draw/classify",
        body: json!({ "test_index": 3 }),
        budget_ms: 100.0,
    });
    v
}

/// The `q`-quantile of `v` (sorted in place), nearest rank.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Times one request; for a stream, also the time to its second line (the first point).
fn time_one(url: &str, body: &Value) -> Result<(f64, Option<f64>)> {
    let t = Instant::now();
    let mut resp = ureq::post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .with_context(|| format!("POST {url}"))?;
    let mut reader = std::io::BufReader::new(resp.body_mut().as_reader());
    let (mut line, mut n, mut first) = (String::new(), 0, None);
    while reader.read_line(&mut line)? > 0 {
        n += 1;
        if n == 2 {
            first = Some(t.elapsed().as_secs_f64() * 1e3);
        }
        line.clear();
    }
    let total = t.elapsed().as_secs_f64() * 1e3;
    Ok((total, first.filter(|_| n > 2)))
}

/// Times every case `rounds` times (after one warm-up call each) against the server at `addr`;
/// a case whose warm-up fails (no test images under the data root) is left out with a note.
pub(crate) fn run(addr: &str, rounds: usize) -> Result<Vec<Timing>> {
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let mut out = vec![];
    for c in cases() {
        let url = format!("{addr}{}", c.path);
        if let Err(e) = time_one(&url, &c.body) {
            eprintln!("{}: left out ({e:#})", c.name);
            continue;
        }
        let (mut total, mut first) = (vec![], vec![]);
        for _ in 0..rounds {
            let (t, f) = time_one(&url, &c.body)?;
            total.push(t);
            first.extend(f);
        }
        out.push(Timing {
            name: c.name,
            path: c.path,
            rounds,
            median_ms: quantile(&mut total, 0.5),
            p90_ms: quantile(&mut total, 0.9),
            budget_ms: c.budget_ms,
            first_point_ms: (!first.is_empty()).then(|| quantile(&mut first, 0.5)),
        });
    }
    Ok(out)
}

/// Prints the timings as a table, or one JSON object a line.
pub(crate) fn print(timings: &[Timing], json: bool) -> Result<()> {
    if json {
        for t in timings {
            println!("{}", serde_json::to_string(t)?);
        }
        return Ok(());
    }
    println!("{:<40} {:>10} {:>10} {:>12} {:>8}", "panel call", "median ms", "p90 ms", "first point", "budget");
    for t in timings {
        let first = t.first_point_ms.map_or(String::new(), |f| format!("{f:.1}"));
        let within = t.first_point_ms.unwrap_or(t.median_ms) <= t.budget_ms;
        println!(
            "{:<40} {:>10.1} {:>10.1} {:>12} {:>6.0}{}",
            t.name,
            t.median_ms,
            t.p90_ms,
            first,
            t.budget_ms,
            if within { "" } else { " (over)" }
        );
    }
    Ok(())
}
