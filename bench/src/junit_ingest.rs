//! JUnit ingest benchmark: one parser, one file, per process, so that peak
//! RSS (`/usr/bin/time -f %M`) belongs to that parser alone.
//!
//! Usage: junit-ingest <testexec|testexec-owned|quick-junit|raw> FILE [ITERATIONS]
//!        junit-ingest dump FILE...
//!
//! `dump` prints, for each FILE, `junit::read_file` as JSON (or the error's
//! kind and message): the before/after check that a change to the reader
//! left its output byte-identical.
//!
//! Each iteration reads FILE from the start through a 64 KiB `BufReader`
//! (page cache warm after the first), so all three modes pay the same I/O.
//! Prints one tab-separated line: mode, file, bytes, best seconds, MB/s
//! (10^6 bytes), test cases seen. `scripts/bench/junit_ingest.sh` drives it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use quick_xml::Reader;
use quick_xml::events::Event;
use testexec::domain::junit::{self, Limits};

fn open(path: &Path) -> BufReader<File> {
    BufReader::with_capacity(64 * 1024, File::open(path).expect("open the report"))
}

/// testexec's streaming reader as its consumers use it (`stream_refs`):
/// each case is lent to the callback, counted and dropped.
fn testexec(path: &Path) -> Result<u64, String> {
    let mut cases = 0;
    junit::stream_refs(
        open(path),
        &path.display().to_string(),
        &Limits::default(),
        |_| cases += 1,
    )
    .map_err(|e| e.to_string())?;
    Ok(cases)
}

/// The owned form (`stream`): each case becomes a `TestCase`, as for a
/// consumer that keeps every case (`read`).
fn testexec_owned(path: &Path) -> Result<u64, String> {
    let mut cases = 0;
    junit::stream(
        open(path),
        &path.display().to_string(),
        &Limits::default(),
        |_| cases += 1,
    )
    .map_err(|e| e.to_string())?;
    Ok(cases)
}

/// quick-junit's (experimental) deserializer: builds the whole report.
fn quick_junit(path: &Path) -> Result<u64, String> {
    let report = quick_junit::Report::deserialize(open(path)).map_err(|e| e.to_string())?;
    Ok(report
        .test_suites
        .iter()
        .map(|s| s.test_cases.len() as u64)
        .sum())
}

/// The ceiling: the bare quick-xml event loop over the same bytes, counting
/// `<testcase>` tags and nothing else.
fn raw(path: &Path) -> Result<u64, String> {
    let mut reader = Reader::from_reader(open(path));
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut cases = 0;
    loop {
        buf.clear();
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"testcase" => {
                cases += 1
            }
            Event::Eof => return Ok(cases),
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("dump") {
        for file in &args[2..] {
            match junit::read_file(Path::new(file)) {
                Ok(report) => println!(
                    "{file}\t{}",
                    serde_json::to_string(&report).expect("serialise")
                ),
                Err(e) => println!("{file}\terror {}: {e}", e.kind()),
            }
        }
        return ExitCode::SUCCESS;
    }
    let (Some(mode), Some(file)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: junit-ingest <testexec|testexec-owned|quick-junit|raw> FILE [ITERATIONS]"
        );
        return ExitCode::from(2);
    };
    let iterations: u32 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(5);
    let parse: fn(&Path) -> Result<u64, String> = match mode.as_str() {
        "testexec" => testexec,
        "testexec-owned" => testexec_owned,
        "quick-junit" => quick_junit,
        "raw" => raw,
        other => {
            eprintln!("unknown mode {other}");
            return ExitCode::from(2);
        }
    };
    let path = Path::new(file);
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut best = f64::INFINITY;
    let mut cases = 0;
    for _ in 0..iterations.max(1) {
        let start = Instant::now();
        match parse(path) {
            Ok(n) => cases = n,
            Err(e) => {
                println!(
                    "{mode}\t{file}\t{bytes}\tFAILED\t-\t{}",
                    e.replace(['\t', '\n'], " ")
                );
                return ExitCode::from(1);
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{mode}\t{file}\t{bytes}\t{best:.6}\t{:.1}\t{cases}",
        bytes as f64 / best / 1e6
    );
    ExitCode::SUCCESS
}
