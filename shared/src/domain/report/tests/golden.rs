//! The writers' output for small and medium runs, fingerprinted: streaming
//! the cases (a source read in passes, a digest instead of indices) must
//! not change a byte of what small runs get. The fingerprints were taken
//! from the writers that indexed into a slice (commit 126c016).

use super::{Rich, synthetic};
use crate::domain::report::markdown::{GITHUB_SUMMARY_MAX_BYTES, summary};
use crate::domain::report::{ctrf, html, junit_xml};

/// FNV-1a: a stable fingerprint with no dependency.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn fingerprints(rich: &Rich) -> [(usize, u64); 4] {
    let input = rich.input();
    let mut page = Vec::new();
    html::render(&input, &mut page).unwrap();
    let mut json = Vec::new();
    ctrf::write(&input, &mut json).unwrap();
    let mut xml = Vec::new();
    junit_xml::write(&input, &mut xml).unwrap();
    let md = summary(&input, GITHUB_SUMMARY_MAX_BYTES).into_bytes();
    [page, json, xml, md].map(|b| (b.len(), fnv(&b)))
}

#[test]
fn small_runs_render_byte_for_byte_as_before() {
    let got = [
        fingerprints(&Rich::new()),
        // 3,000 cases over 7 shards, suites interleaved (i % 250): every
        // section, the capped-free all-tests table and suite regrouping.
        fingerprints(&synthetic(3_000, 7)),
    ];
    assert_eq!(got, GOLDEN);
}

const GOLDEN: [[(usize, u64); 4]; 2] = [
    [
        (11336, 644218600256156923),
        (4260, 1073422828315426866),
        (1874, 4720681379424355795),
        (1671, 5852451832444263282),
    ],
    [
        (551183, 11467870511106073861),
        (1043190, 478439174154378492),
        (381416, 3788425313690438540),
        (10952, 9110986692711945922),
    ],
];
