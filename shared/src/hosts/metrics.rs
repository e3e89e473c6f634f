//! `GET /metrics` in Prometheus text format for the container host
//! (`testexec serve --metrics-bind`, `testexec worker --metrics-bind`).
//!
//! Served on its own listener, never on the public intake port: the
//! numbers tell an outsider how busy and how broken the service is, and a
//! scrape must not compete with webhook deliveries for the connection cap.
//! The listener gets the same hygiene as the front door
//! (`hosts::http::serve`: header-read timeout, connection cap, graceful
//! shutdown).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::metrics::{HTTP_BUCKETS, WORK_BUCKETS, names};
use crate::app::pipeline::Pipeline;
use crate::errors::MetricsError;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histograms are drained and queue depths sampled. Well under
/// a scrape interval, so a scrape never sees values older than this.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(2);

/// The process's Prometheus recorder. One per process: the `metrics`
/// facade has one global recorder.
#[derive(Clone)]
pub struct Prometheus {
    handle: PrometheusHandle,
}

impl Prometheus {
    /// Installs the recorder (with the histograms' buckets) and creates
    /// the zero-valued counters of every closed label set.
    pub fn install() -> Result<Self, MetricsError> {
        let mut builder = PrometheusBuilder::new();
        for name in names::HISTOGRAMS {
            let buckets: &[f64] = if name == names::HTTP_DURATION {
                &HTTP_BUCKETS
            } else {
                &WORK_BUCKETS
            };
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
                .map_err(|e| MetricsError::Install(e.to_string()))?;
        }
        let handle = builder
            .install_recorder()
            .map_err(|e| MetricsError::Install(e.to_string()))?;
        crate::app::metrics::register_zeroes();
        Ok(Self { handle })
    }

    /// The current values in the text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// `GET /metrics` (and nothing else).
    pub fn router(&self) -> Router {
        let me = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let text = me.render();
                async move { ([(header::CONTENT_TYPE, TEXT_FORMAT)], text) }
            }),
        )
    }

    /// Binds `addr` and serves [`Prometheus::router`] there until
    /// `shutdown`, draining histograms and sampling `pipeline`'s queue
    /// depths every [`UPKEEP_EVERY`]. Returns the bound address (port 0
    /// picks one) and the task.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        pipeline: Pipeline,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), MetricsError> {
        let listener = crate::hosts::http::bind(addr)
            .await
            .map_err(MetricsError::Bind)?;
        let local = listener.local_addr().map_err(MetricsError::Bind)?;
        let me = self.clone();
        let router = self.router();
        let task = tokio::spawn(async move {
            let upkeep = async {
                let mut every = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    every.tick().await;
                    me.handle.run_upkeep();
                    pipeline.record_backlog().await;
                }
            };
            let listen = crate::hosts::http::serve(
                listener,
                router,
                crate::hosts::http::ListenOptions::default(),
                shutdown,
            );
            tokio::select! {
                result = listen => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "metrics listener stopped");
                    }
                }
                () = upkeep => {}
            }
        });
        Ok((local, task))
    }
}
