//! Pictures: where models looked, read and wrote.

pub mod heatmap;
