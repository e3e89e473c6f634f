//! `testexec.toml` parsing, validation, expansion and file listing.

use std::fs;
use std::path::Path;

use testexec::domain::manifest::{
    DEFAULT_TIMEOUT_SECONDS, Expansion, MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, Shards, Suite,
};
use testexec::errors::ManifestError;

const PYTEST: &str = r#"
[suites.unit]
setup   = ["pip", "install", "-e", "."]
command = ["python", "-m", "pytest", "--junitxml={junit}", "{files}"]
files   = ["tests/**/test_*.py"]
exclude = ["tests/slow/**"]
shards  = 4
timeout_seconds = 900
retries = 1
artifacts = ["coverage/**"]
env     = { PYTHONDONTWRITEBYTECODE = "1" }
working_dir = "."
"#;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, "testexec.toml")
}

/// Parses `text`, expects an error and returns its message.
fn err(text: &str) -> String {
    match parse(text) {
        Ok(m) => panic!("expected an error, parsed {m:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(msg.contains(n), "`{n}` missing from:\n{msg}");
    }
}

/// A minimal valid suite plus `extra` lines.
fn suite_with(extra: &str) -> String {
    format!(
        "[suites.unit]\ncommand = [\"pytest\", \"--junitxml={{junit}}\", \"{{files}}\"]\nfiles = [\"tests/*.py\"]\n{extra}\n"
    )
}

fn x<'a>(files: &'a [String], tests: &'a [String]) -> Expansion<'a> {
    Expansion {
        files,
        tests,
        skip_tests: &[],
        junit: "/tmp/out/junit-3.xml",
        shard: 3,
        shard_count: 4,
        run_id: "01RUN",
    }
}

// ---- parsing and defaults ----------------------------------------------------

#[test]
fn parses_the_full_example() {
    let m = parse(PYTEST).unwrap();
    let s = m.suite("unit").unwrap();
    assert_eq!(s.name, "unit");
    assert_eq!(s.setup, vec![vec!["pip", "install", "-e", "."]]);
    assert_eq!(s.shards, Shards::Count(4));
    assert_eq!(s.timeout_seconds, 900);
    assert_eq!(s.retries, 1);
    assert_eq!(s.junit, vec!["{junit}"]);
    assert_eq!(s.exclude, vec!["tests/slow/**"]);
    assert_eq!(
        s.env.get("PYTHONDONTWRITEBYTECODE").map(String::as_str),
        Some("1")
    );
    assert_eq!(s.working_dir.as_deref(), Some("."));
    assert!(!s.supports_test_selection());
    assert_eq!(m.default_suite().unwrap(), s);
    assert_eq!(MANIFEST_FILE, "testexec.toml");
}

#[test]
fn defaults_are_filled_in() {
    let s = parse(&suite_with(""))
        .unwrap()
        .suites
        .remove("unit")
        .unwrap();
    assert_eq!(s.shards, Shards::Count(1));
    assert_eq!(s.timeout_seconds, DEFAULT_TIMEOUT_SECONDS);
    assert_eq!(s.retries, 0);
    assert_eq!(s.junit, vec!["{junit}"]);
    assert!(
        s.setup.is_empty() && s.exclude.is_empty() && s.artifacts.is_empty() && s.env.is_empty()
    );
    assert_eq!(s.working_dir, None);
}

#[test]
fn setup_accepts_one_argv_or_a_list_of_argvs() {
    let s = parse(&suite_with(
        r#"setup = [["pip", "install", "-e", "."], ["make", "fixtures"]]"#,
    ))
    .unwrap();
    assert_eq!(
        s.suites["unit"].setup,
        vec![vec!["pip", "install", "-e", "."], vec!["make", "fixtures"]]
    );
    let s = parse(&suite_with("setup = []")).unwrap();
    assert!(s.suites["unit"].setup.is_empty());
}

#[test]
fn auto_shards_with_target() {
    let m = parse(&suite_with("shards = \"auto\"\ntarget_shard_seconds = 120")).unwrap();
    assert_eq!(
        m.suites["unit"].shards,
        Shards::Auto {
            target_shard_seconds: 120
        }
    );
}

#[test]
fn suites_round_trip_through_json() {
    let m = parse(PYTEST).unwrap();
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
}

#[test]
fn suite_lookup_errors_list_known_suites() {
    let two = format!(
        "{}\n[suites.e2e]\ncommand = [\"npx\", \"playwright\", \"test\"]\njunit = [\"out.xml\"]\n",
        suite_with("")
    );
    let m = parse(&two).unwrap();
    assert_has(
        &m.suite("nope").unwrap_err().to_string(),
        &["unknown suite `nope`", "e2e, unit"],
    );
    assert_has(
        &m.default_suite().unwrap_err().to_string(),
        &["2 suites", "e2e, unit", "--suite"],
    );
    assert!(m.suite("e2e").is_ok());
}

// ---- errors ------------------------------------------------------------------

#[test]
fn toml_syntax_error_has_line_and_column() {
    let msg = err("[suites.unit]\ncommand = [\"pytest\"\n");
    assert_has(&msg, &["testexec.toml:"]);
    assert!(
        msg.starts_with("testexec.toml:2:") || msg.starts_with("testexec.toml:3:"),
        "{msg}"
    );
}

#[test]
fn unknown_field_suggests_the_right_one() {
    let msg = err(&suite_with("timeout = 900"));
    assert_has(
        &msg,
        &[
            "testexec.toml:4:1",
            "suite `unit`",
            "unknown field `timeout`",
            "did you mean `timeout_seconds`?",
        ],
    );
    let msg = err(&suite_with("retry = 1"));
    assert_has(&msg, &["did you mean `retries`?"]);
}

#[test]
fn unknown_top_level_table_points_to_suites() {
    let msg = err("[unit]\ncommand = [\"pytest\"]\n");
    assert_has(
        &msg,
        &["testexec.toml:1:", "unknown field `unit`", "[suites.unit]"],
    );
    let msg = err("[suite.unit]\ncommand = [\"pytest\"]\n");
    assert_has(&msg, &["did you mean `suites`?"]);
}

#[test]
fn duplicate_keys_are_located() {
    let msg = err(&suite_with("command = [\"again\"]"));
    assert_has(
        &msg,
        &[
            "testexec.toml:4:1",
            "suite `unit`",
            "field `command`",
            "duplicate key",
            "only once",
        ],
    );
}

#[test]
fn no_suites_is_an_error() {
    assert_has(
        &err(""),
        &["testexec.toml:1:1", "no suites defined", "[suites.unit]"],
    );
    assert_has(&err("[suites]\n"), &["no suites defined"]);
}

#[test]
fn shell_strings_are_rejected_with_an_argv_hint() {
    let msg = err(&suite_with("setup = \"pip install -e .\""));
    assert_has(
        &msg,
        &[
            "testexec.toml:4:9",
            "field `setup`",
            "shell string",
            "never runs a shell",
            r#"setup = ["pip", "install", "-e", "."]"#,
        ],
    );
    let msg = err("[suites.unit]\ncommand = \"pytest tests && echo ok\"\njunit = [\"j.xml\"]\n");
    assert_has(
        &msg,
        &[
            "testexec.toml:2:11",
            "field `command`",
            "shell string",
            r#"command = ["pytest", "tests", "&&""#,
        ],
    );
}

#[test]
fn setup_mixing_strings_and_arrays_is_rejected() {
    let msg = err(&suite_with(r#"setup = ["make", ["pip", "install"]]"#));
    assert_has(
        &msg,
        &["field `setup`", "mixes strings and arrays", "list of argvs"],
    );
}

#[test]
fn missing_or_empty_command() {
    let msg = err("[suites.unit]\nfiles = [\"t/*.py\"]\n");
    assert_has(
        &msg,
        &[
            "testexec.toml:1:9",
            "suite `unit`",
            "field `command`",
            "missing `command`",
            "hint:",
        ],
    );
    let msg = err("[suites.unit]\ncommand = []\njunit = [\"j.xml\"]\n");
    assert_has(
        &msg,
        &[
            "testexec.toml:2:11",
            "empty command",
            "first element is the program",
        ],
    );
    let msg = err("[suites.unit]\ncommand = [\"\"]\njunit = [\"j.xml\"]\n");
    assert_has(&msg, &["empty command"]);
}

#[test]
fn wrong_types_name_the_field_and_element() {
    let msg = err("[suites.unit]\ncommand = [\"pytest\", 3]\njunit = [\"j.xml\"]\n");
    assert_has(
        &msg,
        &[
            "testexec.toml:2:22",
            "field `command[1]`",
            "integer",
            "hint: expected something like command = [",
        ],
    );
    let msg = err(&suite_with("timeout_seconds = \"900\""));
    assert_has(
        &msg,
        &[
            "testexec.toml:4:",
            "field `timeout_seconds`",
            "string",
            "timeout_seconds = 900",
        ],
    );
    let msg = err(
        "[suites.u]\ncommand = [\"t\", \"--junitxml={junit}\", \"{files}\"]\nfiles = \"tests/*.py\"\n",
    );
    assert_has(
        &msg,
        &["testexec.toml:3:9", "field `files`", "use an array"],
    );
}

#[test]
fn shard_limits() {
    assert_has(
        &err(&suite_with("shards = 0")),
        &[
            "testexec.toml:4:10",
            "field `shards`",
            "out of range 1..=1000",
            "hint:",
        ],
    );
    assert_has(
        &err(&suite_with("shards = 1001")),
        &["out of range 1..=1000"],
    );
    assert_has(&err(&suite_with("shards = -3")), &["out of range"]);
    assert_has(
        &err(&suite_with("shards = \"4\"")),
        &["field `shards`", "drop the quotes: shards = 4"],
    );
    assert_has(
        &err(&suite_with("shards = \"many\"")),
        &["invalid shards", "\"auto\""],
    );
    assert_has(
        &err(&suite_with("shards = \"auto\"")),
        &[
            "testexec.toml:4:10",
            "needs target_shard_seconds",
            "target_shard_seconds = 120",
        ],
    );
    assert_has(
        &err(&suite_with("target_shard_seconds = 120")),
        &["field `target_shard_seconds`", "without shards = \"auto\""],
    );
    assert_has(
        &err(&suite_with("shards = 2\ntarget_shard_seconds = 120")),
        &["testexec.toml:5:", "only applies to shards = \"auto\""],
    );
    assert_has(
        &err(&suite_with("shards = \"auto\"\ntarget_shard_seconds = 0")),
        &["field `target_shard_seconds`", "out of range 1..=86400"],
    );
}

#[test]
fn sharding_needs_files_or_tests_in_the_command() {
    let msg =
        err("[suites.unit]\ncommand = [\"make\", \"test\"]\njunit = [\"j.xml\"]\nshards = 3\n");
    assert_has(
        &msg,
        &[
            "field `command`",
            "neither {files} nor {tests}",
            "shards = 1",
        ],
    );
}

#[test]
fn timeout_and_retry_limits() {
    assert_has(
        &err(&suite_with("timeout_seconds = 0")),
        &[
            "field `timeout_seconds`",
            "out of range 1..=86400",
            "one day",
        ],
    );
    assert_has(
        &err(&suite_with("timeout_seconds = 86401")),
        &["out of range 1..=86400"],
    );
    assert_has(
        &err(&suite_with("retries = 11")),
        &[
            "testexec.toml:4:11",
            "field `retries`",
            "out of range 0..=10",
        ],
    );
    assert_has(&err(&suite_with("retries = -1")), &["out of range 0..=10"]);
    assert!(parse(&suite_with("timeout_seconds = 86400\nretries = 10")).is_ok());
}

#[test]
fn paths_must_stay_inside_the_repository() {
    assert_has(
        &err(&suite_with("working_dir = \"/abs\"")),
        &["field `working_dir`", "is absolute", "relative"],
    );
    assert_has(
        &err(&suite_with("working_dir = \"a/../../b\"")),
        &["field `working_dir`", "contains `..`"],
    );
    assert_has(
        &err(&suite_with("working_dir = \"C:\\\\x\"")),
        &["is absolute"],
    );
    assert_has(
        &err(&suite_with("working_dir = \"\"")),
        &["empty working_dir", "\".\""],
    );
    let msg = err(
        "[suites.unit]\ncommand = [\"pytest\", \"{files}\"]\nfiles = [\"ok/*.py\", \"../x/*.py\"]\njunit = [\"j.xml\"]\n",
    );
    assert_has(
        &msg,
        &["testexec.toml:3:21", "field `files[1]`", "contains `..`"],
    );
    assert_has(
        &err(&suite_with("exclude = [\"/etc/**\"]")),
        &["field `exclude[0]`", "is absolute"],
    );
    assert_has(
        &err(&suite_with("artifacts = [\"../secrets\"]")),
        &["field `artifacts[0]`", "`..`"],
    );
    assert_has(
        &err(&suite_with("junit = [\"/tmp/*.xml\"]")),
        &["field `junit[0]`", "is absolute"],
    );
}

#[test]
fn invalid_globs_are_reported() {
    let msg = err(&suite_with("exclude = [\"tests/[abc\"]"));
    assert_has(
        &msg,
        &[
            "testexec.toml:4:12",
            "field `exclude[0]`",
            "invalid glob",
            "hint:",
        ],
    );
    assert_has(
        &err(&suite_with("artifacts = [\"a/{b,c\"]")),
        &["field `artifacts[0]`", "invalid glob"],
    );
    let files = |f: &str| {
        format!(
            "[suites.u]\ncommand = [\"t\", \"--junitxml={{junit}}\", \"{{files}}\"]\nfiles = {f}\n"
        )
    };
    assert_has(
        &err(&files("[\"\"]")),
        &["testexec.toml:3:10", "field `files[0]`", "empty glob"],
    );
    assert_has(
        &err(&files("[\"a/{b,c\"]")),
        &["field `files[0]`", "invalid glob"],
    );
}

#[test]
fn list_placeholders_must_stand_alone() {
    let msg = err(
        "[suites.unit]\ncommand = [\"pytest\", \"--files={files}\"]\nfiles = [\"t/*\"]\njunit = [\"j.xml\"]\n",
    );
    assert_has(
        &msg,
        &[
            "testexec.toml:2:22",
            "field `command[1]`",
            "`{files}` must be a whole argv element",
            "its own element",
        ],
    );
    let msg = err("[suites.unit]\ncommand = [\"pytest\", \"-k{tests}\"]\njunit = [\"j.xml\"]\n");
    assert_has(
        &msg,
        &[
            "field `command[1]`",
            "`{tests}` must be a whole argv element",
        ],
    );
}

#[test]
fn unknown_placeholders_are_rejected_with_a_suggestion() {
    let msg = err("[suites.unit]\ncommand = [\"pytest\", \"{file}\"]\njunit = [\"j.xml\"]\n");
    assert_has(
        &msg,
        &[
            "testexec.toml:2:22",
            "suite `unit`",
            "field `command[1]`",
            "unknown placeholder `{file}`",
            "did you mean `{files}`?",
        ],
    );
    assert_has(
        &err(&suite_with("env = { A = \"{shrad}\" }")),
        &["field `env.A`", "did you mean `{shard}`?"],
    );
    assert_has(
        &err(&suite_with("junit = [\"{junk}\"]")),
        &["field `junit[0]`", "unknown placeholder `{junk}`"],
    );
    assert_has(
        &err("[suites.u]\ncommand = [\"echo\", \"{\"]\njunit = [\"j\"]\n"),
        &["unclosed `{`", "`{{`"],
    );
    assert_has(
        &err("[suites.u]\ncommand = [\"echo\", \"}\"]\njunit = [\"j\"]\n"),
        &["unmatched `}`", "`}}`"],
    );
}

#[test]
fn placeholders_are_limited_per_field() {
    assert_has(
        &err(&suite_with("setup = [\"gen\", \"{files}\"]")),
        &[
            "field `setup[1]`",
            "`{files}` is not allowed here",
            "belong in `command`",
        ],
    );
    assert_has(
        &err(&suite_with("setup = [\"gen\", \"{junit}\"]")),
        &["`{junit}` is not allowed here"],
    );
    assert_has(
        &err(&suite_with("env = { F = \"{files}\" }")),
        &["field `env.F`", "not allowed here"],
    );
    assert_has(
        &err(&suite_with("junit = [\"{tests}.xml\"]")),
        &["field `junit[0]`", "not allowed here"],
    );
    assert!(
        parse(&suite_with(
            "setup = [\"gen\", \"--shard={shard}/{shard_count}\", \"{run_id}\"]"
        ))
        .is_ok()
    );
}

#[test]
fn env_names_and_values_are_checked() {
    assert_has(
        &err(&suite_with("env = { \"1BAD\" = \"x\" }")),
        &[
            "testexec.toml:4:9",
            "field `env.1BAD`",
            "invalid environment variable name",
            "letters, digits and `_`",
        ],
    );
    assert_has(
        &err(&suite_with("env = { \"A-B\" = \"x\" }")),
        &["invalid environment variable name \"A-B\""],
    );
    assert_has(
        &err(&suite_with("env = { PORT = 8080 }")),
        &["field `env`", "quote them"],
    );
    assert_has(&err(&suite_with("env = { A = \"x\\u0000\" }")), &["NUL"]);
}

#[test]
fn junit_is_required_without_the_placeholder() {
    let msg = err("[suites.unit]\ncommand = [\"mvn\", \"test\"]\n");
    assert_has(
        &msg,
        &[
            "testexec.toml:1:9",
            "field `junit`",
            "does not mention {junit}",
            "--junitxml={junit}",
            "surefire-reports",
        ],
    );
    assert_has(
        &err("[suites.unit]\ncommand = [\"mvn\"]\njunit = []\n"),
        &["field `junit`", "`junit` is empty"],
    );
    // `{junit}` in an env value counts (jest-junit reads JEST_JUNIT_OUTPUT_FILE).
    let m = parse("[suites.js]\ncommand = [\"npx\", \"jest\"]\nenv = { JEST_JUNIT_OUTPUT_FILE = \"{junit}\" }\n").unwrap();
    assert_eq!(m.suites["js"].junit, vec!["{junit}"]);
}

#[test]
fn files_are_required_when_the_command_uses_them() {
    let msg = err("[suites.unit]\ncommand = [\"pytest\", \"--junitxml={junit}\", \"{files}\"]\n");
    assert_has(
        &msg,
        &["field `files`", "missing `files`", "tests/**/test_*.py"],
    );
    let msg = err(
        "[suites.unit]\ncommand = [\"pytest\", \"--junitxml={junit}\", \"{files}\"]\nfiles = []\n",
    );
    assert_has(&msg, &["testexec.toml:3:9", "`files` is empty"]);
}

#[test]
fn suite_names_are_checked() {
    let msg = err("[suites.\"bad name\"]\ncommand = [\"x\"]\njunit = [\"j\"]\n");
    assert_has(
        &msg,
        &[
            "testexec.toml:1:9",
            "invalid suite name \"bad name\"",
            "--suite",
        ],
    );
}

#[test]
fn size_limit_applies_to_parse_and_load() {
    let big = format!(
        "# {}\n{}",
        "x".repeat(MAX_MANIFEST_BYTES as usize),
        suite_with("")
    );
    assert_has(&err(&big), &["larger than the 1048576-byte limit"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(MANIFEST_FILE);
    fs::write(&path, &big).unwrap();
    assert!(matches!(
        Manifest::load(&path),
        Err(ManifestError::TooLarge { .. })
    ));
    fs::write(&path, suite_with("")).unwrap();
    assert!(Manifest::load(&path).is_ok());
    fs::write(&path, b"\xff\xfe").unwrap();
    assert_has(
        &Manifest::load(&path).unwrap_err().to_string(),
        &["not UTF-8"],
    );
    let missing = Manifest::load(&dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert_has(&missing, &["cannot read manifest", "nope.toml"]);
    // The origin in messages is the path that was loaded.
    fs::write(&path, "[suites.unit]\n").unwrap();
    assert_has(
        &Manifest::load(&path).unwrap_err().to_string(),
        &[&format!("{}:1:", path.display())],
    );
}

#[test]
fn garbage_never_panics() {
    for text in [
        "\0",
        "[[suites]]",
        "suites = 3",
        "[suites]\nunit = 3",
        "[suites.a]\nshards = 1e9",
        "[suites.a.command]\nx=1",
    ] {
        assert!(parse(text).is_err(), "{text:?} parsed");
    }
}

// ---- expansion ---------------------------------------------------------------

#[test]
fn command_expands_files_into_many_elements() {
    let s = parse(PYTEST).unwrap().suites.remove("unit").unwrap();
    let files = vec![
        "tests/test_a.py".to_string(),
        "tests/with space/test_b.py".to_string(),
    ];
    assert_eq!(
        s.command_argv(&x(&files, &[])),
        vec![
            "python",
            "-m",
            "pytest",
            "--junitxml=/tmp/out/junit-3.xml",
            "tests/test_a.py",
            "tests/with space/test_b.py"
        ]
    );
    // An empty file list leaves no trace (no empty-string argument).
    assert_eq!(s.command_argv(&x(&[], &[])).len(), 4);
    assert_eq!(
        s.setup_argvs(&x(&files, &[])),
        vec![vec!["pip", "install", "-e", "."]]
    );
    assert_eq!(s.junit_globs(&x(&files, &[])), vec!["/tmp/out/junit-3.xml"]);
}

#[test]
fn tests_placeholder_enables_selection() {
    let m =
        parse("[suites.u]\ncommand = [\"pytest\", \"--junitxml={junit}\", \"{tests}\"]\n").unwrap();
    let s = &m.suites["u"];
    assert!(s.supports_test_selection());
    let tests = vec![
        "tests/test_a.py::test_one".to_string(),
        "tests/test_a.py::test_two[1]".to_string(),
    ];
    assert_eq!(s.command_argv(&x(&[], &tests))[2..], tests[..]);
}

#[test]
fn split_by_test_needs_a_command_that_can_run_the_rest_of_a_file() {
    let suite = |command: &str, extra: &str| {
        format!(
            "[suites.u]\ncommand = {command}\nfiles = [\"t/*.py\"]\nshards = 4\n{extra}split_by_test = true\n"
        )
    };
    let full = r#"["pytest", "--junitxml={junit}", "{files}", "{tests}", "{skip_tests}"]"#;
    let m = parse(&suite(full, "")).unwrap();
    let s = &m.suites["u"];
    assert!(s.split_by_test && s.splits_files_by_test());
    let (tests, skips) = s.render_tests(&["t/a.py::x".into()], &["t/a.py::y".into()]);
    let argv = s.command_argv(&Expansion {
        tests: &tests,
        skip_tests: &skips,
        ..x(&["t/a.py".into()], &[])
    });
    assert_eq!(argv[2..], ["t/a.py", "t/a.py::x", "--deselect=t/a.py::y"]);

    let e = err(&suite(
        r#"["pytest", "--junitxml={junit}", "{files}", "{tests}"]"#,
        "",
    ));
    assert!(
        e.contains("split_by_test") && e.contains("\"{skip_tests}\""),
        "{e}"
    );
    assert!(e.contains("hint"), "{e}");
    let e = err(&suite(full, "test_id = \"go\"\n"));
    assert!(e.contains("test_id = \"go\" cannot split a file"), "{e}");
    // Off by default, and `false` asks for nothing.
    let m = parse(
        &suite(r#"["pytest", "--junitxml={junit}", "{files}"]"#, "")
            .replace("split_by_test = true", "split_by_test = false"),
    )
    .unwrap();
    assert!(!m.suites["u"].split_by_test);
}

#[test]
fn a_one_pattern_runner_may_take_tests_inside_an_element() {
    let maven = "[suites.j]\ncommand = [\"mvn\", \"surefire:test\", \"-Dtest={tests}\"]\njunit = [\"target/surefire-reports/TEST-*.xml\"]\n";
    let m = parse(&format!("{maven}test_id = \"maven\"\n")).unwrap();
    let s = &m.suites["j"];
    assert!(s.supports_test_selection());
    let (tests, _) = s.render_tests(&["a.FooTest#one".into(), "a.FooTest#two".into()], &[]);
    let argv = s.command_argv(&x(&[], &tests));
    assert_eq!(argv[2], "-Dtest=a.FooTest#one+two");
    // The default (pytest) gives one element per test: it cannot be glued.
    let e = err(maven);
    assert!(e.contains("`{tests}` must be a whole argv element"), "{e}");
}

#[test]
fn new_test_runs_is_checked() {
    let base = "[suites.u]\ncommand = [\"pytest\", \"--junitxml={junit}\", \"{tests}\"]\n";
    assert_eq!(
        parse(base).unwrap().history.flaky.new_test_runs,
        3,
        "on by default"
    );
    let off = parse(&format!("{base}[flaky]\nnew_test_runs = 0\n")).unwrap();
    assert_eq!(off.history.flaky.new_test_runs, 0);
    let e = err(&format!("{base}[flaky]\nnew_test_runs = 11\n"));
    assert!(
        e.contains("new_test_runs = 11 is out of range 0..=10"),
        "{e}"
    );
}

#[test]
fn scalars_escapes_and_env_expand() {
    let text = r#"
[suites.u]
setup = [["echo", "{shard}/{shard_count}"], ["echo", "{{literal}}"]]
command = ["run", "--id={run_id}", "--part={shard}of{shard_count}", "{{\"json\": 1}}", "{files}"]
files = ["*.t"]
shards = 4
junit = ["reports/{shard}/*.{{xml,json}}"]
env = { OUT = "{junit}", SHARD = "{shard}" }
"#;
    let s = parse(text).unwrap().suites.remove("u").unwrap();
    let files = vec!["a.t".to_string()];
    let x = x(&files, &[]);
    assert_eq!(
        s.command_argv(&x),
        vec!["run", "--id=01RUN", "--part=3of4", "{\"json\": 1}", "a.t"]
    );
    assert_eq!(
        s.setup_argvs(&x),
        vec![vec!["echo", "3/4"], vec!["echo", "{literal}"]]
    );
    assert_eq!(s.junit_globs(&x), vec!["reports/3/*.{xml,json}"]);
    let env = s.env_vars(&x);
    assert_eq!(env["OUT"], "/tmp/out/junit-3.xml");
    assert_eq!(env["SHARD"], "3");
}

#[test]
fn junit_path_with_glob_metacharacters_is_matched_literally() {
    let s = parse(&suite_with(""))
        .unwrap()
        .suites
        .remove("unit")
        .unwrap();
    let xp = Expansion {
        junit: "out/[1]/j*.xml",
        ..x(&[], &[])
    };
    let globs = s.junit_globs(&xp);
    let g = globset::GlobBuilder::new(&globs[0])
        .literal_separator(true)
        .build()
        .unwrap()
        .compile_matcher();
    assert!(g.is_match("out/[1]/j*.xml"));
    assert!(!g.is_match("out/1/junit.xml"));
}

// ---- file listing -------------------------------------------------------------

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, "").unwrap();
}

fn suite(files: &[&str], exclude: &[&str], working_dir: Option<&str>) -> Suite {
    let mut s = parse(&suite_with(""))
        .unwrap()
        .suites
        .remove("unit")
        .unwrap();
    s.files = files.iter().map(|s| s.to_string()).collect();
    s.exclude = exclude.iter().map(|s| s.to_string()).collect();
    s.working_dir = working_dir.map(str::to_string);
    s
}

#[test]
fn list_files_matches_excludes_sorts_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for f in [
        "tests/test_b.py",
        "tests/test_a.py",
        "tests/unit/test_c.py",
        "tests/unit/helper.py",
        "tests/slow/test_slow.py",
        "tests/.hidden/test_h.py",
        ".venv/lib/tests/test_dep.py",
        "node_modules/x/tests/test_n.py",
        "tests/__pycache__/test_a.py",
        "target/tests/test_t.py",
        "src/app.py",
    ] {
        touch(root, f);
    }
    let s = suite(
        &["tests/**/test_*.py", "tests/test_a.py"],
        &["tests/slow/**"],
        None,
    );
    assert_eq!(
        s.list_files(root).unwrap(),
        vec!["tests/test_a.py", "tests/test_b.py", "tests/unit/test_c.py"]
    );
    // `*` does not cross directories; `**` does.
    let s = suite(&["tests/*.py"], &[], None);
    assert_eq!(
        s.list_files(root).unwrap(),
        vec!["tests/test_a.py", "tests/test_b.py"]
    );
    // Relative to working_dir.
    let s = suite(&["**/test_*.py"], &["slow"], Some("tests"));
    assert_eq!(
        s.list_files(root).unwrap(),
        vec!["test_a.py", "test_b.py", "unit/test_c.py"]
    );
}

#[test]
fn list_files_errors() {
    let dir = tempfile::tempdir().unwrap();
    touch(dir.path(), "src/app.py");
    let msg = suite(&["tests/**/test_*.py"], &["tests/slow/**"], None)
        .list_files(dir.path())
        .unwrap_err()
        .to_string();
    assert_has(
        &msg,
        &[
            "suite `unit`",
            "no test files match `tests/**/test_*.py`",
            "under",
            "excluding `tests/slow/**`",
        ],
    );
    let msg = suite(&["*.py"], &[], Some("missing"))
        .list_files(dir.path())
        .unwrap_err()
        .to_string();
    assert_has(&msg, &["working_dir `missing` is not a directory"]);
    let msg = suite(&[], &[], None)
        .list_files(dir.path())
        .unwrap_err()
        .to_string();
    assert_has(&msg, &["no `files` globs"]);
}

#[cfg(unix)]
#[test]
fn list_files_never_follows_symlinked_directories() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    touch(outside.path(), "tests/test_outside.py");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(root, "tests/test_a.py");
    symlink(root.join("tests"), root.join("tests/loop")).unwrap(); // a loop
    symlink(outside.path().join("tests"), root.join("tests/out")).unwrap(); // escapes the tree
    symlink(
        outside.path().join("tests/test_outside.py"),
        root.join("tests/test_link_out.py"),
    )
    .unwrap();
    symlink(
        root.join("tests/test_a.py"),
        root.join("tests/test_link_in.py"),
    )
    .unwrap();
    let s = suite(&["**/test_*.py"], &[], None);
    assert_eq!(
        s.list_files(root).unwrap(),
        vec!["tests/test_a.py", "tests/test_link_in.py"]
    );
    // A working_dir that is a symlink out of the repository is refused.
    symlink(outside.path(), root.join("elsewhere")).unwrap();
    let msg = suite(&["**/*.py"], &[], Some("elsewhere"))
        .list_files(root)
        .unwrap_err()
        .to_string();
    assert_has(&msg, &["not a directory inside"]);
}

#[test]
fn list_files_limits_depth() {
    let dir = tempfile::tempdir().unwrap();
    let deep: String = (0..70).map(|i| format!("d{i}/")).collect();
    touch(dir.path(), &format!("{deep}test_x.py"));
    let msg = suite(&["**/test_*.py"], &[], None)
        .list_files(dir.path())
        .unwrap_err()
        .to_string();
    assert_has(&msg, &["nested deeper than 64 directories"]);
}

// ---- docs ----------------------------------------------------------------------

/// Every ```toml block in docs/manifest.md must parse, so the docs cannot rot.
#[test]
fn every_example_in_the_docs_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/manifest.md");
    let doc = fs::read_to_string(&path).unwrap();
    let mut blocks = 0;
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + "```toml\n".len()..];
        let end = body.find("```").expect("unclosed ```toml block");
        let text = &body[..end];
        blocks += 1;
        if let Err(e) = Manifest::parse(text, "docs/manifest.md") {
            panic!("docs example #{blocks} does not parse: {e}\n{text}");
        }
        rest = &body[end + 3..];
    }
    assert!(
        blocks >= 5,
        "expected the per-runner examples, found {blocks} ```toml blocks"
    );
}

#[test]
fn wrong_shapes_get_located_messages() {
    let msg = err("suites = 3\n");
    assert_has(
        &msg,
        &[
            "testexec.toml:1:10",
            "field `suites`",
            "invalid type: integer",
        ],
    );
    let msg = err("[suites]\nunit = 3\n");
    assert_has(
        &msg,
        &["testexec.toml:2:8", "suite `unit`", "invalid type: integer"],
    );
    let msg = err("[suites.unit]\ncommand = [\"x\"]\njunit = [\"j\"]\nshards = 2.5\n");
    assert_has(&msg, &["testexec.toml:4:10", "field `shards`", "\"auto\""]);
    // Inline tables work like headers.
    let m = parse("suites = { unit = { command = [\"t\", \"--junitxml={junit}\"] } }\n").unwrap();
    assert_eq!(m.suites["unit"].command, vec!["t", "--junitxml={junit}"]);
}

/// A FIFO named as the manifest is refused at once, not read forever.
#[test]
fn a_fifo_as_the_manifest_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("testexec.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let started = std::time::Instant::now();
    let err = testexec::domain::manifest::Manifest::load(&fifo).unwrap_err();
    assert!(err.to_string().contains("FIFO"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// docs/flaky.md's example parses to the policy the page describes.
#[test]
fn the_flaky_docs_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/flaky.md");
    let doc = fs::read_to_string(&path).unwrap();
    let start = doc.find("```toml\n").expect("a ```toml block") + "```toml\n".len();
    let end = doc[start..].find("```").expect("closed") + start;
    let m = Manifest::parse(&doc[start..end], "docs/flaky.md").unwrap();
    assert!(m.history.quarantine.auto);
    assert_eq!(m.history.quarantine.release_after, 10);
    assert!(
        m.history
            .quarantine
            .tests
            .contains("tests.test_payments::test_settlement_window")
    );
    assert_eq!(m.history.flaky.broken_runs, 5);
}
