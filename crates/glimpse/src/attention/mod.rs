//! Attention mechanisms, one file each, grouped by the taxonomy of the project:
//!
//! | family | mechanism |
//! |---|---|
//! | implicit | [`saliency`]: the input gradient (Jacobian row) of a chosen output |
//! | hard (RL) | [`glimpse_sensor`]: the foveal multi-scale retina; [`policy`]: Gaussian and discrete glimpse policies |

pub mod glimpse_sensor;
pub mod policy;
pub mod saliency;
