//! One validator per suite field, run in a fixed order by [`validate_suite`].
//!
//! The order is part of the behaviour: when a suite has several problems,
//! the first one in this order is reported, and tests pin those messages.
//! Fields that depend on another one take what they need from it as plain
//! arguments (`files` and `junit` from the command's placeholders, `junit`
//! from `env`), so each validator can be read on its own.

mod checks;

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use self::checks::{
    Slot, check_argv, check_globs, check_relative, check_template, int_in, is_env_name, strings,
};
use super::{Argv, CommandArgv, Ctx, RawShards, RawSuite, SetupArgvs};
use crate::domain::manifest::placeholders::{self, Placeholder};
use crate::domain::manifest::{
    DEFAULT_COMPLETED_EXIT_CODES, DEFAULT_TIMEOUT_SECONDS, MAX_RETRIES, MAX_SHARDS,
    MAX_TIMEOUT_SECONDS, Shards, Suite,
};
use crate::domain::selector::TestIdFormat;
use crate::errors::ManifestError;

/// Checks every field of one suite and builds it.
pub(super) fn validate_suite(
    cx: &Ctx,
    name: &str,
    name_span: Range<usize>,
    raw: RawSuite,
) -> Result<Suite, ManifestError> {
    // How `{tests}` names a test; only meaningful with `{tests}`. Read
    // first: it decides whether `{tests}` may sit inside an element.
    let test_id = raw.test_id.map(Spanned::into_inner).unwrap_or_default();
    let command = command(cx, name, &name_span, raw.command, test_id)?;
    let setup = setup(cx, name, raw.setup)?;
    let files = files(cx, name, &name_span, raw.files, command.uses_files)?;
    let exclude = globs(cx, name, "exclude", raw.exclude)?;
    let shards = shards(cx, name, raw.shards, raw.target_shard_seconds)?;
    shards_need_a_selection(cx, name, &command, shards)?;
    let timeout_seconds = timeout(cx, name, raw.timeout_seconds)?;
    let retries = retries(cx, name, raw.retries)?;
    // Before junit: an env value may carry {junit}.
    let (env, env_uses_junit) = env(cx, name, raw.env)?;
    let junit = junit(
        cx,
        name,
        &name_span,
        raw.junit,
        command.uses_junit || env_uses_junit,
    )?;
    let artifacts = globs(cx, name, "artifacts", raw.artifacts)?;
    let working_dir = working_dir(cx, name, raw.working_dir)?;
    let completed_exit_codes = completed_exit_codes(cx, name, raw.completed_exit_codes)?;
    let split_by_test = split_by_test(cx, name, raw.split_by_test, &command, test_id)?;

    Ok(Suite {
        name: name.to_string(),
        setup,
        command: command.argv.into_iter().map(Spanned::into_inner).collect(),
        files,
        exclude,
        shards,
        timeout_seconds,
        retries,
        junit,
        artifacts,
        env,
        working_dir,
        test_id,
        split_by_test,
        mode: raw.mode.map(Spanned::into_inner).unwrap_or_default(),
        completed_exit_codes,
    })
}

/// The checked command and which placeholders it uses (other fields'
/// rules depend on them).
struct Command {
    argv: Argv,
    span: Range<usize>,
    uses_files: bool,
    uses_tests: bool,
    skips_tests: bool,
    uses_junit: bool,
}

fn command(
    cx: &Ctx,
    name: &str,
    name_span: &Range<usize>,
    raw: Option<Spanned<CommandArgv>>,
    test_id: TestIdFormat,
) -> Result<Command, ManifestError> {
    let Some(command) = raw else {
        return Err(cx.err(
            name_span.clone(),
            name,
            "command",
            "missing `command`",
            "add the test command as an argv, e.g. command = [\"python\", \"-m\", \"pytest\", \"--junitxml={junit}\", \"{files}\"]",
        ));
    };
    let span = command.span();
    let argv = command.into_inner().0;
    if argv.is_empty() || argv[0].get_ref().trim().is_empty() {
        return Err(cx.err(
            span,
            name,
            "command",
            "empty command",
            "the first element is the program to run, e.g. command = [\"pytest\", \"{files}\"]",
        ));
    }
    let joined_tests = test_id.renders_one_element();
    check_argv(cx, name, "command", Slot::Command { joined_tests }, &argv)?;
    // A list placeholder as the program would run the shard's first file
    // (or test id) as the executable, and nothing at all for an empty list.
    if Placeholder::ALL
        .into_iter()
        .any(|p| p.is_list() && placeholders::is_standalone(argv[0].get_ref(), p))
    {
        return Err(cx.err(
            argv[0].span(),
            name,
            "command",
            "the program is a placeholder",
            "the first element is the program to run; put {files} or {tests} after it, e.g. command = [\"pytest\", \"{files}\"]",
        ));
    }
    let uses = |p: Placeholder| argv.iter().any(|e| placeholders::mentions(e.get_ref(), p));
    Ok(Command {
        uses_files: uses(Placeholder::Files),
        uses_tests: uses(Placeholder::Tests),
        skips_tests: uses(Placeholder::SkipTests),
        uses_junit: uses(Placeholder::Junit),
        argv,
        span,
    })
}

fn setup(
    cx: &Ctx,
    name: &str,
    raw: Option<Spanned<SetupArgvs>>,
) -> Result<Vec<Vec<String>>, ManifestError> {
    let mut setup = Vec::new();
    let Some(s) = raw else {
        return Ok(setup);
    };
    for (i, argv) in s.get_ref().0.iter().enumerate() {
        let field = if s.get_ref().0.len() == 1 {
            "setup".to_string()
        } else {
            format!("setup[{i}]")
        };
        if argv.is_empty() || argv[0].get_ref().trim().is_empty() {
            return Err(cx.err(
                s.span(),
                name,
                field,
                "empty setup command",
                "each setup command is an argv whose first element is the program, e.g. [\"make\", \"fixtures\"]",
            ));
        }
        check_argv(cx, name, &field, Slot::Setup, argv)?;
        setup.push(argv.iter().map(|a| a.get_ref().clone()).collect());
    }
    Ok(setup)
}

fn files(
    cx: &Ctx,
    name: &str,
    name_span: &Range<usize>,
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    command_uses_files: bool,
) -> Result<Vec<String>, ManifestError> {
    match strings(raw) {
        Some((span, f)) => {
            if f.is_empty() && command_uses_files {
                return Err(cx.err(
                    span,
                    name,
                    "files",
                    "`files` is empty but the command uses {files}",
                    "list the test files as globs, e.g. files = [\"tests/**/test_*.py\"]",
                ));
            }
            check_globs(cx, name, "files", &f, false)
        }
        None if command_uses_files => Err(cx.err(
            name_span.clone(),
            name,
            "files",
            "missing `files`: the command uses {files}",
            "list the test files as globs, e.g. files = [\"tests/**/test_*.py\"]",
        )),
        None => Ok(Vec::new()),
    }
}

/// An optional list of plain (untemplated) globs: `exclude`, `artifacts`.
fn globs(
    cx: &Ctx,
    name: &str,
    field: &str,
    raw: Option<Spanned<Vec<Spanned<String>>>>,
) -> Result<Vec<String>, ManifestError> {
    match strings(raw) {
        Some((_, g)) => check_globs(cx, name, field, &g, false),
        None => Ok(Vec::new()),
    }
}

fn shards(
    cx: &Ctx,
    name: &str,
    raw: Option<Spanned<RawShards>>,
    target: Option<Spanned<i64>>,
) -> Result<Shards, ManifestError> {
    match (raw, target) {
        (None, None) => Ok(Shards::Count(1)),
        (Some(s), target) => match (s.get_ref(), target) {
            (RawShards::Count(_), Some(t)) => Err(cx.err(
                t.span(),
                name,
                "target_shard_seconds",
                "target_shard_seconds only applies to shards = \"auto\"",
                "either set shards = \"auto\" or remove target_shard_seconds",
            )),
            (RawShards::Count(n), None) => {
                let n = int_in(
                    cx,
                    name,
                    "shards",
                    &Spanned::new(s.span(), *n),
                    1..=i64::from(MAX_SHARDS),
                    "use 1 for an unsharded suite, or \"auto\" to size shards from timings",
                )?;
                Ok(Shards::Count(u32::try_from(n).unwrap_or(MAX_SHARDS)))
            }
            (RawShards::Auto, None) => Err(cx.err(
                s.span(),
                name,
                "shards",
                "shards = \"auto\" needs target_shard_seconds",
                "add target_shard_seconds = 120 (how long each shard should take)",
            )),
            (RawShards::Auto, Some(t)) => Ok(Shards::Auto {
                target_shard_seconds: int_in(
                    cx,
                    name,
                    "target_shard_seconds",
                    &t,
                    1..=MAX_TIMEOUT_SECONDS as i64,
                    "a typical target is 60 to 300 seconds",
                )?,
            }),
        },
        (None, Some(t)) => Err(cx.err(
            t.span(),
            name,
            "target_shard_seconds",
            "target_shard_seconds without shards = \"auto\"",
            "add shards = \"auto\", or remove target_shard_seconds",
        )),
    }
}

/// A sharded suite must hand each shard its part: without {files} or
/// {tests} every shard would run everything.
fn shards_need_a_selection(
    cx: &Ctx,
    name: &str,
    command: &Command,
    shards: Shards,
) -> Result<(), ManifestError> {
    let sharded = !matches!(shards, Shards::Count(1));
    if sharded && !command.uses_files && !command.uses_tests {
        return Err(cx.err(
            command.span.clone(),
            name,
            "command",
            "the suite is sharded but the command uses neither {files} nor {tests}, so every shard would run the whole suite",
            "pass the shard's files with a standalone \"{files}\" element (or tests with \"{tests}\"), or set shards = 1",
        ));
    }
    Ok(())
}

fn timeout(cx: &Ctx, name: &str, raw: Option<Spanned<i64>>) -> Result<u64, ManifestError> {
    match raw {
        Some(t) => int_in(
            cx,
            name,
            "timeout_seconds",
            &t,
            1..=MAX_TIMEOUT_SECONDS as i64,
            "the timeout is per shard, in seconds, at most one day (86400)",
        ),
        None => Ok(DEFAULT_TIMEOUT_SECONDS),
    }
}

fn retries(cx: &Ctx, name: &str, raw: Option<Spanned<i64>>) -> Result<u32, ManifestError> {
    match raw {
        Some(r) => Ok(int_in(
            cx,
            name,
            "retries",
            &r,
            0..=i64::from(MAX_RETRIES),
            "retries re-run failing tests; more than 10 hides broken tests rather than flakes",
        )? as u32),
        None => Ok(0),
    }
}

/// The environment, and whether any value uses {junit} (which then stands
/// in for an explicit `junit` list).
fn env(
    cx: &Ctx,
    name: &str,
    raw: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
) -> Result<(BTreeMap<String, String>, bool), ManifestError> {
    let mut env = BTreeMap::new();
    let mut uses_junit = false;
    let Some(e) = raw else {
        return Ok((env, uses_junit));
    };
    for (k, v) in e.into_inner() {
        let key = k.get_ref();
        if !is_env_name(key) {
            return Err(cx.err(
                k.span(),
                name,
                format!("env.{key}"),
                format!("invalid environment variable name {key:?}"),
                "names are letters, digits and `_`, not starting with a digit, e.g. PYTHONDONTWRITEBYTECODE",
            ));
        }
        let segs = check_template(cx, name, &format!("env.{key}"), Slot::Env, &v)?;
        uses_junit |= placeholders::placeholders(&segs).any(|p| p == Placeholder::Junit);
        env.insert(key.clone(), v.into_inner());
    }
    Ok((env, uses_junit))
}

/// Where results are read from: the listed globs, or `{junit}` when the
/// command (or its environment) is told where to write.
fn junit(
    cx: &Ctx,
    name: &str,
    name_span: &Range<usize>,
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    uses_junit: bool,
) -> Result<Vec<String>, ManifestError> {
    match strings(raw) {
        Some((span, j)) if j.is_empty() => Err(cx.err(
            span,
            name,
            "junit",
            "`junit` is empty",
            "testexec reads results from JUnit files: list where the command writes them, or use [\"{junit}\"]",
        )),
        Some((_, j)) => check_globs(cx, name, "junit", &j, true),
        None if uses_junit => Ok(vec!["{junit}".to_string()]),
        None => Err(cx.err(
            name_span.clone(),
            name,
            "junit",
            "missing `junit`: the command does not mention {junit}, so testexec cannot know where results are written",
            "pass {junit} to the runner (e.g. \"--junitxml={junit}\"), or list the files it writes: junit = [\"target/surefire-reports/TEST-*.xml\"]",
        )),
    }
}

fn working_dir(
    cx: &Ctx,
    name: &str,
    raw: Option<Spanned<String>>,
) -> Result<Option<String>, ManifestError> {
    let Some(w) = raw else {
        return Ok(None);
    };
    if w.get_ref().is_empty() {
        return Err(cx.err(
            w.span(),
            name,
            "working_dir",
            "empty working_dir",
            "use \".\" for the repository root, or omit it",
        ));
    }
    check_relative(cx, name, "working_dir", &w)?;
    Ok(Some(w.into_inner()))
}

/// Splitting a file by test needs a command that runs a group of its tests
/// (`{tests}`) and "the rest of the file" (`{files}` minus `{skip_tests}`),
/// and a runner whose selectors are scoped to their file: checked here so a
/// suite that could not run its groups is refused before any run.
fn split_by_test(
    cx: &Ctx,
    name: &str,
    raw: Option<Spanned<bool>>,
    command: &Command,
    test_id: TestIdFormat,
) -> Result<bool, ManifestError> {
    let Some(split) = raw else {
        return Ok(false);
    };
    let span = split.span();
    if !*split.get_ref() {
        return Ok(false);
    }
    let missing: Vec<&str> = [
        (!command.uses_files, "\"{files}\""),
        (!command.uses_tests, "\"{tests}\""),
        (!command.skips_tests, "\"{skip_tests}\""),
    ]
    .into_iter()
    .filter_map(|(missing, p)| missing.then_some(p))
    .collect();
    if !missing.is_empty() {
        return Err(cx.err(
            span,
            name,
            "split_by_test",
            format!(
                "split_by_test needs the command to take {} as standalone elements",
                missing.join(", ")
            ),
            "a split file runs as groups of tests ({tests}) plus the rest of the file ({files} minus {skip_tests}), e.g. command = [\"pytest\", \"--junitxml={junit}\", \"{files}\", \"{tests}\", \"{skip_tests}\"]",
        ));
    }
    if !test_id.splits_files() {
        return Err(cx.err(
            span,
            name,
            "split_by_test",
            format!(
                "test_id = \"{}\" cannot split a file: its runner's test filter applies to every file of the command and has no way to leave out single tests",
                test_id.as_str()
            ),
            "use test_id = \"pytest\" (node ids and --deselect), or remove split_by_test; other runners split by file",
        ));
    }
    Ok(true)
}

/// Which exits mean "the runner finished" (tests passed or failed).
/// Anything else (pytest's 2 "interrupted", a crash) makes the shard
/// errored even if some JUnit was written.
fn completed_exit_codes(
    cx: &Ctx,
    name: &str,
    raw: Option<Spanned<Vec<Spanned<i64>>>>,
) -> Result<Vec<i32>, ManifestError> {
    let Some(list) = raw else {
        return Ok(DEFAULT_COMPLETED_EXIT_CODES.to_vec());
    };
    let span = list.span();
    let mut codes = Vec::new();
    for code in list.into_inner() {
        codes.push(int_in(
            cx,
            name,
            "completed_exit_codes",
            &code,
            0..=255,
            "exit codes are 0..=255, e.g. completed_exit_codes = [0, 100] for cargo nextest",
        )? as i32);
    }
    if codes.is_empty() {
        return Err(cx.err(
            span,
            name,
            "completed_exit_codes",
            "empty completed_exit_codes",
            "list the exit codes your runner uses for \"tests ran\", e.g. [0, 1]",
        ));
    }
    Ok(codes)
}
