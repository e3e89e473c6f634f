# The functions' own metrics (docs/metrics.md), written as CloudWatch
# embedded metric format in their logs, under TESTEXEC_METRICS_NAMESPACE
# (main.tf). The template's Dashboard, widget for widget;
# scripts/check-terraform-drift.py compares the metrics both show.

data "aws_region" "current" {}

resource "aws_cloudwatch_dashboard" "testexec" {
  dashboard_name = "${var.name}-testexec"
  dashboard_body = <<-JSON
    {
      "widgets": [
        {
          "type": "metric",
          "x": 0,
          "y": 0,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Runs finished, by status",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "Sum",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,origin,status} MetricName=\"testexec_runs_finished_total\"', 'Sum', 300)",
                  "id": "e1",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 12,
          "y": 0,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Runs started, by origin",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "Sum",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,origin} MetricName=\"testexec_runs_started_total\"', 'Sum', 300)",
                  "id": "e2",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 0,
          "y": 6,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Shards completed, by status",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "Sum",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,status} MetricName=\"testexec_shards_completed_total\"', 'Sum', 300)",
                  "id": "e3",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 12,
          "y": 6,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Tests, by outcome",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "Sum",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,outcome} MetricName=\"testexec_tests_total\"', 'Sum', 300)",
                  "id": "e4",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 0,
          "y": 12,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Webhook deliveries, by result",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "Sum",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,result} MetricName=\"testexec_webhook_deliveries_total\"', 'Sum', 300)",
                  "id": "e5",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 12,
          "y": 12,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Messages handled, by queue and result",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "Sum",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,queue,result} MetricName=\"testexec_messages_handled_total\"', 'Sum', 300)",
                  "id": "e6",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 0,
          "y": 18,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Shard queue wait (p95, s)",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "p95",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function} MetricName=\"testexec_shard_queue_wait_seconds\"', 'p95', 300)",
                  "id": "e7",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 12,
          "y": 18,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Shard run time (p95, s), by status",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "p95",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,status} MetricName=\"testexec_shard_duration_seconds\"', 'p95', 300)",
                  "id": "e8",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 0,
          "y": 24,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Run duration (p95, s), by status",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "p95",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,status} MetricName=\"testexec_run_duration_seconds\"', 'p95', 300)",
                  "id": "e9",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 12,
          "y": 24,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "Intake latency (p99, s), by route",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "p99",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,method,route} MetricName=\"testexec_http_request_duration_seconds\"', 'p99', 300)",
                  "id": "e10",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 0,
          "y": 30,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "GitHub API calls, by result",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "Sum",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function,result} MetricName=\"testexec_github_requests_total\"', 'Sum', 300)",
                  "id": "e11",
                  "label": ""
                }
              ]
            ]
          }
        },
        {
          "type": "metric",
          "x": 12,
          "y": 30,
          "width": 12,
          "height": 6,
          "properties": {
            "title": "GitHub rate-limit waits (s)",
            "region": "${data.aws_region.current.name}",
            "view": "timeSeries",
            "stat": "Sum",
            "period": 300,
            "metrics": [
              [
                {
                  "expression": "SEARCH('{testexec/${var.name},function} MetricName=\"testexec_github_rate_limit_wait_seconds_total\"', 'Sum', 300)",
                  "id": "e12",
                  "label": ""
                }
              ]
            ]
          }
        }
      ]
    }
  JSON
}
