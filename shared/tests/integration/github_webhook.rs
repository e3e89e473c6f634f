//! The webhook intake against GitHub's published signature vector and every
//! real payload in `fixtures/github/`, plus synthetic variants for the cases
//! the fixtures lack (branch deletion, tag push, fork PR, broken payloads).
#![cfg(feature = "github")]

use std::path::{Path, PathBuf};

use serde_json::Value;
use testexec::adapters::github::webhook::{
    MAX_BODY_BYTES, WebhookConfig, WebhookDecision, WebhookHeaders, intake, signature_header,
    verify_signature,
};
use testexec::app::messages::RunRequest;
use testexec::domain::model::Origin;
use testexec::errors::WebhookError;

const SECRET: &[u8] = b"test-secret-for-fixtures";
const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/github")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// `octokit-<event>-<rest>`: event names use underscores, never dashes.
fn event_of(file: &str) -> &str {
    let rest = file.strip_prefix("octokit-").expect("octokit- prefix");
    rest.split('-').next().unwrap()
}

fn headers(event: &str, body: &[u8]) -> WebhookHeaders {
    WebhookHeaders {
        event: Some(event.to_owned()),
        delivery: Some(DELIVERY.to_owned()),
        signature_256: Some(signature_header(SECRET, body)),
        content_type: Some("application/json".to_owned()),
    }
}

fn deliver(
    config: &WebhookConfig,
    event: &str,
    body: &[u8],
) -> Result<WebhookDecision, WebhookError> {
    intake(config, &headers(event, body), body)
}

fn deliver_json(event: &str, payload: &Value) -> Result<WebhookDecision, WebhookError> {
    let body = serde_json::to_vec(payload).unwrap();
    deliver(&WebhookConfig::new(SECRET), event, &body)
}

fn expect_start(decision: WebhookDecision) -> RunRequest {
    match decision {
        WebhookDecision::Start(request) => request,
        other => panic!("expected Start, got {other:?}"),
    }
}

fn expect_ignored(decision: WebhookDecision) -> String {
    match decision {
        WebhookDecision::Ignored { reason } => reason,
        other => panic!("expected Ignored, got {other:?}"),
    }
}

/// Checks the fields every GitHub-started request carries.
fn assert_request(
    request: &RunRequest,
    event: &str,
    repo: &str,
    commit: &str,
    git_ref: Option<&str>,
    installation_id: Option<u64>,
) {
    assert_eq!(request.source.repo, repo);
    assert_eq!(request.source.commit.as_deref(), Some(commit));
    assert_eq!(request.source.git_ref.as_deref(), git_ref);
    assert_eq!(request.source.path, None);
    let Origin::GitHub {
        event: got_event,
        delivery,
        installation_id: got_installation,
        check_run_id,
        sender,
    } = &request.origin
    else {
        panic!("a GitHub origin: {:?}", request.origin);
    };
    assert_eq!(
        (
            got_event.as_str(),
            delivery.as_str(),
            *got_installation,
            *check_run_id
        ),
        (event, DELIVERY, installation_id, None)
    );
    // Every real payload names who caused it: the runs page's audit trail.
    assert!(
        sender.as_deref().is_some_and(|s| !s.is_empty()),
        "sender of {event}: {sender:?}"
    );
    assert_eq!(request.delivery_id.as_deref(), Some(DELIVERY));
    assert_eq!(request.suite, None);
    assert_eq!(request.shards, None);
    assert!(request.only_tests.is_empty());
    assert_eq!(request.run_id, None);
}

// ---- signature ---------------------------------------------------------------

#[test]
fn githubs_published_vector() {
    let secret = b"It's a Secret to Everybody";
    let body = b"Hello, World!";
    let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(signature_header(secret, body), expected);
    assert_eq!(verify_signature(secret, body, Some(expected)), Ok(()));
    // Upper-case hex is the same digest.
    let upper = format!("sha256={}", expected[7..].to_ascii_uppercase());
    assert_eq!(verify_signature(secret, body, Some(&upper)), Ok(()));
    // One changed byte of body, secret or digest breaks it.
    assert_eq!(
        verify_signature(secret, b"Hello, World?", Some(expected)),
        Err(WebhookError::SignatureMismatch)
    );
    assert_eq!(
        verify_signature(b"It's a Secret to Everybody!", body, Some(expected)),
        Err(WebhookError::SignatureMismatch)
    );
    let flipped = expected.replace("e17", "e18");
    assert_eq!(
        verify_signature(secret, body, Some(&flipped)),
        Err(WebhookError::SignatureMismatch)
    );
}

/// A valid, routable push: anything that fails on it failed before routing.
fn valid_push() -> Vec<u8> {
    fixture("octokit-push-with-new-branch.payload.json")
}

#[test]
fn bad_signatures_are_401_and_never_routed() {
    let body = valid_push();
    let config = WebhookConfig::new(SECRET);
    let good = headers("push", &body);
    assert!(matches!(
        intake(&config, &good, &body),
        Ok(WebhookDecision::Start(_))
    ));

    let cases: Vec<(Option<String>, WebhookError)> = vec![
        (None, WebhookError::MissingSignature),
        (Some(String::new()), WebhookError::MissingSignature),
        (
            Some(signature_header(b"another secret", &body)),
            WebhookError::SignatureMismatch,
        ),
        (
            // The SHA-1 header's format in the SHA-256 header.
            Some(format!("sha1={}", "0".repeat(40))),
            WebhookError::MalformedSignature {
                reason: "it does not start with `sha256=`",
            },
        ),
        (
            Some("sha256=abc".into()),
            WebhookError::MalformedSignature {
                reason: "the digest is not 64 hex digits long",
            },
        ),
        (
            Some(format!("sha256={}", "z".repeat(64))),
            WebhookError::MalformedSignature {
                reason: "the digest contains a character that is not a hex digit",
            },
        ),
        (
            // A bare digest without the prefix.
            Some(signature_header(SECRET, &body)[7..].to_owned()),
            WebhookError::MalformedSignature {
                reason: "it does not start with `sha256=`",
            },
        ),
    ];
    for (signature, expected) in cases {
        // Also drop the other headers and break the content type: with a bad
        // signature none of that may be looked at, so the answer stays 401.
        let bad = WebhookHeaders {
            signature_256: signature.clone(),
            ..good.clone()
        };
        let stripped = WebhookHeaders {
            signature_256: signature.clone(),
            event: None,
            delivery: None,
            content_type: Some("text/plain".into()),
        };
        for h in [bad, stripped] {
            let err = intake(&config, &h, &body).unwrap_err();
            assert_eq!(err, expected, "signature {signature:?}");
            assert_eq!(err.http_status(), 401);
            assert!(err.is_unauthorized());
        }
    }
}

#[test]
fn a_signature_over_other_bytes_is_refused() {
    // Re-serialising the JSON (as a careless proxy might) changes the bytes.
    let body = valid_push();
    let reserialised =
        serde_json::to_vec(&fixture_json("octokit-push-with-new-branch.payload.json")).unwrap();
    assert_ne!(body, reserialised);
    let h = headers("push", &body);
    assert_eq!(
        intake(&WebhookConfig::new(SECRET), &h, &reserialised),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn empty_secret_is_a_500_not_an_open_door() {
    let body = valid_push();
    let h = WebhookHeaders {
        signature_256: Some(signature_header(b"", &body)),
        ..headers("push", &body)
    };
    let err = intake(&WebhookConfig::new(Vec::new()), &h, &body).unwrap_err();
    assert_eq!(err, WebhookError::NoSecret);
    assert_eq!(err.http_status(), 500);
}

#[test]
fn errors_never_contain_the_secret_or_signature() {
    let body = valid_push();
    let sig = signature_header(b"wrong", &body);
    let h = WebhookHeaders {
        signature_256: Some(sig.clone()),
        ..headers("push", &body)
    };
    let err = intake(&WebhookConfig::new(SECRET), &h, &body).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("TESTEXEC_WEBHOOK_SECRET"), "{text}");
    assert!(!text.contains(std::str::from_utf8(SECRET).unwrap()));
    assert!(!text.contains(&sig[7..]));
    assert!(!format!("{err:?}").contains(&sig[7..]));
}

// ---- size, headers, JSON -----------------------------------------------------

#[test]
fn default_size_cap_is_githubs() {
    assert_eq!(MAX_BODY_BYTES, 25 * 1024 * 1024);
    assert_eq!(WebhookConfig::new(SECRET).max_body_bytes, MAX_BODY_BYTES);
}

#[test]
fn oversize_body_is_413_before_the_signature() {
    let body = valid_push();
    let mut config = WebhookConfig::new(SECRET);
    config.max_body_bytes = 1024;
    assert!(body.len() > 1024);
    // Correctly signed: still too large.
    let err = deliver(&config, "push", &body).unwrap_err();
    assert_eq!(
        err,
        WebhookError::TooLarge {
            size: body.len(),
            limit: 1024
        }
    );
    assert_eq!(err.http_status(), 413);
    // No signature and no secret at all: the size answer comes first, so no
    // HMAC was computed (that would have been a 401 or a 500).
    config.secret.clear();
    let err = intake(&config, &WebhookHeaders::default(), &body).unwrap_err();
    assert_eq!(err.http_status(), 413);
    // Exactly at the limit is fine.
    let body = vec![b' '; 1024];
    let err = deliver(
        &WebhookConfig {
            max_body_bytes: 1024,
            ..WebhookConfig::new(SECRET)
        },
        "push",
        &body,
    )
    .unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");
}

#[test]
fn missing_or_bad_headers_are_400_naming_the_header() {
    let body = valid_push();
    let config = WebhookConfig::new(SECRET);
    let good = headers("push", &body);

    let no_event = WebhookHeaders {
        event: None,
        ..good.clone()
    };
    let err = intake(&config, &no_event, &body).unwrap_err();
    assert_eq!(
        err,
        WebhookError::MissingHeader {
            header: "X-GitHub-Event"
        }
    );
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("X-GitHub-Event"));

    let no_delivery = WebhookHeaders {
        delivery: Some("  ".into()),
        ..good.clone()
    };
    let err = intake(&config, &no_delivery, &body).unwrap_err();
    assert_eq!(
        err,
        WebhookError::MissingHeader {
            header: "X-GitHub-Delivery"
        }
    );
    assert!(err.to_string().contains("X-GitHub-Delivery"));

    // The GUID becomes part of a store key: no slashes or spaces.
    let odd_delivery = WebhookHeaders {
        delivery: Some("../run/x".into()),
        ..good.clone()
    };
    let err = intake(&config, &odd_delivery, &body).unwrap_err();
    assert!(matches!(
        err,
        WebhookError::InvalidHeader {
            header: "X-GitHub-Delivery",
            ..
        }
    ));
    assert_eq!(err.http_status(), 400);

    let odd_event = WebhookHeaders {
        event: Some("Push; rm".into()),
        ..good.clone()
    };
    let err = intake(&config, &odd_event, &body).unwrap_err();
    assert!(matches!(
        err,
        WebhookError::InvalidHeader {
            header: "X-GitHub-Event",
            ..
        }
    ));

    let form = WebhookHeaders {
        content_type: Some("application/x-www-form-urlencoded".into()),
        ..good.clone()
    };
    let err = intake(&config, &form, &body).unwrap_err();
    assert_eq!(err.http_status(), 415);
    assert!(err.to_string().contains("application/json"));

    // Absent Content-Type and JSON with parameters are accepted.
    for content_type in [None, Some("application/json; charset=utf-8".to_owned())] {
        let h = WebhookHeaders {
            content_type,
            ..good.clone()
        };
        assert!(matches!(
            intake(&config, &h, &body),
            Ok(WebhookDecision::Start(_))
        ));
    }
}

#[test]
fn malformed_json_is_400_with_line_and_column() {
    let body = b"{\n  \"ref\": \"refs/heads/main\",\n  \"after\": \n}";
    let err = deliver(&WebhookConfig::new(SECRET), "push", body).unwrap_err();
    let WebhookError::Json { line, column, .. } = &err else {
        panic!("expected Json, got {err:?}");
    };
    assert_eq!(*line, 4);
    assert_eq!(*column, 1);
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("line 4, column 1"), "{err}");

    let bodies: [&[u8]; 4] = [b"", b"not json", b"{\"a\": 1} trailing", b"\xff\xfe"];
    for body in bodies {
        let err = deliver(&WebhookConfig::new(SECRET), "push", body).unwrap_err();
        assert!(matches!(err, WebhookError::Json { .. }), "{err:?}");
    }
    // Valid JSON that is not an object.
    let err = deliver(&WebhookConfig::new(SECRET), "push", b"[1,2]").unwrap_err();
    assert!(
        matches!(
            err,
            WebhookError::Payload {
                field: "(body)",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn header_lookup_is_case_insensitive() {
    let expected = WebhookHeaders {
        event: Some("push".into()),
        delivery: Some(DELIVERY.into()),
        signature_256: Some("sha256=00".into()),
        content_type: Some("application/json".into()),
    };
    let spellings: [[&str; 4]; 3] = [
        [
            "X-GitHub-Event",
            "X-GitHub-Delivery",
            "X-Hub-Signature-256",
            "Content-Type",
        ],
        [
            "x-github-event",
            "x-github-delivery",
            "x-hub-signature-256",
            "content-type",
        ],
        [
            "X-GITHUB-EVENT",
            "x-Github-Delivery",
            "X-HUB-SIGNATURE-256",
            "CONTENT-TYPE",
        ],
    ];
    for names in spellings {
        let pairs = vec![
            ("Host", "example.com"),
            // The legacy SHA-1 header must not be mistaken for the SHA-256 one.
            ("X-Hub-Signature", "sha1=0000"),
            (names[0], "push"),
            (names[1], DELIVERY),
            (names[2], " sha256=00 "),
            (names[3], "application/json"),
            // A repeated header does not replace the first one.
            (names[0], "ping"),
        ];
        assert_eq!(WebhookHeaders::from_pairs(pairs), expected, "{names:?}");
    }
    // Owned pairs, as from a host's header map.
    let owned = vec![("X-GitHub-Event".to_string(), "ping".to_string())];
    assert_eq!(
        WebhookHeaders::from_pairs(owned).event.as_deref(),
        Some("ping")
    );
    assert_eq!(
        WebhookHeaders::from_pairs(Vec::<(&str, &str)>::new()),
        WebhookHeaders::default()
    );
}

#[test]
fn end_to_end_from_raw_header_pairs() {
    let body = valid_push();
    let sig = signature_header(SECRET, &body);
    let h = WebhookHeaders::from_pairs([
        ("content-type", "application/json"),
        ("x-github-event", "push"),
        ("x-github-delivery", DELIVERY),
        ("x-hub-signature-256", sig.as_str()),
    ]);
    let request = expect_start(intake(&WebhookConfig::new(SECRET), &h, &body).unwrap());
    assert_eq!(request.delivery_id.as_deref(), Some(DELIVERY));
}

// ---- every fixture -----------------------------------------------------------

/// What a fixture must route to.
#[derive(Debug)]
enum Expect {
    Pong {
        zen: &'static str,
        hook_id: u64,
    },
    Start {
        repo: &'static str,
        commit: &'static str,
        git_ref: Option<&'static str>,
        installation: Option<u64>,
    },
    /// Ignored, with a piece of the reason.
    Ignored(&'static str),
}

const PR_HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

fn fixture_table() -> Vec<(&'static str, Expect)> {
    use Expect::*;
    vec![
        (
            "octokit-check_run-completed.payload.json",
            Ignored("`check_run` action `completed`"),
        ),
        (
            "octokit-check_run-created.payload.json",
            Ignored("`check_run` action `created`"),
        ),
        // Its button is another app's (`lgtm|26764`): not ours by default.
        (
            "octokit-check_run-requested_action.payload.json",
            Ignored("requested action `lgtm|26764` is not one of ours"),
        ),
        (
            "octokit-check_run-rerequested.payload.json",
            Start {
                repo: "github/hello-world",
                commit: "d6fde92930d4715a2b49857d24b940956b26d2d3",
                git_ref: Some("refs/heads/master"),
                installation: Some(1),
            },
        ),
        (
            "octokit-check_suite-completed.payload.json",
            Ignored("`check_suite` action `completed`"),
        ),
        (
            "octokit-check_suite-requested.payload.json",
            Start {
                repo: "Codertocat/Hello-World",
                commit: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                git_ref: Some("refs/heads/master"),
                installation: Some(957387),
            },
        ),
        (
            "octokit-check_suite-rerequested.payload.json",
            Start {
                repo: "Codertocat/Hello-World",
                commit: PR_HEAD,
                git_ref: Some("refs/heads/changes"),
                installation: Some(957387),
            },
        ),
        (
            "octokit-deployment_status-payload.json",
            Ignored("event `deployment_status` does not start a run"),
        ),
        (
            "octokit-deployment_status-with-installation.payload.json",
            Ignored("event `deployment_status` does not start a run"),
        ),
        (
            "octokit-installation-created.payload.json",
            Ignored("event `installation` does not start a run"),
        ),
        (
            "octokit-installation-deleted.payload.json",
            Ignored("event `installation` does not start a run"),
        ),
        (
            "octokit-installation_repositories-added.payload.json",
            Ignored("event `installation_repositories` does not start a run"),
        ),
        (
            "octokit-merge_group-checks_requested.payload.json",
            Start {
                repo: "octo-org/octo-repo",
                commit: "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d",
                git_ref: Some(
                    "refs/heads/gh-readonly-queue/main/pr-104-929f8209d40f77f4abc622a499c93a83babdbe64",
                ),
                installation: Some(1),
            },
        ),
        (
            "octokit-ping-payload.json",
            Pong {
                zen: "Anything added dilutes everything else.",
                hook_id: 109948940,
            },
        ),
        (
            "octokit-ping-with-app_id.payload.json",
            Pong {
                zen: "Anything added dilutes everything else.",
                hook_id: 109948940,
            },
        ),
        (
            "octokit-pull_request-closed.payload.json",
            Ignored("`pull_request` action `closed`"),
        ),
        (
            "octokit-pull_request-opened.payload.json",
            Start {
                repo: "Codertocat/Hello-World",
                commit: PR_HEAD,
                git_ref: Some("refs/heads/changes"),
                installation: Some(1),
            },
        ),
        (
            "octokit-pull_request-opened.with-null-body.json",
            Start {
                repo: "Codertocat/Hello-World",
                commit: PR_HEAD,
                git_ref: Some("refs/heads/changes"),
                installation: Some(1),
            },
        ),
        (
            "octokit-pull_request-reopened.payload.json",
            Start {
                repo: "Codertocat/Hello-World",
                commit: PR_HEAD,
                git_ref: Some("refs/heads/changes"),
                installation: Some(1),
            },
        ),
        (
            "octokit-pull_request-synchronize.payload.json",
            Start {
                repo: "Codertocat/Hello-World",
                commit: PR_HEAD,
                git_ref: Some("refs/heads/changes"),
                installation: Some(1),
            },
        ),
        // Both push fixtures delete a tag.
        (
            "octokit-push-payload.json",
            Ignored("push deletes `refs/tags/simple-tag`"),
        ),
        (
            "octokit-push-with-installation.payload.json",
            Ignored("push deletes `refs/tags/simple-tag`"),
        ),
        // `before` is forty zeros: a new branch, still a run.
        (
            "octokit-push-with-new-branch.payload.json",
            Start {
                repo: "Codertocat/Hello-World",
                commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
                git_ref: Some("refs/heads/master"),
                installation: Some(1),
            },
        ),
        (
            "octokit-repository_dispatch-payload.json",
            Ignored("event `repository_dispatch` does not start a run"),
        ),
        (
            "octokit-workflow_dispatch-payload.json",
            Ignored("event `workflow_dispatch` does not start a run"),
        ),
        (
            "octokit-workflow_run-completed.payload.json",
            Ignored("event `workflow_run` does not start a run"),
        ),
    ]
}

fn check_expectation(file: &str, decision: WebhookDecision, expect: &Expect) {
    let event = event_of(file);
    match expect {
        Expect::Pong { zen, hook_id } => assert_eq!(
            decision,
            WebhookDecision::Pong {
                zen: Some((*zen).to_owned()),
                hook_id: Some(*hook_id)
            },
            "{file}"
        ),
        Expect::Start {
            repo,
            commit,
            git_ref,
            installation,
        } => {
            assert_eq!(decision.http_status(), 202, "{file}");
            let request = expect_start(decision);
            assert_request(&request, event, repo, commit, *git_ref, *installation);
        }
        Expect::Ignored(piece) => {
            assert_eq!(decision.http_status(), 202, "{file}");
            let reason = expect_ignored(decision);
            assert!(
                reason.contains(piece),
                "{file}: reason {reason:?} lacks {piece:?}"
            );
        }
    }
}

#[test]
fn every_fixture_routes_as_expected() {
    let table = fixture_table();
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = table.iter().map(|(f, _)| (*f).to_owned()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "the table must list every fixture, and only those"
    );
    assert_eq!(on_disk.len(), 26);

    let config = WebhookConfig::new(SECRET);
    for (file, expect) in &table {
        let body = fixture(file);
        let decision =
            deliver(&config, event_of(file), &body).unwrap_or_else(|e| panic!("{file}: {e}"));
        check_expectation(file, decision, expect);
    }
}

#[test]
fn redelivery_yields_the_same_request() {
    // Dedupe is the trigger's job (claim_delivery on the GUID); the intake
    // must give it the same key every time.
    let body = valid_push();
    let config = WebhookConfig::new(SECRET);
    let first = deliver(&config, "push", &body).unwrap();
    let again = deliver(&config, "push", &body).unwrap();
    assert_eq!(first, again);
}

// ---- check_run requested_action ----------------------------------------------

const REQUESTED_ACTION: &str = "octokit-check_run-requested_action.payload.json";

#[test]
fn requested_action_rerun_failed() {
    // Configure our identifier to be the fixture's, and the other way round
    // by editing the fixture to carry ours.
    let mut config = WebhookConfig::new(SECRET);
    config.rerun_failed_action = "lgtm|26764".into();
    let from_fixture = deliver(&config, "check_run", &fixture(REQUESTED_ACTION)).unwrap();

    let mut payload = fixture_json(REQUESTED_ACTION);
    payload["requested_action"]["identifier"] = "rerun-failed".into();
    let edited = deliver_json("check_run", &payload).unwrap();

    for decision in [from_fixture, edited] {
        let WebhookDecision::RerunFailed {
            request,
            previous_run,
            check_run_id,
        } = decision
        else {
            panic!("expected RerunFailed, got {decision:?}");
        };
        assert_request(
            &request,
            "check_run",
            "electron/electron",
            "5bd5f196a46b8222fb7484f05faba41a73cf34bd",
            Some("refs/heads/miniak/event-process-id"),
            Some(690857),
        );
        assert_eq!(check_run_id, 1494503112);
        // The fixture's external_id is "": no previous run to read from.
        assert_eq!(previous_run, None);
    }

    // With our run id stored in external_id, it comes back.
    payload["check_run"]["external_id"] = "01J9Z3V8K4QW5T6Y7X8C9B0N1M".into();
    let decision = deliver_json("check_run", &payload).unwrap();
    let WebhookDecision::RerunFailed { previous_run, .. } = decision else {
        panic!("expected RerunFailed");
    };
    assert_eq!(previous_run.as_deref(), Some("01J9Z3V8K4QW5T6Y7X8C9B0N1M"));
}

#[test]
fn requested_action_rerun_all_and_unknown() {
    let mut payload = fixture_json(REQUESTED_ACTION);
    payload["requested_action"]["identifier"] = "rerun-all".into();
    let request = expect_start(deliver_json("check_run", &payload).unwrap());
    assert_request(
        &request,
        "check_run",
        "electron/electron",
        "5bd5f196a46b8222fb7484f05faba41a73cf34bd",
        Some("refs/heads/miniak/event-process-id"),
        Some(690857),
    );

    payload["requested_action"]["identifier"] = "something-else".into();
    let reason = expect_ignored(deliver_json("check_run", &payload).unwrap());
    assert!(reason.contains("something-else"), "{reason}");

    payload["requested_action"] = Value::Null;
    let err = deliver_json("check_run", &payload).unwrap_err();
    assert!(matches!(
        err,
        WebhookError::Payload {
            field: "requested_action.identifier",
            ..
        }
    ));
}

// ---- push variants -----------------------------------------------------------

const NEW_BRANCH: &str = "octokit-push-with-new-branch.payload.json";

#[test]
fn push_branch_deletion_is_ignored() {
    let mut payload = fixture_json(NEW_BRANCH);
    payload["deleted"] = true.into();
    payload["after"] = "0000000000000000000000000000000000000000".into();
    let reason = expect_ignored(deliver_json("push", &payload).unwrap());
    assert!(reason.contains("deletes `refs/heads/master`"), "{reason}");

    // Either signal alone is enough.
    let mut only_zeros = fixture_json(NEW_BRANCH);
    only_zeros["after"] = "0000000000000000000000000000000000000000".into();
    only_zeros.as_object_mut().unwrap().remove("deleted");
    assert!(matches!(
        deliver_json("push", &only_zeros),
        Ok(WebhookDecision::Ignored { .. })
    ));
    let mut only_flag = fixture_json(NEW_BRANCH);
    only_flag["deleted"] = true.into();
    assert!(matches!(
        deliver_json("push", &only_flag),
        Ok(WebhookDecision::Ignored { .. })
    ));
}

#[test]
fn push_of_a_tag_is_ignored() {
    let mut payload = fixture_json(NEW_BRANCH);
    payload["ref"] = "refs/tags/v1.0.0".into();
    let reason = expect_ignored(deliver_json("push", &payload).unwrap());
    assert!(reason.contains("tag `refs/tags/v1.0.0`"), "{reason}");

    payload["ref"] = "refs/notes/commits".into();
    let reason = expect_ignored(deliver_json("push", &payload).unwrap());
    assert!(reason.contains("not a branch"), "{reason}");
}

#[test]
fn push_to_an_ordinary_branch_without_installation() {
    let mut payload = fixture_json(NEW_BRANCH);
    payload["before"] = "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into();
    payload["after"] = "0D6FDE92930D4715A2B49857D24B940956B26D2D".into();
    payload["created"] = false.into();
    payload["ref"] = "refs/heads/feature/x".into();
    payload.as_object_mut().unwrap().remove("installation");
    let request = expect_start(deliver_json("push", &payload).unwrap());
    // SHAs are normalised to lower case.
    assert_request(
        &request,
        "push",
        "Codertocat/Hello-World",
        "0d6fde92930d4715a2b49857d24b940956b26d2d",
        Some("refs/heads/feature/x"),
        None,
    );
}

/// An edit that breaks a fixture payload.
type Edit = fn(&mut Value);

#[test]
fn broken_payloads_are_400_naming_the_field() {
    // (event, fixture, how to break it, the field the error must name)
    let cases: Vec<(&str, &str, Edit, &str)> = vec![
        (
            "push",
            NEW_BRANCH,
            |p: &mut Value| {
                p.as_object_mut().unwrap().remove("after");
            },
            "after",
        ),
        (
            "push",
            NEW_BRANCH,
            |p: &mut Value| p["after"] = 5.into(),
            "after",
        ),
        (
            "push",
            NEW_BRANCH,
            |p: &mut Value| p["after"] = "not-a-sha".into(),
            "after",
        ),
        (
            "push",
            NEW_BRANCH,
            |p: &mut Value| {
                p.as_object_mut().unwrap().remove("ref");
            },
            "ref",
        ),
        (
            "push",
            NEW_BRANCH,
            |p: &mut Value| {
                p.as_object_mut().unwrap().remove("repository");
            },
            "repository.full_name",
        ),
        (
            "push",
            NEW_BRANCH,
            |p: &mut Value| p["repository"]["full_name"] = "no-slash".into(),
            "repository.full_name",
        ),
        (
            "push",
            NEW_BRANCH,
            |p: &mut Value| p["repository"]["full_name"] = "a/../b".into(),
            "repository.full_name",
        ),
        (
            "push",
            NEW_BRANCH,
            |p: &mut Value| p["ref"] = "refs/heads/a\nb".into(),
            "ref",
        ),
        (
            "pull_request",
            "octokit-pull_request-opened.payload.json",
            |p: &mut Value| p["pull_request"]["head"] = Value::Null,
            "pull_request.head.sha",
        ),
        (
            "pull_request",
            "octokit-pull_request-opened.payload.json",
            |p: &mut Value| {
                p.as_object_mut().unwrap().remove("action");
            },
            "action",
        ),
        (
            "check_suite",
            "octokit-check_suite-requested.payload.json",
            |p: &mut Value| p["check_suite"] = Value::String("x".into()),
            "check_suite.head_sha",
        ),
        (
            "check_run",
            "octokit-check_run-rerequested.payload.json",
            |p: &mut Value| {
                p["check_run"].as_object_mut().unwrap().remove("head_sha");
            },
            "check_run.head_sha",
        ),
        (
            "merge_group",
            "octokit-merge_group-checks_requested.payload.json",
            |p: &mut Value| {
                p["merge_group"].as_object_mut().unwrap().remove("head_ref");
            },
            "merge_group.head_ref",
        ),
    ];
    for (event, file, edit, field) in cases {
        let mut payload = fixture_json(file);
        edit(&mut payload);
        let err = deliver_json(event, &payload).unwrap_err();
        assert_eq!(err.http_status(), 400, "{event} {field}: {err}");
        let WebhookError::Payload {
            event: e, field: f, ..
        } = &err
        else {
            panic!("{event} {field}: expected Payload, got {err:?}");
        };
        assert_eq!((e.as_str(), *f), (event, field));
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn any_shape_of_json_never_panics() {
    // Every routed event against a spread of wrong shapes.
    let shapes = [
        "{}",
        r#"{"action": 1}"#,
        r#"{"action": "opened", "pull_request": []}"#,
        r#"{"action": "requested", "check_suite": {"head_sha": null}}"#,
        r#"{"action": "requested_action", "requested_action": {"identifier": "rerun-failed"}, "check_run": {"head_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "id": -1}, "repository": {"full_name": "a/b"}}"#,
        r#"{"ref": "refs/heads/x", "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "repository": {"full_name": 7}}"#,
        r#"{"zen": 3, "hook_id": "x"}"#,
        r#"{"repository": null, "installation": {"id": "1"}}"#,
    ];
    for event in [
        "push",
        "pull_request",
        "check_suite",
        "check_run",
        "merge_group",
        "ping",
        "issues",
    ] {
        for shape in shapes {
            let result = deliver(&WebhookConfig::new(SECRET), event, shape.as_bytes());
            if let Err(err) = result {
                assert_eq!(err.http_status(), 400, "{event} {shape}: {err}");
            }
        }
    }
}

// ---- pull requests -----------------------------------------------------------

#[test]
fn fork_pull_request_tests_the_head_sha_via_the_pull_ref() {
    let mut payload = fixture_json("octokit-pull_request-opened.payload.json");
    payload["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World".into();
    let request = expect_start(deliver_json("pull_request", &payload).unwrap());
    // Base repository, fork's head SHA, the base repository's PR ref.
    assert_request(
        &request,
        "pull_request",
        "Codertocat/Hello-World",
        PR_HEAD,
        Some("refs/pull/2/head"),
        Some(1),
    );
    // A deleted fork (head.repo = null) is still a fork.
    payload["pull_request"]["head"]["repo"] = Value::Null;
    let request = expect_start(deliver_json("pull_request", &payload).unwrap());
    assert_eq!(request.source.git_ref.as_deref(), Some("refs/pull/2/head"));
}

#[test]
fn other_pull_request_actions_are_ignored() {
    let mut payload = fixture_json("octokit-pull_request-opened.payload.json");
    for action in [
        "edited",
        "labeled",
        "assigned",
        "ready_for_review",
        "closed",
    ] {
        payload["action"] = action.into();
        let reason = expect_ignored(deliver_json("pull_request", &payload).unwrap());
        assert!(reason.contains(action), "{reason}");
    }
}

// ---- allow-list --------------------------------------------------------------

#[test]
fn allow_list_on_and_off() {
    let starting = [
        "octokit-push-with-new-branch.payload.json",
        "octokit-pull_request-opened.payload.json",
        "octokit-check_suite-requested.payload.json",
    ];
    // Off: everything signed runs (covered by the fixture table). On, with
    // the repository in another case: still runs.
    let mut config = WebhookConfig::new(SECRET);
    config.allowed_repos = Some(vec![
        "octo-org/octo-repo".into(),
        " codertocat/hello-world ".into(),
    ]);
    for file in starting {
        let decision = deliver(&config, event_of(file), &fixture(file)).unwrap();
        assert!(
            matches!(decision, WebhookDecision::Start(_)),
            "{file}: {decision:?}"
        );
    }
    // On, without the repository: ignored with the reason, not an error.
    config.allowed_repos = Some(vec!["octo-org/octo-repo".into()]);
    for file in starting {
        let decision = deliver(&config, event_of(file), &fixture(file)).unwrap();
        assert_eq!(decision.http_status(), 202);
        let reason = expect_ignored(decision);
        assert!(reason.starts_with("repository not allowed"), "{reason}");
        assert!(reason.contains("Codertocat/Hello-World"), "{reason}");
    }
    // The merge-queue fixture's repository is on the list.
    let file = "octokit-merge_group-checks_requested.payload.json";
    assert!(matches!(
        deliver(&config, "merge_group", &fixture(file)),
        Ok(WebhookDecision::Start(_))
    ));
    // An empty list allows nothing, but a ping still answers.
    config.allowed_repos = Some(Vec::new());
    let ping = "octokit-ping-payload.json";
    assert!(matches!(
        deliver(&config, "ping", &fixture(ping)),
        Ok(WebhookDecision::Pong { .. })
    ));
    let reason = expect_ignored(deliver(&config, "merge_group", &fixture(file)).unwrap());
    assert!(reason.starts_with("repository not allowed"), "{reason}");
}

/// `sender.login` is kept for the audit trail as GitHub wrote it (an App's
/// `[bot]` suffix included); a missing or implausible login is dropped
/// without refusing the delivery.
#[test]
fn the_sender_login_is_kept_when_plausible() {
    let sender_of =
        |payload: &Value, event: &str| match expect_start(deliver_json(event, payload).unwrap())
            .origin
        {
            Origin::GitHub { sender, .. } => sender,
            other => panic!("a GitHub origin: {other:?}"),
        };
    let mut pr = fixture_json("octokit-pull_request-opened.payload.json");
    assert_eq!(
        sender_of(&pr, "pull_request").as_deref(),
        Some("Codertocat")
    );
    let bot = fixture_json("octokit-check_suite-rerequested.payload.json");
    assert_eq!(
        sender_of(&bot, "check_suite").as_deref(),
        Some("octocoders-linter[bot]")
    );
    for odd in [
        Value::from("<script>alert(1)</script>"),
        Value::from(""),
        Value::from("x".repeat(65)),
        Value::from(7),
    ] {
        pr["sender"]["login"] = odd.clone();
        assert_eq!(sender_of(&pr, "pull_request"), None, "login {odd}");
    }
    pr.as_object_mut().unwrap().remove("sender");
    assert_eq!(sender_of(&pr, "pull_request"), None);
}
