//! Turning a test case read from JUnit back into the argument a test runner
//! accepts to run just that test (`{tests}` in the manifest).
//!
//! Each runner names tests differently, so the suite says which form its
//! command takes (`test_id` in the manifest, see docs/manifest.md).

use serde::{Deserialize, Serialize};

use crate::domain::model::TestCase;

/// How a runner selects a single test on its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestIdFormat {
    /// pytest node ids: `tests/test_x.py::TestClass::test_name[param]`.
    #[default]
    Pytest,
    /// The bare test name (jest `-t`, go `-run`, nextest `test(=name)`).
    Name,
    /// `classname.name` (JUnit 4 style filters).
    ClassDotName,
    /// `classname#name` (Maven Surefire `-Dtest=`).
    ClassHashName,
    /// `go test -run`: one anchored regex over the top-level test names,
    /// `^(?:TestA|TestB)$` (a subtest runs with its parent).
    Go,
    /// `cargo nextest run -E`: one filterset, `test(=a) | test(=b)`.
    Nextest,
    /// Jest `-t` / `--testNamePattern`: one anchored regex over the full
    /// names jest-junit writes as `name`.
    Jest,
    /// Maven Surefire `-Dtest=`: one value, `Class#m1+m2,Other#m3`.
    Maven,
}

impl TestIdFormat {
    /// The selector for one case: what `{tests}` is built from.
    pub fn selector(self, case: &TestCase) -> String {
        match self {
            TestIdFormat::Pytest => pytest_node_id(case),
            TestIdFormat::Name | TestIdFormat::Nextest | TestIdFormat::Jest => case.name.clone(),
            // A subtest (`TestA/sub`) cannot be named alone in one `-run`
            // regex (go splits the pattern at `/`): its parent runs it.
            TestIdFormat::Go => match case.name.split_once('/') {
                Some((parent, _)) => parent.to_string(),
                None => case.name.clone(),
            },
            TestIdFormat::ClassDotName => join(&case.classname, ".", &case.name),
            TestIdFormat::ClassHashName | TestIdFormat::Maven => {
                join(&case.classname, "#", &case.name)
            }
        }
    }

    /// The selector of a test known only by its history entry: its file
    /// and [`TestCase::key`] (`scope::name`), as the timing history keeps it.
    pub fn selector_for_key(self, file: &str, key: &str) -> String {
        let (classname, name) = key.split_once("::").unwrap_or(("", key));
        let case = TestCase {
            file: Some(file.to_string()),
            ..TestCase::new("", classname, name, crate::domain::model::Outcome::Passed)
        };
        self.selector(&case)
    }

    /// True when `{tests}` is exactly one element (a pattern the runner
    /// takes whole), which may then sit inside an element such as
    /// `-Dtest={tests}`; false for one element per test.
    pub fn renders_one_element(self) -> bool {
        matches!(
            self,
            TestIdFormat::Go | TestIdFormat::Nextest | TestIdFormat::Jest | TestIdFormat::Maven
        )
    }

    /// The argv elements `{tests}` becomes for these selectors. The list
    /// formats give one element per test; the others give exactly one
    /// element, because their runner takes one pattern, and with no
    /// selector that element selects everything.
    pub fn render_tests(self, selectors: &[String]) -> Vec<String> {
        match self {
            TestIdFormat::Pytest
            | TestIdFormat::Name
            | TestIdFormat::ClassDotName
            | TestIdFormat::ClassHashName => selectors.to_vec(),
            // An empty `-run` / `-t` matches every test.
            TestIdFormat::Go | TestIdFormat::Jest => vec![anchored_alternation(selectors)],
            TestIdFormat::Nextest if selectors.is_empty() => vec!["all()".to_string()],
            TestIdFormat::Nextest => vec![
                selectors
                    .iter()
                    .map(|s| format!("test(={})", nextest_escape(s)))
                    .collect::<Vec<_>>()
                    .join(" | "),
            ],
            TestIdFormat::Maven => vec![surefire_tests(selectors)],
        }
    }

    /// The argv elements `{skip_tests}` becomes: tests of the shard's files
    /// that another shard runs. `None` when this runner has no way to leave
    /// out single tests of a file it runs, so its files cannot be split.
    pub fn render_skips(self, selectors: &[String]) -> Option<Vec<String>> {
        match self {
            TestIdFormat::Pytest => Some(
                selectors
                    .iter()
                    .map(|s| format!("--deselect={s}"))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Would `{skip_tests}` for this test (a history key, `scope::name`)
    /// leave out that test alone, given its file's source? pytest's
    /// `--deselect` matches node-id *prefixes*, so leaving out `test_join`
    /// also drops `test_join_attribute`, or a test added later under such a
    /// name: exact only when no identifier in the file starts with the
    /// name and goes on. A test for which this is false must run with the
    /// rest of its file instead of being split off.
    pub fn skips_exactly(self, key: &str, source: &str) -> bool {
        if !self.splits_files() {
            return false;
        }
        let name = key.rsplit("::").next().unwrap_or(key);
        if name.is_empty() {
            return false;
        }
        let ident = |c: char| c == '_' || c.is_alphanumeric();
        !source.match_indices(name).any(|(at, _)| {
            let before = source[..at].chars().next_back();
            let after = source[at + name.len()..].chars().next();
            !before.is_some_and(ident) && after.is_some_and(ident)
        })
    }

    /// Can a file be split into groups of tests across shards? It needs
    /// selectors scoped to their file, so that one run of the command can
    /// take whole files and single tests together, and a way to leave out
    /// single tests ([`render_skips`](Self::render_skips)). pytest node ids
    /// are both; a `go -run` or jest `-t` pattern applies to every file of
    /// the run, so those runners split by file only.
    pub fn splits_files(self) -> bool {
        self.render_skips(&[]).is_some()
    }

    /// The manifest spelling, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TestIdFormat::Pytest => "pytest",
            TestIdFormat::Name => "name",
            TestIdFormat::ClassDotName => "class_dot_name",
            TestIdFormat::ClassHashName => "class_hash_name",
            TestIdFormat::Go => "go",
            TestIdFormat::Nextest => "nextest",
            TestIdFormat::Jest => "jest",
            TestIdFormat::Maven => "maven",
        }
    }
}

/// `^(?:a|b)$` with every name's regex metacharacters escaped; `""` (match
/// all) for no names. RE2 (go) and JavaScript read the same syntax here.
fn anchored_alternation(names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let mut out = String::from("^(?:");
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for c in name.chars() {
            if "\\.+*?()|[]{}^$/".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push_str(")$");
    out
}

/// A nextest filterset string argument: `(`, `)` and `,` end it unless
/// escaped with a backslash, as is the backslash itself.
fn nextest_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '(' | ')' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Surefire's `-Dtest=` value: methods of one class joined with `+`,
/// classes with `,`, in first-seen class order.
fn surefire_tests(selectors: &[String]) -> String {
    let mut classes: Vec<(&str, Vec<&str>)> = Vec::new();
    for s in selectors {
        let (class, method) = s.split_once('#').unwrap_or((s, ""));
        match classes.iter_mut().find(|(c, _)| *c == class) {
            Some((_, methods)) => methods.push(method),
            None => classes.push((class, vec![method])),
        }
    }
    classes
        .iter()
        .map(|(class, methods)| {
            let methods: Vec<&str> = methods.iter().copied().filter(|m| !m.is_empty()).collect();
            if methods.is_empty() {
                class.to_string()
            } else {
                format!("{class}#{}", methods.join("+"))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn join(scope: &str, sep: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}{sep}{name}")
    }
}

/// pytest writes `classname` as the dotted module path plus any classes
/// (`tests.test_x.TestClass`); the node id wants the file, then the classes.
fn pytest_node_id(case: &TestCase) -> String {
    let Some(file) = case.file.as_deref() else {
        return join(&case.classname, "::", &case.name);
    };
    let module = file.strip_suffix(".py").unwrap_or(file).replace('/', ".");
    let classes = case
        .classname
        .strip_prefix(&module)
        .map(|rest| rest.trim_start_matches('.'))
        .unwrap_or("");
    let mut id = file.to_string();
    for class in classes.split('.').filter(|c| !c.is_empty()) {
        id.push_str("::");
        id.push_str(class);
    }
    id.push_str("::");
    id.push_str(&case.name);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Outcome;

    fn case(classname: &str, name: &str, file: Option<&str>) -> TestCase {
        TestCase {
            file: file.map(Into::into),
            file_derived: true,
            ..TestCase::new("pytest", classname, name, Outcome::Failed)
        }
    }

    #[test]
    fn pytest_ids_keep_classes_and_parameters() {
        let f = TestIdFormat::Pytest;
        assert_eq!(
            f.selector(&case(
                "tests.test_api.TestLexer",
                "test_x[a-b]",
                Some("tests/test_api.py")
            )),
            "tests/test_api.py::TestLexer::test_x[a-b]"
        );
        assert_eq!(
            f.selector(&case("tests.test_api", "test_y", Some("tests/test_api.py"))),
            "tests/test_api.py::test_y"
        );
        assert_eq!(
            f.selector(&case(
                "tests.test_api.TestA.TestB",
                "t",
                Some("tests/test_api.py")
            )),
            "tests/test_api.py::TestA::TestB::t"
        );
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_runner_gets_its_own_tests_argument() {
        let names = strings(&["TestA", "Test.B(x)"]);
        assert_eq!(TestIdFormat::Pytest.render_tests(&names), names);
        assert_eq!(
            TestIdFormat::Go.render_tests(&names),
            ["^(?:TestA|Test\\.B\\(x\\))$"]
        );
        assert_eq!(
            TestIdFormat::Jest.render_tests(&names)[0],
            "^(?:TestA|Test\\.B\\(x\\))$"
        );
        assert_eq!(
            TestIdFormat::Nextest.render_tests(&names),
            ["test(=TestA) | test(=Test.B\\(x\\))"]
        );
        assert_eq!(
            TestIdFormat::Maven.render_tests(&strings(&[
                "a.FooTest#one",
                "a.BarTest#x",
                "a.FooTest#two"
            ])),
            ["a.FooTest#one+two,a.BarTest#x"]
        );
        // No selector: one element that selects everything, never a
        // missing flag value.
        assert_eq!(TestIdFormat::Go.render_tests(&[]), [""]);
        assert_eq!(TestIdFormat::Nextest.render_tests(&[]), ["all()"]);
        assert!(TestIdFormat::Pytest.render_tests(&[]).is_empty());
        for f in [
            TestIdFormat::Pytest,
            TestIdFormat::Name,
            TestIdFormat::ClassDotName,
            TestIdFormat::ClassHashName,
            TestIdFormat::Go,
            TestIdFormat::Nextest,
            TestIdFormat::Jest,
            TestIdFormat::Maven,
        ] {
            let one = f.render_tests(&names).len() == 1;
            assert_eq!(f.renders_one_element(), one, "{}", f.as_str());
        }
    }

    #[test]
    fn only_pytest_can_leave_out_single_tests() {
        let ids = strings(&["t/a.py::x", "t/a.py::C::y[1]"]);
        assert_eq!(
            TestIdFormat::Pytest.render_skips(&ids).unwrap(),
            ["--deselect=t/a.py::x", "--deselect=t/a.py::C::y[1]"]
        );
        assert!(TestIdFormat::Pytest.splits_files());
        for f in [
            TestIdFormat::Name,
            TestIdFormat::Go,
            TestIdFormat::Jest,
            TestIdFormat::Nextest,
            TestIdFormat::Maven,
        ] {
            assert!(!f.splits_files(), "{}", f.as_str());
        }
    }

    #[test]
    fn a_deselect_is_exact_only_when_no_other_name_extends_it() {
        let source = "def test_join():\n    pass\n\ndef test_join_attribute():\n    pass\n\ndef test_sum(x): ...\n\nclass T:\n    def my_test_join2(self): ...\n";
        let f = TestIdFormat::Pytest;
        assert!(
            !f.skips_exactly("tests.test_f::test_join", source),
            "test_join_attribute extends it"
        );
        assert!(f.skips_exactly("tests.test_f::test_join_attribute", source));
        assert!(
            f.skips_exactly("tests.test_f.T::test_sum", source),
            "`test_sum(` ends the name"
        );
        assert!(!f.skips_exactly("tests.test_f::", source), "no name");
        assert!(!TestIdFormat::Go.skips_exactly("p::TestA", "func TestA(t *testing.T) {}"));
    }

    #[test]
    fn history_keys_become_selectors() {
        assert_eq!(
            TestIdFormat::Pytest.selector_for_key("tests/test_x.py", "tests.test_x.TestC::t[a::b]"),
            "tests/test_x.py::TestC::t[a::b]"
        );
        assert_eq!(
            TestIdFormat::Go.selector_for_key("pkg", "pkg::TestA/sub"),
            "TestA"
        );
        assert_eq!(TestIdFormat::Name.selector_for_key("f", "bare"), "bare");
    }

    #[test]
    fn other_formats_follow_their_runner() {
        let c = case("com.acme.FooTest", "bar", None);
        assert_eq!(
            TestIdFormat::ClassHashName.selector(&c),
            "com.acme.FooTest#bar"
        );
        assert_eq!(
            TestIdFormat::ClassDotName.selector(&c),
            "com.acme.FooTest.bar"
        );
        assert_eq!(TestIdFormat::Name.selector(&c), "bar");
    }
}
