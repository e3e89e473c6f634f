//! The Lambda host's metrics: CloudWatch embedded metric format (EMF).
//!
//! The handlers record through `app::metrics` as on every host; here the
//! recorder is `metrics_cloudwatch_embedded`'s, and after each invocation
//! its values are written to stdout as one JSON document. CloudWatch Logs
//! turns those lines into metrics: no PutMetricData call, no extra
//! latency or cost per invocation. Labels become dimensions, next to
//! `function`; the namespace is `TESTEXEC_METRICS_NAMESPACE` (the stack
//! sets `testexec/<stack name>`, so staging and production stay apart).

use metrics_cloudwatch_embedded::Collector;

use super::Function;

/// The variable naming the CloudWatch namespace.
pub const NAMESPACE_ENV: &str = "TESTEXEC_METRICS_NAMESPACE";
const DEFAULT_NAMESPACE: &str = "testexec";

/// Installs the EMF recorder for `function`. `None` (logged) if a recorder
/// was already installed: metrics are then lost, the function still works.
pub fn install(function: Function) -> Option<&'static Collector> {
    let namespace = std::env::var(NAMESPACE_ENV)
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    match metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .with_dimension("function", function.name())
        .init()
    {
        Ok(collector) => Some(collector),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; no EMF metrics");
            None
        }
    }
}

/// Writes what was recorded since the last flush as EMF lines on stdout.
pub fn flush(collector: Option<&'static Collector>) {
    if let Some(collector) = collector {
        if let Err(e) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "writing EMF metrics failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real collector's output for a recorded counter is an EMF
    /// document CloudWatch accepts: `_aws.CloudWatchMetrics` naming the
    /// namespace, the metric and its dimensions, and the value at the top
    /// level.
    #[test]
    fn a_counter_flushes_as_an_emf_document() {
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace("testexec/test")
            .with_dimension("function", Function::Report.name())
            .init()
            // The only recorder this test binary installs.
            .expect("installing the EMF recorder");
        crate::app::metrics::webhook(crate::app::metrics::WebhookResult::Accepted);
        let mut out = Vec::new();
        collector.flush(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let doc: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "testexec/test");
        assert_eq!(
            directive["Metrics"][0]["Name"],
            "testexec_webhook_deliveries_total"
        );
        assert_eq!(
            directive["Dimensions"][0],
            serde_json::json!(["function", "result"])
        );
        assert_eq!(doc["function"], "report");
        assert_eq!(doc["result"], "accepted");
        assert_eq!(doc["testexec_webhook_deliveries_total"], 1);
    }
}
