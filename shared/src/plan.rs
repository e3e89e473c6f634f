//! placeholder until the plan module lands
