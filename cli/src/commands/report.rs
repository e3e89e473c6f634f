//! `testexec report RUN_ID`: show one run's report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use testexec::app::messages::keys;
use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::NoNotifier;
use testexec::domain::model::RunId;

use super::state_dir_for;

/// Show a run's Markdown summary and where its reports are.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run id (see `testexec runs`).
    pub run_id: String,
    /// Repository root whose `.testexec/` holds the run.
    #[arg(long, default_value = ".")]
    pub path: PathBuf,
    /// State directory [default: PATH/.testexec].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Open index.html in the default browser.
    #[arg(long)]
    pub open: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let run_id: RunId = args.run_id.parse()?;
    let state_dir = state_dir_for(&args.path, args.state_dir.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (summary, html) = runtime.block_on(async {
        let pipeline = LocalPipeline::open(&state_dir, Arc::new(NoNotifier))?;
        let Some(run) = pipeline.ports.store.get_run(run_id).await? else {
            bail!(
                "run {run_id} not found in {} (hint: `testexec runs` lists them)",
                state_dir.display()
            );
        };
        if !run.status.is_final() {
            bail!(
                "run {run_id} is still {}; its report is written when it finishes",
                run.status
            );
        }
        let summary = pipeline
            .ports
            .blobs
            .get(&keys::report(run_id, "summary.md"))
            .await?;
        let html = pipeline
            .ports
            .blobs
            .link(&keys::report(run_id, "index.html"))
            .await?;
        Ok((String::from_utf8_lossy(&summary).into_owned(), html))
    })?;
    outln!("{summary}")?;
    if let Some(html) = &html {
        outln!("\nreport: {html}")?;
        if args.open {
            let opener = if cfg!(target_os = "macos") {
                "open"
            } else {
                "xdg-open"
            };
            // argv, never a shell: the path is passed as one argument.
            std::process::Command::new(opener)
                .arg(html)
                .status()
                .with_context(|| format!("starting `{opener}` to open the report"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
