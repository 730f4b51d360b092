//! `/metrics` read with a Prometheus text-format parser (`prometheus-parse`), so a test checks
//! what a Prometheus server would read, not a string match.

use prometheus_parse::{Sample, Scrape, Value};

/// Fetches and parses `{base}/metrics`; panics when the text does not parse.
pub async fn scrape(base: &str) -> Metrics {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("read /metrics");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = Scrape::parse(lines).expect("the metrics parse as Prometheus text");
    Metrics { parsed, text }
}

pub struct Metrics {
    pub parsed: Scrape,
    pub text: String,
}

impl Metrics {
    /// The sum of the samples named `name` whose labels include `labels` (0 when none).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels)
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
                Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.parsed.samples.iter().any(|s| s.metric == name)
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.parsed.samples.iter().filter(move |s| {
            s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
    }
}
