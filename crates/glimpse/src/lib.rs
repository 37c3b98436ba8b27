//! # Glimpse: attention and memory in deep learning
//!
//! A network can attend *implicitly* (some inputs matter more, as its Jacobian shows) or
//! *explicitly*, emitting outputs that choose where to look, read or write next. Glimpse
//! implements each family as reusable mechanisms ([`attention`]) and as complete, trainable
//! models ([`models`]) on real data ([`data`]), with a training engine ([`train`]) and pictures
//! of where each model looked ([`viz`]).
//!
//! Tensors, autodiff and optimizers come from [burn](https://burn.dev); the CPU backend is
//! `flex`, and the `wgpu` and `cuda` cargo features add GPU devices ([`device`]).

pub mod attention;
pub mod data;
pub mod defaults;
pub mod device;
pub mod fused;
pub mod models;
pub mod ops;
pub mod rng;
pub mod run;
#[cfg(test)]
pub(crate) mod testing;
pub mod train;
pub mod viz;

pub use burn;
