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
}

impl TestIdFormat {
    /// The selector for one case.
    pub fn selector(self, case: &TestCase) -> String {
        match self {
            TestIdFormat::Pytest => pytest_node_id(case),
            TestIdFormat::Name => case.name.clone(),
            TestIdFormat::ClassDotName => join(&case.classname, ".", &case.name),
            TestIdFormat::ClassHashName => join(&case.classname, "#", &case.name),
        }
    }
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
