//! The endpoints, called through the router (no socket): answers, shapes, a known image
//! classified right, and bad inputs answered 4xx with a reason.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::body::Body as HttpBody;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::images::mnist_layout;
use super::{Panels, router};

fn checkpoints() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checkpoints")
}

/// The committed checkpoints, loaded once for every test.
fn panels() -> Arc<Panels> {
    static P: OnceLock<Arc<Panels>> = OnceLock::new();
    P.get_or_init(|| {
        let root = glimpse::data::resolve_root(None);
        Arc::new(Panels::load(&checkpoints(), &root, "flex").expect("the committed checkpoints load"))
    })
    .clone()
}

/// A request with `body` (raw) and content type JSON.
async fn send(p: Arc<Panels>, path: &str, body: &str) -> (StatusCode, Vec<u8>) {
    let req = Request::post(path).header("content-type", "application/json").body(HttpBody::from(body.to_string()));
    let res = router(p).oneshot(req.unwrap()).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes().to_vec())
}

/// POSTs `body` and parses the JSON answer.
async fn post(path: &str, body: Value) -> (StatusCode, Value) {
    let (s, b) = send(panels(), path, &body.to_string()).await;
    (
        s,
        serde_json::from_slice(&b)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&b))),
    )
}

/// A 28×28 vertical bar: a drawn "1".
fn drawn_one() -> Vec<f32> {
    let mut p = vec![0.0f32; 784];
    for y in 4..24 {
        for x in 13..16 {
            p[y * 28 + x] = 1.0;
        }
    }
    p
}

#[tokio::test]
async fn the_page_and_the_status_of_every_panel() {
    let res = router(panels()).oneshot(Request::get("/").body(HttpBody::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for id in ["digit", "ram-canvas", "draw-canvas", "write-canvas", "alignment", "memory-weights"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "the page has no #{id}");
    }
    let res = router(panels()).oneshot(Request::get("/api/status").body(HttpBody::empty()).unwrap()).await.unwrap();
    let s: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let names: Vec<&str> = s["panels"].as_array().unwrap().iter().map(|p| p["panel"].as_str().unwrap()).collect();
    assert_eq!(names, ["implicit", "hard", "soft", "location", "associative", "memory"]);
    for p in s["panels"].as_array().unwrap() {
        assert!(p.get("missing").is_none(), "{p}");
        assert!(!p["checkpoints"].as_array().unwrap().is_empty(), "{p}");
    }
}

#[tokio::test]
async fn a_drawn_one_is_a_one_to_the_cnn_and_to_ram_with_saliency_and_glimpses() {
    let (s, a) = post("/api/classify", json!({ "pixels": drawn_one() })).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["prediction"], 1, "{a}");
    let probs: Vec<f64> = a["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(probs.len(), 10);
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    let sal: Vec<f64> = a["saliency"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(sal.len(), 784);
    assert!((sal.iter().cloned().fold(0.0, f64::max) - 1.0).abs() < 1e-5, "saliency scaled to 1");
    let (s, r) = post("/api/ram", json!({ "pixels": drawn_one() })).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["prediction"], 1, "{r}");
    let g = r["glimpses"].as_array().unwrap();
    assert_eq!(g.len(), 6, "ram-mnist28-6g takes 6 glimpses");
    for glimpse in g {
        assert_eq!(glimpse["probabilities"].as_array().unwrap().len(), 10);
        assert!(!glimpse["scales"].as_array().unwrap().is_empty());
    }
}

#[tokio::test]
async fn test_images_are_classified_as_labelled_by_ram_and_the_draw_classifier() {
    if !glimpse::data::resolve_root(None).join("mnist/t10k-images-idx3-ubyte.gz").is_file() {
        eprintln!("skipped: the data root does not hold MNIST's test set (set GLIMPSE_DATA; .ci/run does)");
        return;
    }
    let mut right = 0;
    for i in 0..10 {
        let (s, r) = post("/api/ram", json!({ "checkpoint": "ram-mnist28-6g", "test_index": i })).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        right += (r["prediction"] == r["label"]) as usize;
    }
    assert!(right >= 9, "{right} of 10 MNIST test images right");
    let (s, r) = post("/api/ram", json!({ "checkpoint": "ram-cluttered100-8g", "test_index": 3 })).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["side"], json!([100, 100]));
    assert_eq!(r["glimpses"].as_array().unwrap().len(), 8);
    let (s, d) = post("/api/draw/classify", json!({ "test_index": 2 })).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["pixels"].as_array().unwrap().len(), 100 * 100);
    assert!(!d["reads"].as_array().unwrap().is_empty());
    assert_eq!(d["prediction"], d["label"], "{}", d["probabilities"]);
}

#[tokio::test]
async fn draw_generates_a_canvas_per_step_with_its_write_window() {
    let (s, a) = post("/api/draw/generate", json!({ "seed": 4 })).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let canvases = a["canvases"].as_array().unwrap();
    assert_eq!(canvases.len(), 64, "draw-mnist writes in T = 64 steps");
    assert!(canvases.iter().all(|c| c.as_array().unwrap().len() == 784));
    assert_eq!(a["writes"].as_array().unwrap().len(), 64);
    let (_, b) = post("/api/draw/generate", json!({ "seed": 4 })).await;
    assert_eq!(a, b, "the same seed draws the same digit");
}

#[tokio::test]
async fn a_date_is_normalised_with_its_alignment_and_an_impossible_one_is_flagged() {
    let (s, a) = post("/api/translate", json!({ "text": "Mittwoch, 3. März 2021", "beam": 3 })).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["answer"], "2021-03-03");
    assert!(a.get("refused").is_none());
    let (rows, cols) = (a["target"].as_array().unwrap().len(), a["source"].as_array().unwrap().len());
    let al = a["alignment"].as_array().unwrap();
    assert_eq!(al.len(), rows);
    assert!(al.iter().all(|r| r.as_array().unwrap().len() == cols));
    assert_eq!(cols, "Mittwoch, 3. März 2021".chars().count());
    let (s, a) = post("/api/translate", json!({ "text": "31 February 2021" })).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert!(a["refused"].as_str().is_some_and(|r| r.contains("no calendar date")), "{a}");
    let (s, a) = post("/api/translate", json!({ "checkpoint": "transformer-de-en", "text": "Ich bin müde." })).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert!(!a["answer"].as_str().unwrap().is_empty());
    assert!(!a["alignment"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_ntm_and_the_dnc_copy_a_typed_sequence_and_show_their_heads() {
    let bits: Vec<Vec<f32>> =
        (0..10).map(|t| (0..8).map(|c| ((t * 7 + c * 3) % 5 < 2) as u8 as f32).collect()).collect();
    for ckpt in ["ntm-copy", "dnc-copy"] {
        let (s, a) = post("/api/memory", json!({ "checkpoint": ckpt, "bits": bits })).await;
        assert_eq!(s, StatusCode::OK, "{a}");
        assert!(a["bit_errors"].as_f64().unwrap() <= 1.0, "{ckpt}: {}", a["bit_errors"]);
        assert_eq!(a["outputs"].as_array().unwrap().len(), 21, "2L + 1 steps");
        let n = a["memory"].as_u64().unwrap() as usize;
        for w in a["writes"].as_array().unwrap().iter().chain(a["reads"].as_array().unwrap()) {
            let steps = w.as_array().unwrap();
            assert_eq!(steps.len(), 21);
            let sum: f64 = steps[3].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
            assert_eq!(steps[3].as_array().unwrap().len(), n);
            assert!(sum <= 1.0 + 1e-3, "{ckpt}: a weighting sums to {sum}");
        }
    }
}

#[tokio::test]
async fn handwriting_is_streamed_a_point_a_line() {
    let (s, body) =
        send(panels(), "/api/write", &json!({ "text": "hi there", "bias": 2.0, "seed": 1 }).to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let lines: Vec<Value> =
        String::from_utf8(body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["text"], "hi there");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    let points = &lines[1..lines.len() - 1];
    assert_eq!(points.len() as u64, last["points"].as_u64().unwrap());
    assert!(points.len() > 20, "{} points for 8 characters", points.len());
    assert!(points.iter().all(|p| p["phi"].as_array().unwrap().len() == 9), "φ over 8 characters and one past");
}

#[tokio::test]
async fn bad_inputs_are_answered_4xx_with_a_reason() {
    let long = "x".repeat(81);
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("/api/classify", "{\"pixels\": ".into(), StatusCode::BAD_REQUEST, "parse"),
        ("/api/classify", "[1, 2]".into(), StatusCode::BAD_REQUEST, "deserialize"),
        ("/api/classify", json!({ "pixels": vec![0.5; 10] }).to_string(), StatusCode::BAD_REQUEST, "784"),
        ("/api/classify", json!({ "pixels": vec![0.0; 784] }).to_string(), StatusCode::BAD_REQUEST, "blank"),
        ("/api/classify", json!({ "pixels": vec![2.0; 784] }).to_string(), StatusCode::BAD_REQUEST, "[0, 1]"),
        (
            "/api/classify",
            json!({ "pixels": drawn_one(), "colour": 1 }).to_string(),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "/api/ram",
            json!({ "checkpoint": "ram-x" , "test_index": 0}).to_string(),
            StatusCode::BAD_REQUEST,
            "unknown checkpoint",
        ),
        ("/api/ram", json!({}).to_string(), StatusCode::BAD_REQUEST, "either"),
        ("/api/ram", json!({ "test_index": 10_000_000 }).to_string(), StatusCode::BAD_REQUEST, "past the"),
        (
            "/api/ram",
            json!({ "checkpoint": "ram-cluttered60-8g", "pixels": vec![0.1; 784] }).to_string(),
            StatusCode::BAD_REQUEST,
            "3600",
        ),
        ("/api/draw/classify", json!({ "test_index": -1 }).to_string(), StatusCode::BAD_REQUEST, "deserialize"),
        ("/api/translate", json!({ "text": "  " }).to_string(), StatusCode::BAD_REQUEST, "empty"),
        ("/api/translate", json!({ "text": "3 mars 2001", "beam": 0 }).to_string(), StatusCode::BAD_REQUEST, "beam"),
        (
            "/api/translate",
            json!({ "text": "1".repeat(500) }).to_string(),
            StatusCode::BAD_REQUEST,
            "more than this model takes",
        ),
        (
            "/api/translate",
            json!({ "text": "x", "checkpoint": "../etc" }).to_string(),
            StatusCode::BAD_REQUEST,
            "unknown checkpoint",
        ),
        ("/api/write", json!({ "text": long }).to_string(), StatusCode::BAD_REQUEST, "at most 80"),
        ("/api/write", json!({ "text": "naïve" }).to_string(), StatusCode::BAD_REQUEST, "printable ASCII"),
        ("/api/write", json!({ "text": "ok", "bias": -1 }).to_string(), StatusCode::BAD_REQUEST, "bias"),
        ("/api/write", json!({ "text": "" }).to_string(), StatusCode::BAD_REQUEST, "empty"),
        ("/api/memory", json!({ "bits": [] }).to_string(), StatusCode::BAD_REQUEST, "empty"),
        ("/api/memory", json!({ "bits": [[1, 0, 1]] }).to_string(), StatusCode::BAD_REQUEST, "8"),
        ("/api/memory", json!({ "bits": [[1, 0, 1, 0, 1, 0, 1, 2]] }).to_string(), StatusCode::BAD_REQUEST, "0 or 1"),
        ("/api/memory", json!({ "bits": vec![vec![0; 8]; 121] }).to_string(), StatusCode::BAD_REQUEST, "at most 120"),
        ("/api/nowhere", "{}".into(), StatusCode::NOT_FOUND, "no such"),
    ];
    for (path, body, want, says) in cases {
        let (s, b) = send(panels(), path, &body).await;
        let v: Value = serde_json::from_slice(&b).unwrap_or_else(|_| panic!("{path} {body}: not JSON"));
        let err = v["error"].as_str().unwrap_or_else(|| panic!("{path} {body}: no error in {v}"));
        assert_eq!(s, want, "{path} {body}: {err}");
        assert!(err.contains(says), "{path} {body}: `{err}` does not say `{says}`");
        assert!(!err.contains('\n'), "one line");
    }
    // A body over the limit, and one that is not JSON.
    let big = format!("{{\"text\": \"{}\"}}", "a".repeat(super::BODY_LIMIT + 10));
    let (s, _) = send(panels(), "/api/translate", &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::post("/api/translate").header("content-type", "text/plain").body(HttpBody::from("hello"));
    let res = router(panels()).oneshot(req.unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // And the server still answers.
    let (s, _) = post("/api/classify", json!({ "pixels": drawn_one() })).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dozens_of_concurrent_requests_are_each_answered_right() {
    let p = panels();
    let mut tasks = vec![];
    for i in 0..48 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let (path, body, key, want) = match i % 3 {
                0 => ("/api/classify", json!({ "pixels": drawn_one() }), "prediction", json!(1)),
                1 => ("/api/translate", json!({ "text": "3 March 2021" }), "answer", json!("2021-03-03")),
                _ => ("/api/translate", json!({ "text": "2 janvier 1999" }), "answer", json!("1999-01-02")),
            };
            let (s, b) = send(p, path, &body.to_string()).await;
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v[key], want, "request {i}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_folder_missing_a_model_says_so_in_that_panel_and_the_rest_work() {
    let dir = tempfile::tempdir().unwrap();
    let src = checkpoints().join("cnn-mnist");
    let dst = dir.path().join("cnn-mnist");
    std::fs::create_dir(&dst).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
    }
    let p = Arc::new(Panels::load(dir.path(), Path::new("/nonexistent"), "flex").unwrap());
    let status = p.status();
    for s in &status.panels {
        assert_eq!(s.missing.is_none(), s.panel == "implicit", "{}: {:?}", s.panel, s.missing);
    }
    let (s, b) = send(p.clone(), "/api/ram", &json!({ "pixels": drawn_one() }).to_string()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&b).contains("no checkpoint ram-mnist28-6g"));
    let (s, _) = send(p.clone(), "/api/write", &json!({ "text": "hi" }).to_string()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let (s, b) = send(p, "/api/classify", &json!({ "pixels": drawn_one() }).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert!(Panels::load(&dir.path().join("absent"), Path::new("."), "flex").is_err());
}

#[test]
fn a_drawn_digit_is_laid_out_as_mnist_digits_are() {
    // A small off-centre blob in the corner: scaled up to 20 pixels, centred by its mass.
    let mut p = vec![0.0f32; 784];
    for y in 0..6 {
        for x in 0..4 {
            p[y * 28 + x] = 1.0;
        }
    }
    let out = mnist_layout(&p, 28).unwrap();
    let ink: Vec<(usize, usize)> = (0..784).filter(|&i| out[i] > 0.5).map(|i| (i / 28, i % 28)).collect();
    let rows = ink.iter().map(|p| p.0).max().unwrap() - ink.iter().map(|p| p.0).min().unwrap() + 1;
    assert!((19..=21).contains(&rows), "the longer side is 20 pixels, got {rows}");
    let mass: f32 = out.iter().sum();
    let cy: f32 = out.iter().enumerate().map(|(i, v)| v * (i / 28) as f32).sum::<f32>() / mass;
    let cx: f32 = out.iter().enumerate().map(|(i, v)| v * (i % 28) as f32).sum::<f32>() / mass;
    assert!((cy - 14.0).abs() <= 1.0 && (cx - 14.0).abs() <= 1.0, "centre of mass at ({cy}, {cx})");
    assert!(mnist_layout(&[0.0; 784], 28).is_err());
}
