fn main() {
    for p in std::env::args().skip(1) {
        match testexec::junit::read_file(std::path::Path::new(&p)) {
            Ok(r) => {
                let c = r.counts;
                println!(
                    "{p}: tc={} f={} e={} s={} flaky={} pass={} warnings={:?}",
                    c.tests, c.failed, c.errors, c.skipped, c.flaky, c.passed, r.warnings
                );
            }
            Err(e) => println!("{p}: ERR {} {e}", e.kind()),
        }
    }
}
