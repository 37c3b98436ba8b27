//! Attention mechanisms, one file each, grouped by the taxonomy of the project:
//!
//! | family | mechanism |
//! |---|---|
//! | implicit | [`saliency`]: the input gradient (Jacobian row) of a chosen output |
//! | soft, by location | [`filterbank`]: DRAW's Gaussian read/write filterbank; [`window`]: Graves' Gaussian mixture window over a text |
//! | hard (RL) | [`glimpse_sensor`]: the foveal multi-scale retina; [`policy`]: Gaussian and discrete glimpse policies |
//! | associative (by content) | [`content`]: additive, dot, general and scaled dot-product scores, masking, multi-head attention |
//! | introspective (memory) | [`memory`]: NTM content and location addressing, erase/add writes, reads; [`dynamic_memory`]: the DNC's usage, allocation and temporal links |

pub mod content;
pub mod dynamic_memory;
pub mod filterbank;
pub mod glimpse_sensor;
pub mod memory;
pub mod policy;
pub mod saliency;
pub mod window;
