//! A repository whose suite is the fake runner (`shared/tests/fixtures/
//! fake-suite/runner.py`): each test file lists `name outcome` lines
//! (`pass`, `fail`, `skip`, `flaky`, ...), and the runner writes the JUnit a
//! real runner would. Every pipeline test, in every crate, uses this one.

use std::path::Path;

/// The fake runner's source.
pub const RUNNER: &str = include_str!("../../tests/fixtures/fake-suite/runner.py");

/// A repository with the fake runner, a manifest (suite `fake`) and the
/// given test files (`(path, contents)`).
pub fn repo(files: &[(&str, &str)], shards: u32, retries: u32, timeout: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_repo(dir.path(), files, shards, retries, timeout);
    dir
}

/// Adds a `key = value` line to the suite of a [`repo`] (the manifest's
/// last table), e.g. `split_by_test = true` (the runner takes
/// `--deselect=` like pytest) or `mode = "queue"`.
pub fn add_to_suite(root: &Path, line: &str) {
    let manifest = root.join("testexec.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("reading testexec.toml");
    text.push_str(line);
    text.push('\n');
    std::fs::write(manifest, text).expect("writing testexec.toml");
}

/// [`repo`] into an existing directory.
pub fn write_repo(root: &Path, files: &[(&str, &str)], shards: u32, retries: u32, timeout: u64) {
    std::fs::create_dir_all(root).expect("creating the repository");
    std::fs::write(root.join("runner.py"), RUNNER).expect("writing runner.py");
    std::fs::write(
        root.join("testexec.toml"),
        format!(
            r#"[suites.fake]
command = ["python3", "runner.py", "{{junit}}", "{{files}}", "{{skip_tests}}", "--", "{{tests}}"]
files = ["tests/**/*.txt"]
shards = {shards}
retries = {retries}
timeout_seconds = {timeout}
test_id = "pytest"
"#
        ),
    )
    .expect("writing testexec.toml");
    for (path, body) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("a file path")).expect("creating a test dir");
        std::fs::write(p, body).expect("writing a test file");
    }
}
