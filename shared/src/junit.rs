//! placeholder until the junit module lands
