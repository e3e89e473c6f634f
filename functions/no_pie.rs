//! Build script of the four function crates: links each function as a
//! position-dependent executable (`-no-pie`) on Linux.
//!
//! Why: a PIE's loader applies one relocation per absolute pointer in the
//! binary at start (`.rela.dyn`, ~0.7 MiB in a function) and thereby dirties
//! every page of `.data.rel.ro` (another ~0.7 MiB), before `main` runs. A
//! function's cold start and resident memory at init are what Lambda bills
//! and what issue 15 item 5 bounds (docs/benchmarks.md, "One zip per
//! function"); linked at a fixed address, the binary carries no relocation
//! table (a smaller zip, too) and maps its read-only data clean from the
//! file. The cost is that the executable's own image is not randomised
//! (ASLR still places the stack, heap, mmaps and shared libraries).
//!
//! Only the link changes: the code is compiled position-independent as
//! before (the default relocation model, which any executable can link), so
//! no dependency is rebuilt and no rustflag has to be merged with the
//! `-C target-cpu` that cargo lambda passes as `build.rustflags`. Every way
//! the zips are built (`cargo lambda build` in CI, the release workflow,
//! `scripts/deploy.sh`, SAM's `rust-cargolambda`, both architectures) runs
//! this script. Other targets (macOS linkers know no `-no-pie`) link as
//! their default.

fn main() {
    println!("cargo::rerun-if-changed=../no_pie.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
}
