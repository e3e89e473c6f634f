//! placeholder until the manifest module lands
