//! Reproducers found by fuzzing `Manifest::parse` (fuzz/fuzz_targets/manifest.rs);
//! see docs/fuzzing.md.

use testexec::domain::manifest::{Expansion, Manifest};

/// `command = ["{files}"]` used to parse: the program was then the shard's
/// first file, and an empty shard expanded to no argv at all.
#[test]
fn a_list_placeholder_cannot_be_the_program() {
    for program in ["{files}", "{tests}"] {
        let text = format!(
            "[suites.u]\ncommand = [\"{program}\", \"-x\"]\nfiles = [\"*.py\"]\njunit = [\"{{junit}}\"]\n"
        );
        let err = Manifest::parse(&text, "testexec.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the program is a placeholder"),
            "{program}: {err}"
        );
        assert!(
            err.contains("testexec.toml:2:"),
            "{program}: located at command[0]: {err}"
        );
    }
}

/// The same placeholders after the program stay valid, and every accepted
/// command expands to a non-empty argv even for an empty shard.
#[test]
fn list_placeholders_after_the_program_still_parse() {
    let m = Manifest::parse(
        "[suites.u]\ncommand = [\"pytest\", \"{files}\"]\nfiles = [\"*.py\"]\njunit = [\"{junit}\"]\n",
        "testexec.toml",
    )
    .unwrap();
    let none: Vec<String> = Vec::new();
    let x = Expansion {
        files: &none,
        tests: &none,
        skip_tests: &none,
        junit: "j.xml",
        shard: 0,
        shard_count: 1,
        run_id: "r",
    };
    assert_eq!(m.suites["u"].command_argv(&x), vec!["pytest".to_string()]);
}
