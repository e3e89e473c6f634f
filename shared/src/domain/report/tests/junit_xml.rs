use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{Rich, synthetic};
use crate::domain::report::junit_xml::{strip_invalid_xml, write};

fn xml_of(rich: &Rich) -> Vec<u8> {
    let mut out = Vec::new();
    write(&rich.input(), &mut out).unwrap();
    out
}

fn attrs(e: &BytesStart<'_>) -> HashMap<String, String> {
    e.attributes()
        .map(|a| {
            let a = a.expect("well-formed attribute");
            (
                String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                a.unescape_value().expect("valid escapes").into_owned(),
            )
        })
        .collect()
}

/// A test case as read back: its suite, attributes and child element names.
type ParsedCase = (String, HashMap<String, String>, Vec<String>);

/// What a strict reader sees: suites with their attributes, and per test
/// case its attributes plus the names of its child elements.
#[derive(Default)]
struct Parsed {
    root: HashMap<String, String>,
    suites: Vec<HashMap<String, String>>,
    cases: Vec<ParsedCase>,
    texts: Vec<String>,
}

fn parse(xml: &[u8]) -> Parsed {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut parsed = Parsed::default();
    let mut buf = Vec::new();
    let mut in_case = false;
    // quick-xml reports `&amp;` and friends as separate events: join them.
    let mut text = String::new();
    loop {
        let event = reader.read_event_into(&mut buf).expect("well-formed XML");
        if !matches!(event, Event::Text(_) | Event::GeneralRef(_)) && !text.is_empty() {
            parsed.texts.push(std::mem::take(&mut text));
        }
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                match e.name().as_ref() {
                    b"testsuites" => parsed.root = attrs(e),
                    b"testsuite" => parsed.suites.push(attrs(e)),
                    b"testcase" => {
                        let suite = parsed
                            .suites
                            .last()
                            .and_then(|s| s.get("name").cloned())
                            .unwrap_or_default();
                        parsed.cases.push((suite, attrs(e), vec![]));
                        in_case = !empty;
                    }
                    name if in_case => {
                        let name = String::from_utf8(name.to_vec()).unwrap();
                        let mut a = attrs(e);
                        let label = match a.remove("message") {
                            Some(m) => format!("{name}:{m}"),
                            None => name,
                        };
                        parsed.cases.last_mut().unwrap().2.push(label);
                    }
                    _ => {}
                }
            }
            Event::End(ref e) if e.name().as_ref() == b"testcase" => in_case = false,
            Event::Text(t) => text.push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) => {
                let name = r.decode().unwrap();
                text.push_str(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                });
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    parsed
}

#[test]
fn merged_file_has_each_test_once_grouped_by_suite() {
    let rich = Rich::new();
    let p = parse(&xml_of(&rich));
    assert_eq!(p.root["tests"], "6");
    assert_eq!(p.root["failures"], "1");
    assert_eq!(p.root["errors"], "1");
    assert_eq!(p.root["skipped"], "1");
    assert_eq!(p.root["name"], "testexec run 01J9Z3V8K4QW5T6Y7X8C9B0N1M");
    let names: Vec<&str> = p.suites.iter().map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "tests/test_api.py",
            "tests/test_db.py",
            "tests/test_net.py",
            ""
        ]
    );
    assert_eq!(p.suites[0]["tests"], "2");
    assert_eq!(p.suites[0]["failures"], "1");
    assert_eq!(p.suites[0]["time"], "1.750");
    assert_eq!(p.suites[1]["errors"], "1");
    assert_eq!(p.suites[1]["skipped"], "1");
    assert_eq!(p.cases.len(), 6);
    for (suite, case) in p.cases.iter().zip(&rich.cases) {
        assert_eq!(suite.0, case.1.suite);
        assert_eq!(suite.1["name"], case.1.name);
    }
}

#[test]
fn outcomes_become_junit_elements_with_messages_and_bodies() {
    let p = parse(&xml_of(&Rich::new()));
    let by_name: HashMap<&str, &ParsedCase> =
        p.cases.iter().map(|c| (c.1["name"].as_str(), c)).collect();

    let passed = by_name["test_list"];
    assert!(passed.2.is_empty());
    assert_eq!(passed.1["file"], "tests/test_api.py");
    assert_eq!(passed.1["line"], "10");
    assert_eq!(passed.1["time"], "0.250");
    assert_eq!(passed.1["shard"], "0");

    // The hostile name round-trips exactly through attribute escaping.
    let failed = by_name["test_<script>alert(1)</script>"];
    assert_eq!(
        failed.2,
        ["failure:assert <script>alert('x')</script> == 1\n```\nnot a fence end\n````"]
    );
    assert!(p.texts.iter().any(|t| t.contains("AssertionError & <b>")));

    assert_eq!(
        by_name["test_connect | pipe"].2,
        ["error:ConnectionError: refused", "system-err"]
    );
    assert_eq!(by_name["test_skipped"].2, ["skipped:needs postgres"]);
    // Flaky: passed (no failure element), earlier attempts surefire-style.
    assert_eq!(
        by_name["test_retry_テスト ✓"].2,
        ["flakyFailure:timeout", "stackTrace", "flakyError:reset"]
    );
    assert_eq!(by_name["bare_test"].1["time"], "0.000");
}

#[test]
fn line_breaks_in_attributes_survive_attribute_normalisation() {
    let xml = String::from_utf8(xml_of(&Rich::new())).unwrap();
    // A literal newline in an attribute is read back as a space by XML
    // readers; a character reference is not.
    assert!(xml.contains("message=\"assert &lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; == 1&#10;```&#10;not a fence end&#10;````\""));
}

#[test]
fn characters_invalid_in_xml_are_stripped() {
    let xml = xml_of(&Rich::new());
    // U+FFFE and U+FFFF in UTF-8, and C0 controls other than tab/LF/CR.
    assert!(
        !xml.windows(3)
            .any(|w| w == [0xEF, 0xBF, 0xBE] || w == [0xEF, 0xBF, 0xBF])
    );
    assert!(
        !xml.iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
    );
    let p = parse(&xml);
    assert!(p.texts.iter().any(|t| t == "helloworld!"), "{:?}", p.texts);
    assert!(p.texts.iter().any(|t| t == "stderr linewith controlchar"));
    assert_eq!(
        strip_invalid_xml("a\u{1}\u{b}\u{FFFE}\t\n\r\u{10FFFF}b"),
        "a\t\n\r\u{10FFFF}b"
    );
    assert!(matches!(
        strip_invalid_xml("clean ✓"),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn many_cases_are_each_written_exactly_once() {
    let rich = synthetic(5_000, 20);
    let p = parse(&xml_of(&rich));
    assert_eq!(p.suites.len(), 250);
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (_, a, _) in &p.cases {
        *seen
            .entry((a["classname"].clone(), a["name"].clone()))
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 5_000);
    assert!(seen.values().all(|&n| n == 1));
    let total: usize = p
        .suites
        .iter()
        .map(|s| s["tests"].parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, 5_000);
    assert_eq!(p.root["failures"], "50");
}
