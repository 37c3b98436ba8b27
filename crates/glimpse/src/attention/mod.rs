//! Attention mechanisms, one file each, grouped by the taxonomy of the project:
//!
//! | family | mechanism |
//! |---|---|
//! | implicit | [`saliency`]: the input gradient (Jacobian row) of a chosen output |
pub mod saliency;
