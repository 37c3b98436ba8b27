//! `glimpse serve`: a local web page over the trained models, a panel per family of
//! attention, and the JSON API behind it.
//!
//! The models load once at start ([`panels::Panels`]); every request runs its model on a
//! blocking thread, so the server keeps answering while a model computes. Each answer is
//! JSON; an error is a 4xx (or 500) with `{"error": "one line"}`, never a dropped connection.

mod bench;
mod images;
mod memory;
mod panels;
mod text;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use panels::Panels;

/// The page: HTML, style and script in one file, built into the binary.
const PAGE: &str = include_str!("page.html");

/// The largest request body taken, in bytes: a 100×100 image as JSON numbers is ~60 KiB.
pub(crate) const BODY_LIMIT: usize = 256 * 1024;

/// `glimpse serve`'s options.
pub(crate) struct ServeArgs {
    pub(crate) checkpoints: PathBuf,
    pub(crate) addr: SocketAddr,
    pub(crate) root: PathBuf,
    pub(crate) device: String,
    /// Time the panels instead of serving.
    pub(crate) bench: Option<BenchArgs>,
}

/// `glimpse serve --bench`'s options.
pub(crate) struct BenchArgs {
    pub(crate) rounds: usize,
    pub(crate) json: bool,
}

/// Loads the models and serves until killed; prints `listening on http://ADDR` (the bound
/// address, so that `--addr 127.0.0.1:0` tells which port it took).
pub(crate) fn run(args: &ServeArgs) -> Result<()> {
    let panels = Panels::load(&args.checkpoints, &args.root, &args.device)?;
    for p in panels.status().panels {
        match p.missing {
            None => tracing::info!("{}: {}", p.panel, p.checkpoints.join(", ")),
            Some(why) => tracing::warn!("{}: {why}", p.panel),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if let Some(b) = &args.bench {
        return rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            tokio::spawn(async move { axum::serve(listener, router(Arc::new(panels))).await });
            let rounds = b.rounds;
            let timings = tokio::task::spawn_blocking(move || bench::run(&url, rounds)).await??;
            bench::print(&timings, b.json)
        });
    }
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let local = listener.local_addr()?;
        println!("listening on http://{local}");
        use std::io::Write;
        std::io::stdout().flush().ok();
        axum::serve(listener, router(Arc::new(panels))).await.context("the server stopped")
    })
}

/// The routes: the page, and one endpoint per panel.
pub(crate) fn router(panels: Arc<Panels>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/status", get(|State(p): State<Arc<Panels>>| async move { axum::Json(p.status()) }))
        .route("/api/classify", post(images::classify))
        .route("/api/ram", post(images::ram))
        .route("/api/draw/generate", post(images::draw_generate))
        .route("/api/draw/classify", post(images::draw_classify))
        .route("/api/translate", post(text::translate))
        .route("/api/write", post(text::write))
        .route("/api/memory", post(memory::memory))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page or endpoint") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(panels)
}

/// An answer that is not a result: its status and a one-line reason, as `{"error": …}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error of status `status`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 400: the request cannot be answered as it stands.
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 503: the panel's model is not loaded (its checkpoint is missing).
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let line = self.message.replace('\n', " ");
        (self.status, [(header::CACHE_CONTROL, "no-store")], axum::Json(serde_json::json!({ "error": line })))
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        let text = match status {
            StatusCode::PAYLOAD_TOO_LARGE => format!("the request body is over the {BODY_LIMIT}-byte limit"),
            _ => r.body_text(),
        };
        Self::new(status, text)
    }
}

/// A JSON request body whose errors (malformed, wrong fields, too large) answer as
/// [`ApiError`]s.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// Runs `f` on a blocking thread (models compute for milliseconds to seconds) and answers its
/// value as JSON; a panic in `f` answers 500 and the server goes on.
pub(crate) async fn answer<T, F>(panels: Arc<Panels>, f: F) -> Result<axum::Json<T>, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Panels) -> Result<T, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || f(&panels)).await {
        Ok(r) => r.map(axum::Json),
        Err(e) => {
            tracing::error!("a request's model run failed: {e}");
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the model failed on this input"))
        }
    }
}

#[cfg(test)]
mod tests;
