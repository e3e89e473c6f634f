use super::*;
use crate::domain::model::{Outcome, TestCase};

fn files(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn timings(pairs: &[(&str, f64)]) -> Timings {
    let mut t = Timings::new();
    for (f, s) in pairs {
        t.insert_file(f, *s);
    }
    t
}

fn req<'a>(files: &'a [String], timings: &'a Timings, target: ShardTarget) -> PlanRequest<'a> {
    PlanRequest {
        files,
        timings,
        target,
        split_by_test: false,
        max_shards: 1000,
        keep_with_file: None,
    }
}

fn case(file: Option<&str>, classname: &str, name: &str, secs: f64) -> TestCase {
    TestCase {
        suite: String::new(),
        classname: classname.into(),
        name: name.into(),
        file: file.map(String::from),
        file_derived: false,
        line: None,
        duration_secs: secs,
        outcome: Outcome::Passed,
        message: None,
        details: None,
        system_out: None,
        system_err: None,
        retries: vec![],
    }
}

/// Small deterministic generator so the randomised tests are reproducible.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Optimal makespan by trying every assignment (n^k, fine for k <= 8, n <= 3).
fn brute_force_opt(weights: &[f64], n: usize) -> f64 {
    let mut best = f64::INFINITY;
    let total = (n as u64).pow(weights.len() as u32);
    for code in 0..total {
        let mut loads = vec![0.0; n];
        let mut c = code;
        for w in weights {
            loads[(c % n as u64) as usize] += w;
            c /= n as u64;
        }
        best = best.min(loads.iter().copied().fold(0.0, f64::max));
    }
    best
}

fn all_units(p: &Plan) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<_> = p
        .shards
        .iter()
        .flat_map(|s| s.units.iter())
        .map(|u| match u {
            WorkUnit::File { path, .. } => (path.clone(), vec![]),
            WorkUnit::Tests { path, tests, .. } => (path.clone(), tests.clone()),
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_inputs_in_any_order_give_byte_identical_plans() {
    let mut rng = XorShift(0x9E3779B97F4A7C15);
    let names: Vec<String> = (0..200).map(|i| format!("tests/t{i:03}.py")).collect();
    let mut t = Timings::new();
    for (i, n) in names.iter().enumerate() {
        // Many equal durations to exercise tie-breaking; some files unknown.
        if i % 7 != 0 {
            t.insert_file(n, (rng.below(5) + 1) as f64 * 0.5);
        }
    }
    let reference =
        serde_json::to_string(&plan(&req(&names, &t, ShardTarget::Count(7))).unwrap()).unwrap();
    for round in 0..20 {
        let mut shuffled = names.clone();
        for i in (1..shuffled.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            shuffled.swap(i, j);
        }
        if round % 2 == 0 {
            shuffled.push(shuffled[0].clone()); // duplicates are ignored
        }
        let got = serde_json::to_string(&plan(&req(&shuffled, &t, ShardTarget::Count(7))).unwrap())
            .unwrap();
        assert_eq!(got, reference, "round {round}");
    }
}

#[test]
fn timings_from_cases_do_not_depend_on_report_order() {
    let mut cases = vec![
        case(Some("a.py"), "", "t1", 0.1),
        case(Some("a.py"), "", "t1", 0.2), // repeated id: summed
        case(Some("./a.py"), "", "t2", 0.3),
        case(Some("b.py"), "", "t", 1.0),
        case(None, "pkg.Class", "m", 2.0),
    ];
    let a = Timings::from_cases(&cases);
    cases.reverse();
    let b = Timings::from_cases(&cases);
    assert_eq!(a.to_json(), b.to_json());
    assert!((a.file_secs("a.py").unwrap() - 0.6).abs() < 1e-12);
    assert_eq!(a.file_secs("./b.py"), Some(1.0));
    // No file attribute: the class stands in for the file.
    assert_eq!(a.file_secs("pkg.Class"), Some(2.0));
    assert_eq!(a.test_secs("a.py").unwrap().len(), 2);
}

#[test]
fn lpt_is_within_four_thirds_of_optimal_on_exhaustive_small_cases() {
    let mut rng = XorShift(42);
    let mut strictly_optimal = 0;
    let mut lpt_optimal = 0;
    let mut cases = 0;
    for k in 1..=8usize {
        for n in 1..=3u32 {
            for _ in 0..40 {
                let weights: Vec<f64> = (0..k).map(|_| (rng.below(20) + 1) as f64).collect();
                let names: Vec<String> = (0..k).map(|i| format!("f{i}")).collect();
                let mut t = Timings::new();
                for (name, w) in names.iter().zip(&weights) {
                    t.insert_file(name, *w);
                }
                let p = plan(&req(&names, &t, ShardTarget::Count(n))).unwrap();
                let plain = plan_lpt_only(&req(&names, &t, ShardTarget::Count(n))).unwrap();
                let m = p.shards.len();
                let opt = brute_force_opt(&weights, m);
                let bound = (4.0 / 3.0 - 1.0 / (3.0 * m as f64)) * opt;
                assert!(
                    p.estimated_makespan_secs >= opt - 1e-9,
                    "beat the optimum?! {weights:?} n={n}"
                );
                assert!(
                    p.estimated_makespan_secs <= bound + 1e-9,
                    "{weights:?} n={n}: {} > {bound}",
                    p.estimated_makespan_secs
                );
                assert!(
                    p.lower_bound_secs <= opt + 1e-9,
                    "lower bound above optimum: {weights:?}"
                );
                cases += 1;
                if (p.estimated_makespan_secs - opt).abs() < 1e-9 {
                    strictly_optimal += 1;
                }
                if (plain.estimated_makespan_secs - opt).abs() < 1e-9 {
                    lpt_optimal += 1;
                }
            }
        }
    }
    // The improvement pass earns its keep: it solves strictly more of these
    // cases optimally than LPT alone, and nearly all of them.
    println!("optimal: LPT {lpt_optimal}/{cases}, LPT + improvement {strictly_optimal}/{cases}");
    assert!(
        strictly_optimal > lpt_optimal,
        "{strictly_optimal} vs {lpt_optimal}"
    );
    assert!(
        strictly_optimal * 100 >= cases * 95,
        "{strictly_optimal}/{cases} optimal"
    );
}

#[test]
fn known_cases_are_solved_optimally() {
    // (weights, shards, optimum): includes LPT's classic worst case 3,3,2,2,2.
    let known: &[(&[f64], u32, f64)] = &[
        (&[3.0, 3.0, 2.0, 2.0, 2.0], 2, 6.0),
        (&[5.0, 5.0, 4.0, 4.0, 3.0, 3.0, 3.0], 3, 9.0),
        (&[10.0, 1.0, 1.0, 1.0], 2, 10.0),
        (&[1.0; 8], 3, 3.0),
        (&[7.0, 5.0, 4.0, 4.0, 3.0, 1.0], 2, 12.0),
    ];
    for (weights, n, opt) in known {
        let names: Vec<String> = (0..weights.len()).map(|i| format!("f{i}")).collect();
        let mut t = Timings::new();
        for (name, w) in names.iter().zip(weights.iter()) {
            t.insert_file(name, *w);
        }
        let p = plan(&req(&names, &t, ShardTarget::Count(*n))).unwrap();
        assert_eq!(p.estimated_makespan_secs, *opt, "{weights:?} into {n}");
        assert_eq!(brute_force_opt(weights, *n as usize), *opt);
    }
}

#[test]
fn improvement_pass_never_makes_lpt_worse() {
    let mut rng = XorShift(7);
    for _ in 0..300 {
        let k = rng.below(60) as usize + 1;
        let names: Vec<String> = (0..k).map(|i| format!("f{i:02}")).collect();
        let mut t = Timings::new();
        for n in &names {
            t.insert_file(n, (rng.below(1000) + 1) as f64 / 10.0);
        }
        let n = rng.below(10) as u32 + 1;
        let r = req(&names, &t, ShardTarget::Count(n));
        let refined = plan(&r).unwrap();
        let plain = plan_lpt_only(&r).unwrap();
        assert!(refined.estimated_makespan_secs <= plain.estimated_makespan_secs + 1e-9);
        assert_eq!(all_units(&refined), all_units(&plain));
    }
}

#[test]
fn every_file_is_planned_exactly_once_and_loads_add_up() {
    let names: Vec<String> = (0..57).map(|i| format!("spec/{i}_spec.rb")).collect();
    let t = timings(&[
        ("spec/1_spec.rb", 30.0),
        ("spec/2_spec.rb", 0.0),
        ("spec/3_spec.rb", 12.5),
    ]);
    let p = plan(&req(&names, &t, ShardTarget::Count(5))).unwrap();
    let mut seen: Vec<&str> = p.shards.iter().flat_map(|s| s.files()).collect();
    seen.sort();
    let mut want: Vec<&str> = names.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(seen, want);
    for (i, s) in p.shards.iter().enumerate() {
        assert_eq!(s.index as usize, i);
        let sum: f64 = s.units.iter().map(WorkUnit::estimated_secs).sum();
        assert!((sum - s.estimated_secs).abs() < 1e-9);
    }
    let makespan = p
        .shards
        .iter()
        .map(|s| s.estimated_secs)
        .fold(0.0, f64::max);
    assert_eq!(makespan, p.estimated_makespan_secs);
}

#[test]
fn unknown_files_get_the_median_of_known_files() {
    let names = files(&["a", "b", "c", "d", "new1", "new2"]);
    let t = timings(&[
        ("a", 1.0),
        ("b", 2.0),
        ("c", 10.0),
        ("d", 4.0),
        ("not-listed", 1000.0),
    ]);
    let p = plan(&req(&names, &t, ShardTarget::Count(2))).unwrap();
    assert_eq!(p.fallback_source, FallbackSource::Median);
    // Median of the *listed* known files 1, 2, 4, 10 is 3; history for files
    // no longer in the suite does not count.
    assert_eq!(p.fallback_secs, 3.0);
    assert!((p.known_share - 4.0 / 6.0).abs() < 1e-12);
    let est = |f: &str| {
        p.shards
            .iter()
            .flat_map(|s| &s.units)
            .find(|u| u.path() == f)
            .map(WorkUnit::estimated_secs)
            .unwrap()
    };
    assert_eq!(est("new1"), 3.0);
    assert_eq!(est("c"), 10.0);
    assert_eq!(p.total_secs, 23.0);
}

#[test]
fn no_history_uses_the_default_and_balances_by_count() {
    let names: Vec<String> = (0..10).map(|i| format!("t{i}.js")).collect();
    let t = Timings::new();
    let p = plan(&req(&names, &t, ShardTarget::Count(3))).unwrap();
    assert_eq!(p.fallback_source, FallbackSource::Default);
    assert_eq!(p.fallback_secs, DEFAULT_FILE_SECS);
    assert_eq!(p.known_share, 0.0);
    let mut counts: Vec<usize> = p.shards.iter().map(|s| s.units.len()).collect();
    counts.sort();
    assert_eq!(counts, vec![3, 3, 4]);
}

#[test]
fn lower_bound_is_max_of_average_and_largest_unit() {
    let names = files(&["big", "s1", "s2", "s3"]);
    let t = timings(&[("big", 100.0), ("s1", 1.0), ("s2", 1.0), ("s3", 1.0)]);
    let p = plan(&req(&names, &t, ShardTarget::Count(2))).unwrap();
    assert_eq!(p.lower_bound_secs, 100.0);
    assert_eq!(p.estimated_makespan_secs, 100.0);
    assert_eq!(p.quality_ratio(), 1.0);
    let t = timings(&[("big", 4.0), ("s1", 3.0), ("s2", 3.0), ("s3", 2.0)]);
    let p = plan(&req(&names, &t, ShardTarget::Count(2))).unwrap();
    assert_eq!(p.lower_bound_secs, 6.0);
    assert_eq!(p.estimated_makespan_secs, 6.0);
}

#[test]
fn split_by_test_cuts_a_dominant_file_into_groups() {
    let mut t = Timings::new();
    for i in 0..12 {
        t.insert_test("slow_test.py", &format!("slow_test.py::test_{i:02}"), 5.0);
    }
    t.insert_file("fast_a.py", 2.0);
    t.insert_file("fast_b.py", 2.0);
    let names = files(&["slow_test.py", "fast_a.py", "fast_b.py"]);
    let mut r = req(&names, &t, ShardTarget::Count(4));

    let whole = plan(&r).unwrap();
    assert_eq!(whole.estimated_makespan_secs, 60.0);
    assert_eq!(whole.shards.len(), 3, "3 files cannot fill 4 shards");

    r.split_by_test = true;
    let split = plan(&r).unwrap();
    assert_eq!(split.shards.len(), 4);
    // 64 s over 4 shards: ideal 16; groups of 5 s tests give at most 20.
    assert!(
        split.estimated_makespan_secs <= 20.0,
        "{}",
        split.estimated_makespan_secs
    );
    assert!(split.notes.iter().any(|n| n.contains("split 1 file")));
    // Every test appears exactly once, exactly one group takes unlisted tests.
    let mut tests: Vec<&str> = split.shards.iter().flat_map(|s| s.tests()).collect();
    tests.sort();
    assert_eq!(tests.len(), 12);
    tests.dedup();
    assert_eq!(tests.len(), 12);
    let rest = split
        .shards
        .iter()
        .flat_map(|s| &s.units)
        .filter(|u| {
            matches!(
                u,
                WorkUnit::Tests {
                    includes_unlisted: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(rest, 1);
    // Small files stay whole.
    assert!(
        split
            .shards
            .iter()
            .flat_map(|s| &s.units)
            .any(|u| matches!(u, WorkUnit::File { path, .. } if path == "fast_a.py"))
    );
}

#[test]
fn split_keeps_parameters_together_and_kept_tests_with_the_file() {
    let mut t = Timings::new();
    for p in 0..4 {
        t.insert_test("f.py", &format!("f::param[{p}]"), 5.0);
    }
    for name in ["a", "b", "c", "kept"] {
        t.insert_test("f.py", &format!("f::{name}"), 5.0);
    }
    t.insert_file("g.py", 1.0);
    let names = files(&["f.py", "g.py"]);
    let keep = |path: &str, id: &str| path == "f.py" && id == "f::kept";
    let r = PlanRequest {
        split_by_test: true,
        keep_with_file: Some(KeepWithFile(&keep)),
        ..req(&names, &t, ShardTarget::Count(4))
    };
    let p = plan(&r).unwrap();
    let groups: Vec<(&Vec<String>, bool)> = p
        .shards
        .iter()
        .flat_map(|s| &s.units)
        .filter_map(|u| match u {
            WorkUnit::Tests {
                tests,
                includes_unlisted,
                ..
            } => Some((tests, *includes_unlisted)),
            WorkUnit::File { .. } => None,
        })
        .collect();
    assert!(groups.len() >= 2, "{p:?}");
    let mut listed: Vec<&str> = groups
        .iter()
        .flat_map(|g| g.0.iter().map(String::as_str))
        .collect();
    listed.sort();
    // The 4 parameters are one item, named by the bare test; the kept
    // test is named nowhere: the rest group runs it with the file.
    assert_eq!(listed, ["f::a", "f::b", "f::c", "f::param"]);
    assert_eq!(groups.iter().filter(|g| g.1).count(), 1);
    // The rest group carries the kept test's time.
    let rest_secs = p
        .shards
        .iter()
        .flat_map(|s| &s.units)
        .find(|u| {
            matches!(
                u,
                WorkUnit::Tests {
                    includes_unlisted: true,
                    ..
                }
            )
        })
        .map(WorkUnit::estimated_secs)
        .unwrap();
    assert!(rest_secs >= 5.0, "{rest_secs}");
}

#[test]
fn split_groups_pay_the_files_setup_time() {
    // 40 s of tests plus 8 s of setup recorded for the file.
    let json = r#"{"version":1,"files":{"f":48.0,"g":1.0},"tests":{"f":{"t0":10,"t1":10,"t2":10,"t3":10}}}"#;
    let both = Timings::from_json(json, "mem").unwrap();
    let names = files(&["f", "g"]);
    let r = PlanRequest {
        files: &names,
        timings: &both,
        target: ShardTarget::Count(2),
        split_by_test: true,
        max_shards: 8,
        keep_with_file: None,
    };
    let p = plan(&r).unwrap();
    let groups: Vec<f64> = p
        .shards
        .iter()
        .flat_map(|s| &s.units)
        .filter(|u| matches!(u, WorkUnit::Tests { .. }))
        .map(WorkUnit::estimated_secs)
        .collect();
    assert_eq!(groups, vec![28.0, 28.0]);
}

#[test]
fn split_is_skipped_without_per_test_history() {
    let names = files(&["huge", "a"]);
    let t = timings(&[("huge", 100.0), ("a", 1.0)]);
    let r = PlanRequest {
        files: &names,
        timings: &t,
        target: ShardTarget::Count(2),
        split_by_test: true,
        max_shards: 8,
        keep_with_file: None,
    };
    let p = plan(&r).unwrap();
    assert!(p.shards.iter().all(|s| s.tests().is_empty()));
    assert_eq!(p.estimated_makespan_secs, 100.0);
}

#[test]
fn target_seconds_picks_the_shard_count() {
    let names: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
    let t = Timings::from_json(
        &format!(
            r#"{{"version":1,"files":{{{}}}}}"#,
            names
                .iter()
                .map(|n| format!("\"{n}\":10"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        "mem",
    )
    .unwrap();
    // 200 s total, 60 s per shard → ceil(3.33) = 4 shards.
    let p = plan(&req(&names, &t, ShardTarget::TargetSeconds(60.0))).unwrap();
    assert_eq!(p.shards.len(), 4);
    assert_eq!(p.requested_shards, 4);
    // Clamped to max_shards.
    let mut r = req(&names, &t, ShardTarget::TargetSeconds(1.0));
    r.max_shards = 8;
    let p = plan(&r).unwrap();
    assert_eq!(p.shards.len(), 8);
    assert!(p.notes.iter().any(|n| n.contains("max_shards")));
    // Clamped to the number of files.
    let p = plan(&req(&names, &t, ShardTarget::TargetSeconds(0.001))).unwrap();
    assert_eq!(p.shards.len(), 20);
    // Never below 1.
    let p = plan(&req(&names, &t, ShardTarget::TargetSeconds(1e12))).unwrap();
    assert_eq!(p.shards.len(), 1);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            plan(&req(&names, &t, ShardTarget::TargetSeconds(bad))),
            Err(PlanError::InvalidTargetSeconds { .. })
        ));
    }
}

#[test]
fn fewer_files_than_shards_gives_no_empty_shard() {
    let names = files(&["a", "b", "c"]);
    let t = timings(&[("a", 0.0), ("b", 0.0), ("c", 0.0)]);
    let p = plan(&req(&names, &t, ShardTarget::Count(10))).unwrap();
    assert_eq!(p.shards.len(), 3);
    assert_eq!(p.requested_shards, 10);
    assert!(p.shards.iter().all(|s| s.units.len() == 1));
    assert!(p.notes.iter().any(|n| n.contains("only 3 work units")));
    assert_eq!(p.quality_ratio(), 1.0);
}

#[test]
fn huge_shard_counts_are_clamped_not_allocated() {
    let names = files(&["a", "b"]);
    let t = Timings::new();
    let mut r = req(&names, &t, ShardTarget::Count(u32::MAX));
    r.max_shards = MAX_SHARDS;
    let p = plan(&r).unwrap();
    assert_eq!(p.shards.len(), 2);
    assert_eq!(p.requested_shards, u32::MAX);
    r.max_shards = MAX_SHARDS + 1;
    assert!(matches!(plan(&r), Err(PlanError::InvalidMaxShards { .. })));
    r.max_shards = 0;
    assert!(matches!(plan(&r), Err(PlanError::InvalidMaxShards { .. })));
}

#[test]
fn bad_requests_get_clear_errors() {
    let t = Timings::new();
    let none: Vec<String> = vec![];
    let e = plan(&req(&none, &t, ShardTarget::Count(2))).unwrap_err();
    assert_eq!(e, PlanError::NoFiles);
    assert!(e.to_string().contains("`files` and `exclude` globs"));
    let names = files(&["a"]);
    assert_eq!(
        plan(&req(&names, &t, ShardTarget::Count(0))).unwrap_err(),
        PlanError::ZeroShards
    );
    let blank = files(&["a", "  "]);
    assert_eq!(
        plan(&req(&blank, &t, ShardTarget::Count(1))).unwrap_err(),
        PlanError::BlankPath
    );
    let too_many: Vec<String> = vec![String::new(); MAX_FILES + 1];
    let e = plan(&req(&too_many, &t, ShardTarget::Count(2))).unwrap_err();
    assert!(matches!(e, PlanError::TooManyFiles { count, .. } if count == MAX_FILES + 1));
}

#[test]
fn timings_json_round_trips_byte_for_byte() {
    let mut t = Timings::from_cases(&[
        case(Some("tests/b.py"), "B", "x", 1.25),
        case(Some("tests/a.py"), "", "y", 0.5),
        case(Some("tests/a.py"), "", "z \"quoted\" ü", 0.125),
    ]);
    t.insert_file("other.rs", 3.0);
    let json = t.to_json();
    let back = Timings::from_json(&json, "history.json").unwrap();
    assert_eq!(back, t);
    assert_eq!(back.to_json(), json);
    assert!(json.contains("\"version\": 1"));
    // Files known only through tests take their sum.
    let only_tests =
        Timings::from_json(r#"{"version":1,"tests":{"x.py":{"a":1.5,"b":2}}}"#, "h").unwrap();
    assert_eq!(only_tests.file_secs("x.py"), Some(3.5));
}

#[test]
fn bad_timings_json_names_the_input() {
    let cases: &[(&str, &str)] = &[
        ("not json", "history.json"),
        ("[1,2]", "history.json"),
        (r#"{"files":{}}"#, "missing field `version`"),
        (r#"{"version":"1"}"#, "positive integer"),
        (r#"{"version":1,"files":{"a":"slow"}}"#, "history.json"),
        (r#"{"version":1,"files":{},"extra":1}"#, "extra"),
    ];
    for (text, needle) in cases {
        let e = Timings::from_json(text, "history.json").unwrap_err();
        assert!(
            matches!(e, PlanError::BadTimingsJson { .. }),
            "{text}: {e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("history.json") && msg.contains(needle),
            "{text}: {msg}"
        );
    }
    let e = Timings::from_json(r#"{"version":2,"files":{}}"#, "h.json").unwrap_err();
    assert_eq!(
        e,
        PlanError::UnsupportedTimingsVersion {
            origin: "h.json".into(),
            version: 2
        }
    );
    let e = Timings::from_json(r#"{"version":1,"files":{"a.py":-3}}"#, "h.json").unwrap_err();
    assert!(
        matches!(e, PlanError::BadDuration { ref path, value, .. } if path == "a.py" && value == -3.0)
    );
    assert!(e.to_string().contains("a.py"));
    let e =
        Timings::from_json(r#"{"version":1,"tests":{"a.py":{"t":1e300}}}"#, "h.json").unwrap_err();
    assert!(
        matches!(e, PlanError::BadDuration { ref path, .. } if path == "a.py::t"),
        "{e:?}"
    );
}

#[test]
fn merge_lets_newer_observations_win_per_file() {
    let mut old = Timings::from_cases(&[
        case(Some("a"), "", "t1", 1.0),
        case(Some("a"), "", "gone", 9.0),
        case(Some("b"), "", "t", 2.0),
    ]);
    let newer = Timings::from_cases(&[case(Some("a"), "", "t1", 3.0)]);
    old.merge(&newer);
    assert_eq!(old.file_secs("a"), Some(3.0));
    assert_eq!(
        old.test_secs("a").unwrap().len(),
        1,
        "tests deleted since are dropped"
    );
    assert_eq!(old.file_secs("b"), Some(2.0));
}

#[test]
fn garbage_durations_count_as_zero() {
    let t = Timings::from_cases(&[
        case(Some("a"), "", "nan", f64::NAN),
        case(Some("a"), "", "neg", -1.0),
        case(Some("a"), "", "ok", 2.0),
    ]);
    assert_eq!(t.file_secs("a"), Some(2.0));
}

#[test]
fn tests_only_suite_without_history_gets_one_run_everything_shard() {
    let none: Vec<String> = vec![];
    let t = Timings::new();
    let r = PlanRequest {
        files: &none,
        timings: &t,
        target: ShardTarget::Count(4),
        split_by_test: true,
        max_shards: 8,
        keep_with_file: None,
    };
    let p = plan(&r).unwrap();
    assert_eq!(p.shards.len(), 1);
    assert!(p.shards[0].units.is_empty() && p.shards[0].tests().is_empty());
    assert_eq!(p.requested_shards, 4);
    assert!(p.notes[0].contains("runs the whole suite"));
}

#[test]
fn tests_only_suite_plans_from_test_history_and_names_every_test() {
    let mut t = Timings::new();
    for (file, n, secs) in [
        ("tests/test_a.py", 6, 2.0),
        ("tests/test_b.py", 3, 1.0),
        ("tests/test_c.py", 2, 0.5),
    ] {
        for i in 0..n {
            t.insert_test(file, &format!("{file}::t{i}"), secs);
        }
    }
    t.insert_file("no_tests_known.py", 3.0); // file-level history only: cannot be selected by test
    let none: Vec<String> = vec![];
    let r = PlanRequest {
        files: &none,
        timings: &t,
        target: ShardTarget::Count(3),
        split_by_test: true,
        max_shards: 8,
        keep_with_file: None,
    };
    let p = plan(&r).unwrap();
    assert_eq!(p.shards.len(), 3);
    // Every shard names its tests (an empty selection would run everything).
    assert!(p.shards.iter().all(|s| !s.tests().is_empty()));
    assert!(
        p.shards
            .iter()
            .flat_map(|s| &s.units)
            .all(|u| matches!(u, WorkUnit::Tests { .. }))
    );
    let mut tests: Vec<&str> = p.shards.iter().flat_map(|s| s.tests()).collect();
    tests.sort();
    tests.dedup();
    assert_eq!(tests.len(), 11);
    // 16 s over 3 shards: test_a (12 s) exceeds the ideal 5.3 s, so it is
    // cut into 3 groups of 4 s; b (3 s) and c (1 s) fill in: 4+3, 4+1, 4.
    assert_eq!(p.estimated_makespan_secs, 7.0);
    let shards_with_a = p
        .shards
        .iter()
        .filter(|s| s.files().contains(&"tests/test_a.py"))
        .count();
    assert_eq!(shards_with_a, 3);
    assert!(
        p.shards
            .iter()
            .all(|s| !s.files().contains(&"no_tests_known.py"))
    );
}
