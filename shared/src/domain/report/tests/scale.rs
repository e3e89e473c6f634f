//! 100,000 cases across 1,000 shards through every writer.

use std::time::Instant;

use super::synthetic;
use crate::domain::report::markdown::{GITHUB_SUMMARY_MAX_BYTES, Stage, render};
use crate::domain::report::{ctrf, html, junit_xml};

#[test]
fn hundred_thousand_cases_across_a_thousand_shards() {
    let rich = synthetic(100_000, 1_000);
    let input = rich.input();
    let started = Instant::now();

    let mut junit = Vec::new();
    junit_xml::write(&input, &mut junit).unwrap();
    let junit = String::from_utf8(junit).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 100_000);
    assert_eq!(junit.matches("<failure ").count(), 1_000);

    let doc = ctrf::to_json(&input);
    assert_eq!(doc["results"]["tests"].as_array().unwrap().len(), 100_000);
    assert_eq!(doc["results"]["summary"]["failed"], 2_000);
    let json = serde_json::to_vec(&doc).unwrap();
    assert!(json.len() > 10_000_000);

    let mut page = Vec::new();
    html::render(&input, &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    assert_eq!(
        page.matches("<tr data-outcome=").count(),
        html::MAX_TEST_ROWS
    );
    assert_eq!(page.matches("<g data-shard=").count(), 1_000);
    // Compact rows: 1,000 × 8 units, a label on every 10th shard.
    assert!(page.contains("viewBox=\"0 0 1070 8016\""));
    assert_eq!(page.matches("<g data-shard=\"10\"><text").count(), 1);
    assert_eq!(page.matches("<g data-shard=\"11\"><rect").count(), 1);

    let (md, stage) = render(&input, GITHUB_SUMMARY_MAX_BYTES);
    assert!(md.len() <= GITHUB_SUMMARY_MAX_BYTES);
    assert_eq!(stage, Stage::FailuresTruncated);
    assert!(md.contains("more failures not shown"));

    eprintln!("100k cases, all four writers: {:?}", started.elapsed());
}
