//! Fuzzes the manifest parser with arbitrary text.
//!
//! Invariants (any violation aborts, and libFuzzer saves the input):
//! - `Manifest::parse` never panics, and neither does formatting its error
//!   (errors carry line/column computed from byte offsets);
//! - on success every suite has a non-empty `command` whose first element,
//!   the program, is non-blank once placeholders are expanded;
//! - expanding placeholders (`command_argv`, `setup_argvs`, `junit_globs`,
//!   `env_vars`) never panics, whatever the expansion values, including
//!   empty lists and values full of glob and brace characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use testexec::domain::manifest::{Expansion, Manifest};

fuzz_target!(|data: &[u8]| {
    // The loader refuses non-UTF-8 before parsing; a lossy conversion keeps
    // every mutated input useful instead of discarding most of them.
    let text = String::from_utf8_lossy(data);
    let manifest = match Manifest::parse(&text, "fuzz/testexec.toml") {
        Ok(m) => m,
        Err(e) => {
            // Display walks the located error (line, column, hint).
            let _ = e.to_string();
            return;
        }
    };

    let files = vec![
        "a b.py".to_string(),
        "{files}".to_string(),
        "[*]?.py".to_string(),
    ];
    let tests = vec!["t::{x}".to_string()];
    let skips = vec!["--deselect=t::{y}".to_string()];
    let none: Vec<String> = Vec::new();
    let expansions = [
        // What a shard with nothing to run looks like.
        Expansion {
            files: &none,
            tests: &none,
            skip_tests: &none,
            junit: "out/junit.xml",
            shard: 0,
            shard_count: 1,
            run_id: "01J0000000000000000000000",
        },
        // Values that look like placeholders or globs must stay literal.
        Expansion {
            files: &files,
            tests: &tests,
            skip_tests: &skips,
            junit: "r[1]/{junit}*.xml",
            shard: u32::MAX,
            shard_count: u32::MAX,
            run_id: "{run_id}",
        },
    ];

    for (name, suite) in &manifest.suites {
        assert!(
            !suite.command.is_empty(),
            "suite {name} has an empty command"
        );
        let _ = suite.supports_test_selection();
        for x in &expansions {
            let argv = suite.command_argv(x);
            let program = argv.first().unwrap_or_else(|| {
                panic!(
                    "suite {name}: command {:?} expands to no argv",
                    suite.command
                )
            });
            assert!(
                !program.trim().is_empty(),
                "suite {name}: command {:?} expands to a blank program",
                suite.command
            );
            for setup in suite.setup_argvs(x) {
                assert!(
                    !setup.is_empty(),
                    "suite {name}: a setup argv expands to nothing"
                );
            }
            let _ = suite.junit_globs(x);
            let _ = suite.env_vars(x);
        }
    }
});
