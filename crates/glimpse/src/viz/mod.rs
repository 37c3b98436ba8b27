//! Pictures: where models looked, read and wrote.

pub mod alignment;
pub mod draw;
pub mod glimpses;
pub mod heatmap;
pub mod memory;
pub mod strokes;
