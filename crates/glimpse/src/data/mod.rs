//! Data: real data sets, their loaders and checksums, and tasks derived from them.
//!
//! The data root is resolved from `--data-dir`, else the `GLIMPSE_DATA` environment variable,
//! else a per-user cache folder ([`resolve_root`]); `glimpse data fetch` fills the cache.

pub mod algorithmic;
pub mod babi;
pub mod batching;
pub mod binarised;
pub mod dates;
pub mod de_en;
pub mod fetch;
pub mod handwriting;
pub mod hershey;
pub mod idx;
pub mod images;
pub mod registry;
pub mod strokes;
pub mod text;
pub mod translated;

use std::path::PathBuf;

pub use idx::DataError;
pub use images::{ImageSet, Split};
pub use registry::{DatasetSpec, FASHION_MNIST, MNIST};

/// The environment variable naming the data root.
pub const DATA_ENV: &str = "GLIMPSE_DATA";

/// The per-user cache folder for data (`~/.cache/glimpse/data` on Linux).
pub fn cache_root() -> PathBuf {
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("glimpse").join("data")
}

/// The data root: `explicit` (from `--data-dir`), else `$GLIMPSE_DATA`, else [`cache_root`].
pub fn resolve_root(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(cache_root)
}
