//! GitHub's `CODEOWNERS`: who owns a path, with GitHub's matching rules.
//!
//! Written here rather than taken from the `codeowners` crate (0.1.3, last
//! released 2018): that crate panics on a pattern `glob` cannot parse,
//! matches case-insensitively, and treats `docs/*` as matching at any
//! depth, where GitHub anchors a pattern with an inner slash to the root.
//! The rules, from GitHub's documentation of the file:
//!
//! - the **last** matching line wins; a matching line with no owners means
//!   the path has no owner;
//! - patterns follow `.gitignore`: a leading `/` or a slash inside anchors
//!   to the repository root, otherwise the pattern matches at any depth;
//!   `*` stays within a directory, `**` crosses them; a trailing `/`
//!   matches a directory's contents; a pattern matching a directory owns
//!   everything below it, except `dir/*`, which owns only direct children;
//! - matching is case-sensitive; `!` negation and `[ ]` ranges are not
//!   supported by GitHub, so such lines are skipped, as are lines that do
//!   not parse.

use globset::{GlobBuilder, GlobMatcher};

/// Lines read from one file (GitHub refuses files over 3 MB anyway).
pub const MAX_RULES: usize = 10_000;
/// Owners kept per rule.
pub const MAX_OWNERS: usize = 50;

#[derive(Debug)]
struct Rule {
    matchers: Vec<GlobMatcher>,
    owners: Vec<String>,
}

/// A parsed `CODEOWNERS`.
#[derive(Debug, Default)]
pub struct CodeOwners {
    rules: Vec<Rule>,
}

impl CodeOwners {
    /// Parses the file's text; never fails (bad lines are skipped, as
    /// GitHub does, which flags them in its UI instead).
    pub fn parse(text: &str) -> CodeOwners {
        let rules = text
            .lines()
            .filter_map(parse_line)
            .take(MAX_RULES)
            .collect();
        CodeOwners { rules }
    }

    /// The owners of a repository-relative path (`/`-separated), per the
    /// last matching rule; empty when none matches or it names nobody.
    pub fn owners_of(&self, path: &str) -> &[String] {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        self.rules
            .iter()
            .rev()
            .find(|r| r.matchers.iter().any(|m| m.is_match(path)))
            .map_or(&[], |r| &r.owners[..])
    }
}

fn parse_line(line: &str) -> Option<Rule> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    // An unescaped ` #` starts a trailing comment.
    let line = line.split(" #").next().unwrap_or(line);
    let mut words = line.split_whitespace();
    let pattern = words.next()?;
    if pattern.starts_with('!') || pattern.contains('[') {
        return None;
    }
    let owners = words
        .filter(|w| w.starts_with('@') || w.contains('@'))
        .take(MAX_OWNERS)
        .map(str::to_string)
        .collect();
    let matchers = globs(pattern)
        .into_iter()
        .map(|g| {
            GlobBuilder::new(&g)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map(|g| g.compile_matcher())
        })
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some(Rule { matchers, owners })
}

/// The globs one `.gitignore`-style pattern stands for.
fn globs(pattern: &str) -> Vec<String> {
    let dir_only = pattern.ends_with('/');
    let body = pattern.trim_end_matches('/');
    let anchored = body.starts_with('/') || body.contains('/');
    let body = body.trim_start_matches('/');
    let base = if anchored || body.starts_with("**") {
        body.to_string()
    } else {
        format!("**/{body}")
    };
    if dir_only {
        return vec![format!("{base}/**")];
    }
    if base.ends_with("/*") {
        // `docs/*`: direct children only.
        return vec![base];
    }
    // The path itself, or anything below a directory it names.
    vec![base.clone(), format!("{base}/**")]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example file, abridged.
    const GITHUB_EXAMPLE: &str = r"
# These owners will be the default owners for everything in
# the repo. Unless a later match takes precedence,
*       @global-owner1 @global-owner2

# When someone opens a pull request that only
# modifies JS files, only @js-owner and not the global
# owner(s) will be requested for a review.
*.js    @js-owner #This is an inline comment.

*.go docs@example.com

/build/logs/ @doctocat

docs/*  docs@example.com

apps/ @octocat

/docs/ @doctocat

/scripts/ @doctocat @octocat

**/logs @octocat

/apps/ @octocat
/apps/github
";

    fn owners(path: &str) -> Vec<String> {
        CodeOwners::parse(GITHUB_EXAMPLE).owners_of(path).to_vec()
    }

    #[test]
    fn githubs_documented_examples() {
        assert_eq!(owners("README.md"), ["@global-owner1", "@global-owner2"]);
        assert_eq!(owners("src/app.js"), ["@js-owner"]);
        assert_eq!(owners("cmd/main.go"), ["docs@example.com"]);
        assert_eq!(owners("build/logs/today.txt"), ["@octocat"]); // `**/logs` is later
        assert_eq!(owners("build/logs/deep/x.txt"), ["@octocat"]);
        // `/docs/` is later than `docs/*` and owns the whole tree.
        assert_eq!(owners("docs/getting-started.md"), ["@doctocat"]);
        assert_eq!(owners("docs/build-app/troubleshooting.md"), ["@doctocat"]);
        assert_eq!(owners("scripts/deploy.sh"), ["@doctocat", "@octocat"]);
        assert_eq!(owners("deeply/nested/logs/x.txt"), ["@octocat"]);
        // A later line without owners leaves the path unowned.
        assert!(owners("apps/github/main.rs").is_empty());
        assert_eq!(owners("apps/other/main.rs"), ["@octocat"]);
        // `apps/` floats: any directory called apps.
        assert_eq!(owners("x/apps/y.txt"), ["@octocat"]);
    }

    #[test]
    fn inner_slash_anchors_and_dir_star_is_one_level() {
        let c = CodeOwners::parse("docs/* @a\nsrc/lib @b\n");
        assert_eq!(c.owners_of("docs/x.md"), ["@a"]);
        assert!(c.owners_of("docs/deep/x.md").is_empty());
        assert!(
            c.owners_of("other/docs/x.md").is_empty(),
            "anchored to the root"
        );
        assert_eq!(c.owners_of("src/lib/a.rs"), ["@b"]);
        assert!(c.owners_of("x/src/lib/a.rs").is_empty());
    }

    #[test]
    fn case_sensitive_and_bad_lines_are_skipped() {
        let c = CodeOwners::parse("*.JS @upper\n!*.js @neg\n[ab].rs @range\n{ @bad\n*.rs @rust\n");
        assert!(c.owners_of("a.js").is_empty());
        assert_eq!(c.owners_of("a.JS"), ["@upper"]);
        assert_eq!(c.owners_of("./src/a.rs"), ["@rust"]);
        assert!(CodeOwners::parse("").owners_of("a").is_empty());
    }
}
