use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{repository_with, TestServer};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed page: family types and samples.
#[derive(Debug, Default)]
struct Page {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Page {
    /// The value of the one sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    fn model(&self, name: &str, model: &str) -> f64 {
        self.value(name, &[("model", model), ("version", "1")])
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{a="x",b="y"}`, returning the labels and the rest of the line.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text
        .strip_prefix('{')
        .ok_or_else(|| format!("expected '{{' in {text:?}"))?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("bad label in {text:?}"))?;
        if !valid_name(name) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {text:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {text:?}")),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} repeated in {text:?}"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

/// A strict parser of the Prometheus text format (0.0.4): every sample
/// belongs to a family typed before it, each family is typed once, no
/// series repeats, histograms have ascending cumulative buckets ending in
/// `+Inf` equal to `_count`.
fn parse(text: &str) -> Result<Page, String> {
    let mut page = Page::default();
    let mut helped = HashSet::new();
    let mut series = HashSet::new();
    if !text.ends_with('\n') {
        return Err("the page does not end with a newline".into());
    }
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (keyword, name) = (parts.next(), parts.next().unwrap_or(""));
            if !valid_name(name) {
                return Err(format!("bad metric name in {line:?}"));
            }
            match keyword {
                Some("HELP") if !helped.insert(name.to_string()) => {
                    return Err(format!("second HELP for {name}"));
                }
                Some("TYPE") => {
                    let kind = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(format!("bad type in {line:?}"));
                    }
                    if page.samples.iter().any(|s| family(&page, &s.name) == name) {
                        return Err(format!("TYPE of {name} after its samples"));
                    }
                    if page.types.insert(name.into(), kind.into()).is_some() {
                        return Err(format!("second TYPE for {name}"));
                    }
                }
                _ => {}
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let split = line
            .find(['{', ' '])
            .ok_or_else(|| format!("bad line {line:?}"))?;
        let name = &line[..split];
        if !valid_name(name) {
            return Err(format!("bad metric name in {line:?}"));
        }
        let (labels, rest) = if line[split..].starts_with('{') {
            parse_labels(&line[split..])?
        } else {
            (BTreeMap::new(), &line[split..])
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(
            fields
                .next()
                .ok_or_else(|| format!("no value in {line:?}"))?,
        )?;
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .map_err(|_| format!("bad timestamp in {line:?}"))?;
        }
        if fields.next().is_some() || !rest.starts_with(' ') {
            return Err(format!("bad sample line {line:?}"));
        }
        let family_name = family(&page, name);
        let kind = page
            .types
            .get(family_name)
            .ok_or_else(|| format!("sample {name} has no TYPE before it"))?;
        if kind == "histogram" && name == family_name {
            return Err(format!("histogram sample {name} lacks a suffix"));
        }
        if !series.insert(format!("{name}{labels:?}")) {
            return Err(format!("series repeated: {line:?}"));
        }
        page.samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    check_histograms(&page)?;
    Ok(page)
}

/// The family a sample name belongs to (histograms add suffixes).
fn family<'a>(page: &Page, name: &'a str) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if page.types.get(base).map(String::as_str) == Some("histogram") {
                return base;
            }
        }
    }
    name
}

fn check_histograms(page: &Page) -> Result<(), String> {
    for (name, kind) in &page.types {
        if kind != "histogram" {
            continue;
        }
        let mut by_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in page
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
        {
            let mut labels = sample.labels.clone();
            let le = labels
                .remove("le")
                .ok_or_else(|| format!("{name} bucket without le"))?;
            by_series
                .entry(format!("{labels:?}"))
                .or_default()
                .push((parse_value(&le)?, sample.value));
        }
        for (labels, buckets) in by_series {
            if !buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
            {
                return Err(format!("{name}{labels} buckets are not cumulative"));
            }
            let (last_le, last) = buckets[buckets.len() - 1];
            if last_le != f64::INFINITY {
                return Err(format!("{name}{labels} has no +Inf bucket"));
            }
            let count = page
                .samples
                .iter()
                .find(|s| s.name == format!("{name}_count") && format!("{:?}", s.labels) == labels)
                .ok_or_else(|| format!("{name}{labels} has no _count"))?;
            if count.value != last {
                return Err(format!(
                    "{name}{labels}: +Inf {last} != count {}",
                    count.value
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn parser_rejects_malformed_pages() {
    let good = "# HELP a x\n# TYPE a counter\na{m=\"1\"} 2\n";
    assert!(parse(good).is_ok());
    for bad in [
        "a 1\n",
        "# TYPE a counter\na{m=\"1} 2\n",
        "# TYPE a counter\na{m=\"1\"} two\n",
        "# TYPE a counter\na 1\na 2\n",
        "# TYPE a counter\n# TYPE a gauge\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n",
        "# TYPE a counter\na 1",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_requests() {
    const N: u64 = 5;
    let server = TestServer::start(&["simple", "identity_fp32"]).await;
    let page = parse(&server.metrics_text().await).unwrap();
    assert_eq!(page.model("nv_inference_request_success", "simple"), 0.0);

    let data: Vec<i32> = (0..48).collect();
    let ok = json!({"inputs": [
        {"name": "INPUT0", "shape": [3, 16], "datatype": "INT32", "data": data},
        {"name": "INPUT1", "shape": [3, 16], "datatype": "INT32", "data": data},
    ]});
    for _ in 0..N {
        let (status, answer) = server.post_json("/v2/models/simple/infer", &ok).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let bad = json!({"inputs": [ok["inputs"][0].clone()]});
    let (status, _) = server.post_json("/v2/models/simple/infer", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let text = server.metrics_text().await;
    let page = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (metric, kind) in [
        ("nv_inference_request_success", "counter"),
        ("nv_inference_request_failure", "counter"),
        ("nv_inference_count", "counter"),
        ("nv_inference_exec_count", "counter"),
        ("nv_inference_request_duration_us", "counter"),
        ("nv_inference_queue_duration_us", "counter"),
        ("nv_inference_compute_input_duration_us", "counter"),
        ("nv_inference_compute_infer_duration_us", "counter"),
        ("nv_inference_compute_output_duration_us", "counter"),
        ("nv_inference_pending_request_count", "gauge"),
        ("nv_model_load_duration_secs", "gauge"),
        ("ferrite_request_duration_us", "histogram"),
        ("ferrite_queue_duration_us", "histogram"),
        ("nv_cpu_utilization", "gauge"),
        ("nv_cpu_memory_total_bytes", "gauge"),
        ("nv_cpu_memory_used_bytes", "gauge"),
    ] {
        assert_eq!(
            page.types.get(metric).map(String::as_str),
            Some(kind),
            "{metric}"
        );
        assert!(text.contains(&format!("# HELP {metric} ")), "{metric}");
    }
    let n = N as f64;
    assert_eq!(page.model("nv_inference_request_success", "simple"), n);
    assert_eq!(page.model("nv_inference_count", "simple"), 3.0 * n);
    assert_eq!(page.model("nv_inference_exec_count", "simple"), n);
    assert_eq!(
        page.model("nv_inference_pending_request_count", "simple"),
        0.0
    );
    assert_eq!(page.model("ferrite_request_duration_us_count", "simple"), n);
    assert_eq!(page.model("ferrite_queue_duration_us_count", "simple"), n);
    let failure = |model: &str, reason: &str| {
        page.value(
            "nv_inference_request_failure",
            &[("model", model), ("version", "1"), ("reason", reason)],
        )
    };
    assert_eq!(failure("simple", "OTHER"), 1.0);
    for reason in ["REJECTED", "CANCELED", "BACKEND"] {
        assert_eq!(failure("simple", reason), 0.0, "{reason}");
    }
    assert_eq!(
        page.model("nv_inference_request_success", "identity_fp32"),
        0.0
    );
    assert_eq!(
        page.model("ferrite_request_duration_us_count", "identity_fp32"),
        0.0
    );
    assert!(page.model("nv_model_load_duration_secs", "simple") > 0.0);
    let cpu = page.value("nv_cpu_utilization", &[]);
    assert!((0.0..=1.0).contains(&cpu), "{cpu}");
    let total = page.value("nv_cpu_memory_total_bytes", &[]);
    let used = page.value("nv_cpu_memory_used_bytes", &[]);
    assert!(
        total > 0.0 && used > 0.0 && used <= total,
        "{used} of {total}"
    );

    let (_, stats) = server.get_json("/v2/models/simple/stats").await;
    let success_ns = stats["model_stats"][0]["inference_stats"]["success"]["ns"]
        .as_u64()
        .unwrap();
    assert_eq!(
        page.model("nv_inference_request_duration_us", "simple"),
        (success_ns / 1000) as f64
    );
    // The histogram sums whole microseconds per request.
    let histogram_sum = page.model("ferrite_request_duration_us_sum", "simple");
    let total = page.model("nv_inference_request_duration_us", "simple");
    assert!(
        histogram_sum <= total && total - histogram_sum <= n,
        "{histogram_sum} vs {total}"
    );

    let response = server
        .client
        .get(format!("{}/nothing", server.metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    server.shutdown().await;
}

/// The `ferrite` binary over a copy of `identity_fp32` with extra `flags`.
fn ferrite(repository: &std::path::Path, flags: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrite"));
    command
        .arg("--model-repository")
        .arg(repository)
        .args([
            "--http-port=0",
            "--http-address=127.0.0.1",
            "--allow-grpc=false",
        ])
        .args(["--metrics-port=0", "--metrics-address=127.0.0.1"])
        .args(flags)
        .stdin(Stdio::null());
    command
}

/// Latency histograms are a process-wide setting, so the server that turns
/// them off runs as its own process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_can_be_turned_off() {
    let repository = repository_with(&["identity_fp32"]);
    let mut child = ferrite(
        repository.path(),
        &["--metrics-config", "histogram_latencies=false"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.starts_with("ferrite ready "))
    })
    .await
    .unwrap()
    .expect("no ready line");
    let address = |key: &str| {
        ready
            .split_whitespace()
            .find_map(|part| part.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {ready}"))
            .to_string()
    };
    let (http, metrics) = (address("http"), address("metrics"));
    let client = reqwest::Client::new();
    let request = json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": vec![0.5f32; 16]},
    ]});
    let response = client
        .post(format!("http://{http}/v2/models/identity_fp32/infer"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let page = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        page.model("nv_inference_request_success", "identity_fp32"),
        1.0
    );
    assert!(!text.contains("ferrite_request_duration_us"), "{text}");
    assert!(!text.contains("ferrite_queue_duration_us"), "{text}");
}

#[test]
fn unknown_metrics_settings_are_refused() {
    let repository = repository_with(&["identity_fp32"]);
    let output = ferrite(
        repository.path(),
        &["--metrics-config", "summary_latencies=true"],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown metrics setting 'summary_latencies'"),
        "{stderr}"
    );
}

#[tokio::test]
async fn host_metrics_follow_their_flags() {
    let server = TestServer::start_with(
        repository_with(&["identity_fp32"]),
        &["--allow-cpu-metrics=false", "--allow-gpu-metrics=false"],
    )
    .await
    .unwrap();
    let text = server.metrics_text().await;
    let page = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(page.model("nv_inference_count", "identity_fp32"), 0.0);
    assert!(!text.contains("nv_cpu_"), "{text}");
    assert!(!text.contains("nv_gpu_"), "{text}");
    server.shutdown().await;
}

/// GPU families appear exactly where an NVIDIA driver is installed (its
/// control device exists); elsewhere the server leaves them out.
#[tokio::test]
async fn gpu_metrics_where_a_driver_exists() {
    let server = TestServer::start(&["identity_fp32"]).await;
    let text = server.metrics_text().await;
    let page = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    if std::path::Path::new("/dev/nvidiactl").exists() {
        assert_eq!(page.types["nv_gpu_utilization"], "gauge");
        assert_eq!(page.types["nv_gpu_memory_total_bytes"], "gauge");
        let uuids: HashSet<&String> = page
            .samples
            .iter()
            .filter(|s| s.name == "nv_gpu_memory_total_bytes")
            .map(|s| &s.labels["gpu_uuid"])
            .collect();
        assert!(!uuids.is_empty(), "{text}");
    } else {
        eprintln!("no NVIDIA driver here: checking that the GPU families are left out");
        assert!(!text.contains("nv_gpu_"), "{text}");
    }
    server.shutdown().await;
}
