//! Implementations of the ports. Each backend sits behind its own cargo
//! feature so a binary links only the one it uses.

#[cfg(feature = "local")]
pub mod local;

#[cfg(feature = "aws")]
pub mod aws;

/// Shuffles `items` deterministically by `seed` (Fisher–Yates over
/// SplitMix64), for reproducible reordering faults: SplitMix64 is tiny, well
/// mixed and stable across versions, unlike a dependency's RNG.
#[cfg(any(feature = "local", feature = "contract"))]
pub(crate) fn seeded_shuffle<T>(items: &mut [T], seed: u64) {
    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let mut rng = seed;
    for i in (1..items.len()).rev() {
        let j = (splitmix64(&mut rng) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
