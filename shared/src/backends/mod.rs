//! Implementations of the ports. Each backend sits behind its own cargo
//! feature so a binary links only the one it uses.

#[cfg(feature = "local")]
pub mod local;

#[cfg(feature = "aws")]
pub mod aws;
