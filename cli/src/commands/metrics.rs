//! `--metrics-bind` of `serve` and `worker`: Prometheus's `GET /metrics`
//! on a listener of its own (see `testexec::hosts::metrics` for why not on
//! the intake port).

use std::net::SocketAddr;

use testexec::app::pipeline::Pipeline;
use testexec::hosts::metrics::Prometheus;
use tokio::sync::watch;

#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Serve `GET /metrics` (Prometheus text format) on this address, e.g.
    /// `0.0.0.0:9090`; never on the intake port. Off by default.
    #[arg(long, env = "TESTEXEC_METRICS_BIND", value_name = "ADDR:PORT")]
    pub metrics_bind: Option<SocketAddr>,
}

impl MetricsArgs {
    /// Starts the exporter when asked; the listener closes once `stop`
    /// turns true.
    pub async fn start(
        &self,
        pipeline: &Pipeline,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(addr) = self.metrics_bind else {
            return Ok(None);
        };
        let exporter = Prometheus::install()?;
        let shutdown = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let (bound, task) = exporter.serve(addr, pipeline.clone(), shutdown).await?;
        // Tests and operators read the port from this line (port 0 picks one).
        eprintln!("testexec: metrics on http://{bound}/metrics");
        Ok(Some(task))
    }
}
