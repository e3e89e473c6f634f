//! `testexec cost`: the built-in prices and measured calls price a
//! workload on each cloud; more work costs more, an idle month is the
//! same bill at zero runs, and bad input names its flag.

use std::process::Command;

use serde_json::Value;

fn cost(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .arg("cost")
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn monthly(json: &Value, cloud: &str) -> (f64, f64) {
    let e = json["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cloud"] == cloud)
        .unwrap_or_else(|| panic!("no {cloud} in {json:#}"));
    (
        e["monthly_usd"].as_f64().unwrap(),
        e["idle_usd"].as_f64().unwrap(),
    )
}

#[test]
fn every_cloud_is_priced_and_the_bill_grows_with_shard_minutes() {
    let base = ["--json", "--runs-per-day", "100", "--shards", "8"];
    let (code, small, err) = cost(&[&base[..], &["--shard-minutes", "2"]].concat());
    assert_eq!(code, Some(0), "{err}");
    let (_, large, _) = cost(&[&base[..], &["--shard-minutes", "8"]].concat());
    for cloud in ["aws", "gcp", "azure"] {
        let (s, idle) = monthly(&small, cloud);
        let (l, _) = monthly(&large, cloud);
        assert!(l > s && s > idle, "{cloud}: {l} > {s} > {idle}");
        // Execute time is billed per second: 4× the minutes is nearly 4×
        // the bill once past the free tier.
        assert!(l - idle > 3.0 * (s - idle), "{cloud}: {l} vs {s}");
    }
    // Every line names a price of the built-in list, with a source.
    let lines = small["estimates"][0]["lines"].as_array().unwrap();
    assert!(lines.iter().any(|l| l["item"] == "lambda_gb_seconds_arm64"));
    assert_eq!(small["prices_as_of"].as_str().map(str::len), Some(10));
}

#[test]
fn an_idle_month_is_the_bill_at_zero_runs() {
    let (code, json, err) = cost(&["--json", "--runs-per-day", "0"]);
    assert_eq!(code, Some(0), "{err}");
    for cloud in ["aws", "gcp", "azure"] {
        let (monthly, idle) = monthly(&json, cloud);
        assert!(
            (monthly - idle).abs() < 1e-9,
            "{cloud}: {monthly} vs {idle}"
        );
    }
    // Google Cloud's push delivery and scale to zero leave nothing billed.
    assert_eq!(monthly(&json, "gcp").1, 0.0);
}

#[test]
fn bad_input_names_the_flag_or_the_file() {
    let (code, _, err) = cost(&["--shards", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`shards`"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "as_of = \"x\"\n[aws]\nregion = \"r\"\n[aws.lambda_requests]\nusd = -1\nper = 1\nsource = \"https://x\"\n[gcp]\nregion = \"r\"\n[azure]\nregion = \"r\"\n").unwrap();
    let (code, _, err) = cost(&["--prices", prices.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("aws.lambda_requests"), "{err}");
    std::fs::write(
        &prices,
        "as_of = \"x\"\n[aws]\nregion = \"r\"\n[gcp]\nregion = \"r\"\n[azure]\nregion = \"r\"\n",
    )
    .unwrap();
    let (code, _, err) = cost(&["--prices", prices.to_str().unwrap(), "--cloud", "gcp"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no price `run_requests`"), "{err}");
}
