//! Every ```toml example of docs/manifest.md, run for real: the block is
//! copied verbatim as a repository's `testexec.toml`, the repository gets a
//! small project in the example's ecosystem, and `testexec run` runs each of
//! its suites with the real tool (pytest, Jest + jest-junit, cargo nextest,
//! gotestsum, Maven Surefire), from inside the repository (PATH `.`, the
//! default) and from its parent. A documented example that does not work
//! fails here; a new example without a test fails
//! `every_toml_example_of_the_manifest_docs_has_a_run_test`.
//!
//! The tools come from `scripts/test-deps.sh` (a wheelhouse for pip, Jest in
//! the test node_modules, gotestsum and Go and Maven's Debian packages);
//! without them a test skips, or fails under `TESTEXEC_REQUIRE_E2E=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testexec::testkit::emulators;

/// The first suite header of each example, in page order, and the test that
/// runs it.
const COVERED: [(&str, &str); 9] = [
    ("unit", "the_opening_pytest_example_runs"),
    ("integration", "the_auto_shards_example_runs"),
    ("unit", "the_split_by_test_example_runs"),
    ("unit", "the_queue_mode_example_runs"),
    ("unit", "the_files_and_tests_example_runs"),
    ("web", "the_jest_example_runs"),
    ("rust", "the_cargo_nextest_example_runs"),
    ("go-parser", "the_go_examples_run"),
    ("java", "the_maven_example_runs"),
];

fn docs() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/manifest.md");
    std::fs::read_to_string(&path).expect("reading docs/manifest.md")
}

/// The page's ```toml blocks, in order.
fn toml_blocks() -> Vec<String> {
    let docs = docs();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in docs.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The `n`th block (0-based), checked to be the one `COVERED` says.
fn block(n: usize) -> String {
    let block = toml_blocks()
        .into_iter()
        .nth(n)
        .expect("the example exists");
    assert_eq!(
        first_suite(&block),
        COVERED[n].0,
        "docs/manifest.md's examples moved; update COVERED"
    );
    block
}

fn first_suite(block: &str) -> &str {
    let header = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("[suites."))
        .expect("a [suites.*] table");
    header.trim_end_matches(']')
}

#[test]
fn every_toml_example_of_the_manifest_docs_has_a_run_test() {
    let blocks = toml_blocks();
    let firsts: Vec<&str> = blocks.iter().map(|b| first_suite(b)).collect();
    let covered: Vec<&str> = COVERED.iter().map(|(suite, _)| *suite).collect();
    assert_eq!(
        firsts, covered,
        "each ```toml block of docs/manifest.md needs a test here that runs it"
    );
}

// ---- tools ------------------------------------------------------------------

/// What the examples run with: `PATH` and the variables that point pip at
/// the local wheelhouse (no index: setup commands must not need the network).
struct Tools {
    path: String,
    env: Vec<(&'static str, String)>,
    /// Shards at once: 1 where every shard's setup installs into one shared
    /// environment (a CI machine per shard has its own).
    jobs: u32,
}

impl Tools {
    fn system(env: Vec<(&'static str, String)>) -> Self {
        Self {
            path: path_with(&[]),
            env,
            jobs: 2,
        }
    }
}

fn var_or_skip(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => emulators::skip(format_args!(
            "`{var}` is not set ({what}): run the tests through scripts/test.sh"
        )),
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

fn tool_or_skip(tool: &str, hint: &str) -> Option<()> {
    if on_path(tool) {
        Some(())
    } else {
        emulators::skip(format_args!("`{tool}` is not on PATH; {hint}"))
    }
}

fn path_with(dirs: &[PathBuf]) -> String {
    let old = std::env::var_os("PATH").unwrap_or_default();
    let all = dirs.iter().cloned().chain(std::env::split_paths(&old));
    std::env::join_paths(all)
        .expect("a joinable PATH")
        .into_string()
        .expect("a UTF-8 PATH")
}

/// A fresh virtualenv (with `python` and `pip`) whose pytest comes from the
/// wheelhouse: each example's `pip install -e .` then changes only it.
fn python(tmp: &Path) -> Option<Tools> {
    let wheels = var_or_skip("TESTEXEC_TEST_WHEELS", "pip wheelhouse")?;
    let venv = tmp.join("venv");
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv");
    assert!(status.success());
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "--no-index"])
        .args(["--find-links", &wheels, "pytest"])
        .status()
        .expect("pip install pytest");
    assert!(status.success(), "pytest from {wheels}");
    Some(Tools {
        path: path_with(&[venv.join("bin")]),
        env: vec![
            ("PIP_NO_INDEX", "1".into()),
            ("PIP_FIND_LINKS", wheels),
            ("PIP_DISABLE_PIP_VERSION_CHECK", "1".into()),
        ],
        jobs: 1,
    })
}

// ---- running ----------------------------------------------------------------

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, body) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// A repository at `<tmp>/repo` holding `manifest` and `files`.
fn repo(tmp: &Path, manifest: &str, files: &[(&str, &str)]) -> PathBuf {
    repo_at(tmp, manifest, files)
}

fn repo_at(parent: &Path, manifest: &str, files: &[(&str, &str)]) -> PathBuf {
    let repo = parent.join("repo");
    write(&repo, files);
    std::fs::write(repo.join("testexec.toml"), manifest).unwrap();
    repo
}

/// `testexec run --suite <suite>` from `cwd` (PATH `path`, or the default
/// `.`); the run's JSON, after asserting it exited 0.
fn run(tools: &Tools, cwd: &Path, path: Option<&str>, suite: &str, state: &Path) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_testexec"));
    cmd.current_dir(cwd)
        .env("PATH", &tools.path)
        // A user's checkout builds into its own target directory.
        .env_remove("CARGO_TARGET_DIR")
        .envs(tools.env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["run", "--json", "--suite", suite])
        .args(["--jobs", &tools.jobs.to_string()])
        .arg("--state-dir")
        .arg(state);
    if let Some(path) = path {
        cmd.arg(path);
    }
    let out = cmd.output().expect("running testexec");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(0),
        "suite `{suite}` from {} ({path:?}):\n{}\n{json:#}",
        cwd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    json
}

/// Runs `suite` both ways (inside the repository with the default PATH, and
/// from its parent) and checks the passed tests each time.
fn run_both_ways(tools: &Tools, repo: &Path, suite: &str, passed: u64, shards: usize) {
    let parent = repo.parent().unwrap();
    for (n, (cwd, path)) in [(repo, None), (parent, Some("repo"))]
        .into_iter()
        .enumerate()
    {
        let state = parent.join(format!("state-{suite}-{n}"));
        let json = run(tools, cwd, path, suite, &state);
        let counts = &json["run"]["counts"];
        assert_eq!(json["run"]["status"], "passed", "{json:#}");
        assert_eq!(counts["tests"], passed, "suite `{suite}`: {json:#}");
        assert_eq!(counts["passed"], passed, "suite `{suite}`: {json:#}");
        assert_eq!(
            json["shards"].as_array().map(Vec::len),
            Some(shards),
            "suite `{suite}`: {json:#}"
        );
    }
}

/// A pip-installable package (`pip install -e .`), with `test` extras.
const PYPROJECT: &str = r#"[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "demo-pkg"
version = "0.1.0"

[project.optional-dependencies]
test = []

[tool.setuptools]
packages = ["demo_pkg"]
"#;

fn pytest_file(n: usize, tests: usize) -> String {
    (0..tests)
        .map(|t| format!("def test_{n}_{t}():\n    import demo_pkg\n    assert demo_pkg.add({t}, 1) == {t} + 1\n\n"))
        .collect()
}

fn python_package() -> Vec<(&'static str, String)> {
    vec![
        ("pyproject.toml", PYPROJECT.into()),
        (
            "demo_pkg/__init__.py",
            "def add(a, b):\n    return a + b\n".into(),
        ),
    ]
}

fn as_refs<'a>(files: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    files.iter().map(|(p, b)| (*p, b.as_str())).collect()
}

// ---- the examples -------------------------------------------------------------

#[test]
fn the_opening_pytest_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tools) = python(tmp.path()) else {
        return;
    };
    let mut files = python_package();
    for (n, name) in ["tests/test_0.py", "tests/test_1.py", "tests/unit/test_2.py"]
        .into_iter()
        .chain(["tests/unit/test_3.py", "tests/test_4.py", "tests/test_5.py"])
        .enumerate()
    {
        files.push((name, pytest_file(n, 2)));
    }
    // `exclude = ["tests/slow/**"]`: this one would fail if it ran.
    files.push((
        "tests/slow/test_slow.py",
        "def test_slow():\n    assert False\n".into(),
    ));
    let repo = repo(tmp.path(), &block(0), &as_refs(&files));
    run_both_ways(&tools, &repo, "unit", 12, 4);
}

#[test]
fn the_auto_shards_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tools) = python(tmp.path()) else {
        return;
    };
    let mut files = python_package();
    files.push(("tests/integration/test_api.py", pytest_file(0, 3)));
    files.push(("tests/integration/sub/test_db.py", pytest_file(1, 2)));
    let repo = repo(tmp.path(), &block(1), &as_refs(&files));
    // Five quick tests fit in one shard of `target_shard_seconds = 120`.
    run_both_ways(&tools, &repo, "integration", 5, 1);
}

/// `split_by_test`: the first run records per-test times; the second
/// splits the long file (12 tests, beside a 1-test file, at 8 shards) into
/// groups of node ids plus the rest of the file with `--deselect`. Names
/// that others extend (`test_0_1` → `test_0_10`) stay with the rest.
#[test]
fn the_split_by_test_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tools) = python(tmp.path()) else {
        return;
    };
    let mut files = python_package();
    files.push(("tests/test_big.py", pytest_file(0, 12)));
    files.push(("tests/test_small.py", pytest_file(1, 1)));
    let repo = repo(tmp.path(), &block(2), &as_refs(&files));
    let state = tmp.path().join("state");
    let first = run(&tools, &repo, None, "unit", &state);
    assert_eq!(first["run"]["counts"]["passed"], 13, "{first:#}");
    assert_eq!(first["shards"].as_array().map(Vec::len), Some(2));
    let second = run(&tools, &repo, None, "unit", &state);
    assert_eq!(second["run"]["status"], "passed", "{second:#}");
    assert_eq!(
        second["run"]["counts"]["tests"], 13,
        "every test once: {second:#}"
    );
    assert_eq!(second["run"]["counts"]["passed"], 13);
    let groups: Vec<&Value> = second["plan"]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap())
        .filter(|u| u["kind"] == "tests")
        .collect();
    assert!(groups.len() >= 2, "the long file is split: {second:#}");
    let listed: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["tests"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    assert!(!listed.contains(&"tests.test_big::test_0_1"), "{listed:?}");
}

/// `mode = "queue"`: six files for up to 8 workers, with no history, are
/// six one-file batches.
#[test]
fn the_queue_mode_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tools) = python(tmp.path()) else {
        return;
    };
    let mut files = python_package();
    let names = [
        "tests/test_0.py",
        "tests/test_1.py",
        "tests/test_2.py",
        "tests/test_3.py",
        "tests/test_4.py",
        "tests/test_5.py",
    ];
    for (n, name) in names.into_iter().enumerate() {
        files.push((name, pytest_file(n, 2)));
    }
    let repo = repo(tmp.path(), &block(3), &as_refs(&files));
    run_both_ways(&tools, &repo, "unit", 12, 6);
}

#[test]
fn the_files_and_tests_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tools) = python(tmp.path()) else {
        return;
    };
    let mut files = python_package();
    // `python -m scripts.fixtures`, the second setup command.
    files.push(("scripts/__init__.py", String::new()));
    files.push((
        "scripts/fixtures.py",
        "import pathlib\npathlib.Path('fixtures.txt').write_text('ready')\n".into(),
    ));
    files.push(("tests/test_a.py", pytest_file(0, 2)));
    files.push(("tests/test_b.py", pytest_file(1, 1)));
    files.push(("tests/models_test.py", pytest_file(2, 2)));
    files.push((
        "tests/test_fixture.py",
        "import pathlib\n\ndef test_setup_ran():\n    assert pathlib.Path('fixtures.txt').read_text() == 'ready'\n".into(),
    ));
    // `exclude = ["tests/e2e/**"]`: this one would fail if it ran.
    files.push((
        "tests/e2e/test_browser.py",
        "def test_e2e():\n    assert False\n".into(),
    ));
    let repo = repo(tmp.path(), &block(4), &as_refs(&files));
    run_both_ways(&tools, &repo, "unit", 6, 4);

    // `api` has no `files` and no setup: on a first run its `{tests}` is
    // empty and pytest collects the whole tree itself, in one shard. Its
    // tests here need neither the package nor the fixture.
    let api = tmp.path().join("api");
    std::fs::create_dir_all(&api).unwrap();
    let api_repo = repo_at(
        &api,
        &block(4),
        &[
            ("tests/test_a.py", &plain_pytest_file(0, 3)),
            ("tests/sub/test_b.py", &plain_pytest_file(1, 2)),
        ],
    );
    run_both_ways(&tools, &api_repo, "api", 5, 1);
}

fn plain_pytest_file(n: usize, tests: usize) -> String {
    (0..tests)
        .map(|t| format!("def test_{n}_{t}():\n    assert {t} + 1 == {}\n\n", t + 1))
        .collect()
}

#[test]
fn the_jest_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(jest) = var_or_skip("TESTEXEC_TEST_JEST_DIR", "Jest and jest-junit") else {
        return;
    };
    let jest = PathBuf::from(jest);
    // The example's `npm ci` installs from the lockfile test-deps wrote for
    // jest + jest-junit, offline from the npm cache it filled.
    let manifest = std::fs::read_to_string(jest.join("package.json")).unwrap();
    let lock = std::fs::read_to_string(jest.join("package-lock.json")).unwrap();
    let files = [
        ("package.json", manifest),
        ("package-lock.json", lock),
        ("src/sum.test.ts", jest_file("sum", 3)),
        ("src/nested/diff.test.ts", jest_file("diff", 2)),
        ("src/view.test.tsx", jest_file("view", 1)),
    ];
    let repo = repo(tmp.path(), &block(5), &as_refs(&files));
    let tools = Tools::system(vec![
        ("npm_config_offline", "true".into()),
        (
            "npm_config_cache",
            jest.join("npm-cache").display().to_string(),
        ),
        ("npm_config_audit", "false".into()),
        ("npm_config_fund", "false".into()),
    ]);
    run_both_ways(&tools, &repo, "web", 6, 3);
}

fn jest_file(name: &str, tests: usize) -> String {
    (0..tests)
        .map(|t| {
            format!(
                "test('{name} {t}', () => {{ expect({t} + 1).toBe({}); }});\n",
                t + 1
            )
        })
        .collect()
}

#[test]
fn the_cargo_nextest_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    if tool_or_skip("cargo-nextest", "install cargo-nextest").is_none() {
        return;
    }
    let tests: String = (0..4)
        .map(|n| format!("#[test]\nfn adds_{n}() {{ assert_eq!(demo::add({n}, 1), {n} + 1); }}\n"))
        .collect();
    let files = [
        (
            "Cargo.toml",
            "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"
                .to_string(),
        ),
        (
            "src/lib.rs",
            "pub fn add(a: u32, b: u32) -> u32 { a + b }\n".into(),
        ),
        ("tests/adds.rs", tests),
        (
            "tests/slow.rs",
            "#[test]\nfn slow_never_in_ci() { panic!(\"filtered out by -E\") }\n".into(),
        ),
        (
            ".config/nextest.toml",
            "[profile.ci.junit]\npath = \"junit.xml\"\n".into(),
        ),
    ];
    let repo = repo(tmp.path(), &block(6), &as_refs(&files));
    // Each shard builds in its own scratch copy, as on a CI machine.
    run_both_ways(&Tools::system(Vec::new()), &repo, "rust", 4, 1);
}

#[test]
fn the_go_examples_run() {
    let tmp = tempfile::tempdir().unwrap();
    if tool_or_skip("gotestsum", "apt-get install gotestsum golang-go").is_none()
        || tool_or_skip("go", "apt-get install golang-go").is_none()
    {
        return;
    }
    let files = [
        ("go.mod", "module example.com/demo\n\ngo 1.19\n".to_string()),
        (
            "internal/parser/parser.go",
            "package parser\n\nfunc Words(s string) int {\n\tn, in := 0, false\n\tfor _, r := range s {\n\t\tif r == ' ' {\n\t\t\tin = false\n\t\t} else if !in {\n\t\t\tin, n = true, n+1\n\t\t}\n\t}\n\treturn n\n}\n".into(),
        ),
        (
            "internal/parser/parser_test.go",
            "package parser\n\nimport \"testing\"\n\nfunc TestWords(t *testing.T) {\n\tif Words(\"a bc d\") != 3 {\n\t\tt.Fatal(\"want 3\")\n\t}\n}\n\nfunc TestEmpty(t *testing.T) {\n\tif Words(\"\") != 0 {\n\t\tt.Fatal(\"want 0\")\n\t}\n}\n".into(),
        ),
        (
            "cmd/tool/main_test.go",
            "package main\n\nimport \"testing\"\n\nfunc TestTool(t *testing.T) {}\n".into(),
        ),
        ("cmd/tool/main.go", "package main\n\nfunc main() {}\n".into()),
    ];
    let repo = repo(tmp.path(), &block(7), &as_refs(&files));
    let home = tmp.path().join("gohome");
    let tools = Tools::system(vec![
        // No module downloads: the example module has no dependencies.
        ("GOPROXY", "off".into()),
        ("GOCACHE", home.join("cache").display().to_string()),
        ("GOPATH", home.join("path").display().to_string()),
    ]);
    run_both_ways(&tools, &repo, "go-parser", 2, 1);
    run_both_ways(&tools, &repo, "go-all", 3, 1);
}

#[test]
fn the_maven_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(maven_repo) = var_or_skip("TESTEXEC_TEST_MAVEN_REPO", "an offline Maven repository")
    else {
        return;
    };
    if tool_or_skip("mvn", "apt-get install maven libsurefire-java").is_none() {
        return;
    }
    let files = [
        // The wrapper exactly as the docs show it.
        ("ci/mvn-test", sh_block(&docs())),
        ("pom.xml", MAVEN_POM.to_string()),
        // The project's own Maven options: offline, from Debian's repository
        // (Maven reads `.mvn/maven.config` on every invocation).
        (
            ".mvn/maven.config",
            format!("-o\n-Dmaven.repo.local={maven_repo}\n"),
        ),
        (
            "src/main/java/com/acme/Calc.java",
            "package com.acme;\n\npublic class Calc {\n    public static int add(int a, int b) { return a + b; }\n}\n".into(),
        ),
        ("src/test/java/com/acme/FooTest.java", junit_class("FooTest", 3)),
        ("src/test/java/com/acme/BarTest.java", junit_class("BarTest", 2)),
    ];
    let repo = repo(tmp.path(), &block(8), &as_refs(&files));
    run_both_ways(&Tools::system(Vec::new()), &repo, "java", 5, 1);
}

/// The docs' ```sh block (the Maven wrapper).
fn sh_block(docs: &str) -> String {
    let start = docs.find("```sh\n").expect("the wrapper block") + "```sh\n".len();
    let end = docs[start..].find("```").expect("its end") + start;
    docs[start..end].to_string()
}

fn junit_class(name: &str, tests: usize) -> String {
    let methods: String = (0..tests)
        .map(|t| {
            format!(
                "    @Test public void adds{t}() {{ assertEquals({t} + 1, Calc.add({t}, 1)); }}\n"
            )
        })
        .collect();
    format!(
        "package com.acme;\n\nimport static org.junit.Assert.assertEquals;\nimport org.junit.Test;\n\npublic class {name} {{\n{methods}}}\n"
    )
}

/// JUnit 4 + Surefire 2.22 at the versions Debian's repository holds.
const MAVEN_POM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.acme</groupId>
  <artifactId>demo</artifactId>
  <version>0.1.0</version>
  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
    <maven.compiler.source>11</maven.compiler.source>
    <maven.compiler.target>11</maven.compiler.target>
  </properties>
  <dependencies>
    <dependency><groupId>junit</groupId><artifactId>junit</artifactId><version>4.13.2</version><scope>test</scope></dependency>
    <dependency><groupId>org.hamcrest</groupId><artifactId>hamcrest-core</artifactId><version>debian</version><scope>test</scope></dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-resources-plugin</artifactId><version>3.3.0</version></plugin>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-compiler-plugin</artifactId><version>3.10.1</version></plugin>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-surefire-plugin</artifactId><version>2.22.3</version></plugin>
    </plugins>
  </build>
</project>
"#;
