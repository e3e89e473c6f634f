//! Deriving a test's source file when the report does not name it.
//!
//! Shard planning keys timings by file, so a best guess is worth having, but
//! it is only a guess: callers see `file_derived = true`. The rules are tried
//! in order and the first that applies wins; when none applies the file stays
//! unknown. Every rule is a pure string function that cannot panic.
//!
//! 1. **Path-like name** (jest-junit, Playwright, mocha file suites): the
//!    classname, then the suite name, when it contains a `/` and its last
//!    component has a source-file extension (`libs/foo.spec.ts`). A leading
//!    `./` is dropped.
//! 2. **Python module** (pytest / xmlrunner): a dotted classname made of
//!    identifiers in which some segment is a test module by pytest's default
//!    naming (`test_*` or `*_test`): the segments up to and including the last
//!    such segment become the path, with `.py` (`tests.test_foo.TestX` →
//!    `tests/test_foo.py`). Java's `com.acme.FooTest` does not match since
//!    Java classes are not snake_case, so Java is left alone: its source root
//!    (`src/test/java`, Kotlin, Scala...) cannot be known from the report.
//! 3. **cargo-nextest binary id** in the classname: `crate::target` is an
//!    integration test target → `tests/<target>.rs`; `crate::bin/name` →
//!    `src/bin/name.rs`. A stress-run suffix `@stress-N` is ignored. A bare
//!    `crate` (unit tests of the library) is ambiguous and not derived.

const SOURCE_EXTENSIONS: &[&str] = &[
    "js", "jsx", "mjs", "cjs", "ts", "tsx", "mts", "cts", "vue", "py", "rb", "go", "rs", "java",
    "kt", "kts", "scala", "groovy", "php", "phpt", "cs", "fs", "vb", "swift", "m", "mm", "c", "cc",
    "cpp", "cxx", "h", "hpp", "pl", "t", "pm", "ex", "exs", "erl", "dart", "lua", "r", "feature",
    "robot",
];

pub(crate) fn derive_file(classname: &str, suite: &str) -> Option<String> {
    derive_file_with(classname, || suite_path(suite))
}

/// [`derive_file`] with the suite rule's result supplied by the caller, who
/// can compute [`suite_path`] once per suite instead of once per classname
/// (jest suites are paths, and checking one allocates).
pub(crate) fn derive_file_with(
    classname: &str,
    suite_path: impl FnOnce() -> Option<String>,
) -> Option<String> {
    // One search settles both classname rules that need a `/`, `\` or `:`
    // (most Java and Python classnames hold none) instead of one each:
    // this runs for every new classname of cases without a file.
    let marked = memchr::memchr3(b'/', b'\\', b':', classname.as_bytes()).is_some();
    marked
        .then(|| path_like(classname))
        .flatten()
        .or_else(suite_path)
        .or_else(|| python_module(classname))
        .or_else(|| marked.then(|| nextest_binary(classname)).flatten())
}

/// The rule that looks at the suite name alone.
pub(crate) fn suite_path(suite: &str) -> Option<String> {
    path_like(suite)
}

fn path_like(name: &str) -> Option<String> {
    // Cheap rejection first: this runs for every new classname of cases
    // without a file (twice: classname and suite name).
    memchr::memchr2(b'/', b'\\', name.as_bytes())?;
    // It also runs once per suite, and jest's suite names are paths: no
    // copy is made until the name is known to be one (a lowercased copy of
    // the extension and a normalised copy of the name cost ~1,800
    // instructions per suite).
    let name = name.trim();
    let whitespace = if name.is_ascii() {
        name.bytes().any(|b| matches!(b, b'\t'..=b'\r' | b' '))
    } else {
        name.contains(char::is_whitespace)
    };
    if whitespace {
        return None;
    }
    let last = name.rsplit(['/', '\\']).next()?;
    let (_, ext) = last.rsplit_once('.')?;
    // The extensions are lowercase ASCII.
    if !SOURCE_EXTENSIONS
        .iter()
        .any(|known| known.eq_ignore_ascii_case(ext))
    {
        return None;
    }
    // jest-junit on Windows writes `__tests__\a.test.js`: normalise to `/`
    // (so `.\` is a leading `./` too).
    let name = ["./", ".\\"]
        .iter()
        .find_map(|dot| name.strip_prefix(dot))
        .unwrap_or(name);
    Some(name.replace('\\', "/"))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn python_module(classname: &str) -> Option<String> {
    // Runs for every new classname: reject with one substring search first
    // (`str::contains` builds a two-way searcher per call, which showed up
    // at ~5 % of a whole Java report's profile).
    find_bytes(classname, b"test")?;
    let mut end = None;
    let mut offset = 0;
    for segment in classname.split('.') {
        if !is_identifier(segment) {
            return None;
        }
        offset += segment.len();
        let test_module = (segment.starts_with("test_") || segment.ends_with("_test"))
            && !segment.bytes().any(|b| b.is_ascii_uppercase());
        if test_module {
            end = Some(offset);
        }
        offset += 1;
    }
    end.map(|end| format!("{}.py", classname[..end].replace('.', "/")))
}

/// First occurrence of a short ASCII `needle`: a `memchr` for its first byte,
/// then a compare. For the short names seen here this is much cheaper than
/// setting up a general substring searcher on every call.
fn find_bytes(hay: &str, needle: &[u8]) -> Option<usize> {
    let hay = hay.as_bytes();
    memchr::memchr_iter(needle[0], hay).find(|&i| hay[i..].starts_with(needle))
}

fn nextest_binary(classname: &str) -> Option<String> {
    // Most classnames (Java, Python...) hold no `::` at all: settle that
    // before splitting off a stress suffix.
    find_bytes(classname, b"::")?;
    let id = classname.split_once('@').map_or(classname, |(id, _)| id);
    let at = find_bytes(id, b"::")?;
    let (krate, target) = (&id[..at], &id[at + 2..]);
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !valid(krate) {
        return None;
    }
    if let Some(bin) = target.strip_prefix("bin/") {
        return valid(bin).then(|| format!("src/bin/{bin}.rs"));
    }
    valid(target).then(|| format!("tests/{target}.rs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_jest_style_names() {
        assert_eq!(
            derive_file("", "libs/foo.spec.ts").as_deref(),
            Some("libs/foo.spec.ts")
        );
        assert_eq!(
            derive_file("./src/a.test.js", "x").as_deref(),
            Some("src/a.test.js")
        );
        assert_eq!(
            derive_file(r"__tests__\second.test.js", "").as_deref(),
            Some("__tests__/second.test.js")
        );
        assert_eq!(
            derive_file(r".\src\a.TEST.Js", "").as_deref(),
            Some("src/a.TEST.Js")
        );
        assert_eq!(
            derive_file("", " ./libs/x.PY\t").as_deref(),
            Some("libs/x.PY")
        );
        assert_eq!(derive_file("", "libs/x.pyc"), None);
        assert_eq!(derive_file("", "libs/a\u{a0}b.ts"), None);
        assert_eq!(
            derive_file("", "libs/\u{e9}t\u{e9}.ts").as_deref(),
            Some("libs/\u{e9}t\u{e9}.ts")
        );
        assert_eq!(
            derive_file("Test suite failed to run", "libs/bar.spec.ts").as_deref(),
            Some("libs/bar.spec.ts")
        );
        // A sentence with a slash is not a path.
        assert_eq!(derive_file("given a/b map.js", ""), None);
        // A Go package path has no file extension.
        assert_eq!(
            derive_file("github.com/acme/pkg", "github.com/acme/pkg"),
            None
        );
    }

    #[test]
    fn python_modules() {
        assert_eq!(
            derive_file("tests.test_foo.TestX", "pytest").as_deref(),
            Some("tests/test_foo.py")
        );
        assert_eq!(
            derive_file("tests.test_lib", "pytest").as_deref(),
            Some("tests/test_lib.py")
        );
        assert_eq!(
            derive_file("pkg.api_test", "").as_deref(),
            Some("pkg/api_test.py")
        );
        assert_eq!(derive_file("com.acme.FooTest", ""), None);
        assert_eq!(derive_file("TestClass", ""), None);
    }

    #[test]
    fn nextest_binary_ids() {
        assert_eq!(
            derive_file("fixture-project::basic", "").as_deref(),
            Some("tests/basic.rs")
        );
        assert_eq!(
            derive_file("nextest-filtering::match", "x@stress-0").as_deref(),
            Some("tests/match.rs")
        );
        assert_eq!(
            derive_file("nextest-tests::bin/other", "").as_deref(),
            Some("src/bin/other.rs")
        );
        assert_eq!(derive_file("a::b::c", ""), None);
        assert_eq!(derive_file("::", ""), None);
    }
}
