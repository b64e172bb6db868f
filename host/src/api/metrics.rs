//! Prometheus metrics, rendered in the text exposition format at GET /metrics.
//!
//! Counters and histograms are kept in a few maps behind one mutex each: updates are
//! a lock and an add, far below the cost of anything they measure.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<Labels, u64>>,
    executions: Mutex<BTreeMap<Labels, Histogram>>,
    plugin_calls: Mutex<BTreeMap<Labels, Histogram>>,
    reloads: Mutex<BTreeMap<Labels, u64>>,
}

impl Metrics {
    pub fn request(&self, endpoint: &str, status: u16) {
        let labels = vec![
            ("endpoint", endpoint.to_string()),
            ("status", status.to_string()),
        ];
        *lock(&self.requests).entry(labels).or_default() += 1;
    }

    pub fn execution(&self, language: &str, status: &str, duration: Duration) {
        let labels = vec![
            ("language", language.to_string()),
            ("status", status.to_string()),
        ];
        lock(&self.executions)
            .entry(labels)
            .or_default()
            .observe(duration.as_secs_f64());
    }

    pub fn plugin_call(&self, plugin: &str, outcome: &str, duration: Duration) {
        let labels = vec![
            ("plugin", plugin.to_string()),
            ("outcome", outcome.to_string()),
        ];
        lock(&self.plugin_calls)
            .entry(labels)
            .or_default()
            .observe(duration.as_secs_f64());
    }

    pub fn reload(&self, ok: bool) {
        let labels = vec![("result", if ok { "ok" } else { "error" }.to_string())];
        *lock(&self.reloads).entry(labels).or_default() += 1;
    }

    /// The text exposition format; `active` and `queued` are the executor's gauges.
    pub fn render(&self, active: usize, queued: usize) -> String {
        let mut out = String::new();
        counter(
            &mut out,
            "sidecar_requests_total",
            "HTTP requests by endpoint and status.",
            &lock(&self.requests),
        );
        histogram(
            &mut out,
            "sidecar_execution_duration_seconds",
            "Executions by language and outcome status.",
            &lock(&self.executions),
        );
        histogram(
            &mut out,
            "sidecar_plugin_call_duration_seconds",
            "Plugin plan calls by plugin and outcome.",
            &lock(&self.plugin_calls),
        );
        gauge(
            &mut out,
            "sidecar_active_executions",
            "Executions running now.",
            active as i64,
        );
        gauge(
            &mut out,
            "sidecar_queued_executions",
            "Executions waiting for a slot.",
            queued as i64,
        );
        counter(
            &mut out,
            "sidecar_reloads_total",
            "Reloads of plugins and languages.toml by result.",
            &lock(&self.reloads),
        );
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn labels(l: &Labels, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn counter(out: &mut String, name: &str, help: &str, values: &BTreeMap<Labels, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (l, v) in values {
        let _ = writeln!(out, "{name}{} {v}", labels(l, None));
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn histogram(out: &mut String, name: &str, help: &str, values: &BTreeMap<Labels, Histogram>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (l, h) in values {
        for (bound, count) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{} {count}",
                labels(l, Some(("le", &bound.to_string())))
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{} {}",
            labels(l, Some(("le", "+Inf"))),
            h.count
        );
        let _ = writeln!(out, "{name}_sum{} {}", labels(l, None), h.sum);
        let _ = writeln!(out, "{name}_count{} {}", labels(l, None), h.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("/read", 200);
        m.request("/read", 200);
        m.execution("py", "ok", Duration::from_millis(30));
        let text = m.render(1, 0);
        assert!(
            text.contains("sidecar_requests_total{endpoint=\"/read\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("sidecar_execution_duration_seconds_bucket{language=\"py\",status=\"ok\",le=\"0.05\"} 1"), "{text}");
        assert!(text.contains("sidecar_execution_duration_seconds_bucket{language=\"py\",status=\"ok\",le=\"0.025\"} 0"), "{text}");
    }
}
