//! Prometheus metrics, written by hand (a few counters and histograms do not need a
//! framework): requests by route and status, request latency, batch sizes, inference
//! time, queue depth, decisions, reloads and the model being served.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the batch-size histogram's buckets.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A cumulative histogram in Prometheus' sense.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (route, method, status) → count
    requests: BTreeMap<(String, String, u16), u64>,
    /// route → latency histogram
    latency: BTreeMap<String, Histogram>,
    batch_size: Option<Histogram>,
    inference_seconds: Option<Histogram>,
    /// flagged → count
    decisions: BTreeMap<bool, u64>,
    queue_rejections: u64,
    /// outcome (`ok` / `refused`) → count
    reloads: BTreeMap<&'static str, u64>,
}

/// The server's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Values sampled when `/metrics` is read rather than counted.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Pairs admitted to the scorer and not yet scored.
    pub queue_depth: usize,
    pub queue_capacity: usize,
    /// Decoded pixels admitted to requests being decoded or scored.
    pub pixels_in_flight: u64,
    /// `name@version` of the model being served, if any.
    pub model: Option<String>,
    pub placeholder_model: bool,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic while holding this lock cannot leave the counters inconsistent in a
        // way that matters, so a poisoned lock is simply reused.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner)
    }

    pub fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.with(|m| {
            *m.requests.entry((route.to_string(), method.to_string(), status)).or_default() += 1;
            m.latency.entry(route.to_string()).or_insert_with(|| Histogram::new(LATENCY_BUCKETS)).observe(seconds);
        });
    }

    pub fn record_batch(&self, size: usize, seconds: f64) {
        self.with(|m| {
            m.batch_size.get_or_insert_with(|| Histogram::new(BATCH_BUCKETS)).observe(size as f64);
            m.inference_seconds.get_or_insert_with(|| Histogram::new(LATENCY_BUCKETS)).observe(seconds);
        });
    }

    pub fn record_decision(&self, flagged: bool) {
        self.with(|m| *m.decisions.entry(flagged).or_default() += 1);
    }

    pub fn record_queue_rejection(&self) {
        self.with(|m| m.queue_rejections += 1);
    }

    pub fn record_reload(&self, ok: bool) {
        self.with(|m| *m.reloads.entry(if ok { "ok" } else { "refused" }).or_default() += 1);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        self.with(|m| {
            out.push_str("# HELP memeguard_http_requests_total HTTP requests by route, method and status.\n");
            out.push_str("# TYPE memeguard_http_requests_total counter\n");
            for ((route, method, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "memeguard_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
            out.push_str("# HELP memeguard_http_request_duration_seconds HTTP request latency by route.\n");
            out.push_str("# TYPE memeguard_http_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                h.render(&mut out, "memeguard_http_request_duration_seconds", &format!("route=\"{}\"", escape(route)));
            }
            out.push_str("# HELP memeguard_batch_size Pairs per model run.\n# TYPE memeguard_batch_size histogram\n");
            m.batch_size.clone().unwrap_or_else(|| Histogram::new(BATCH_BUCKETS)).render(
                &mut out,
                "memeguard_batch_size",
                "",
            );
            out.push_str("# HELP memeguard_inference_seconds Time of one model run.\n");
            out.push_str("# TYPE memeguard_inference_seconds histogram\n");
            m.inference_seconds.clone().unwrap_or_else(|| Histogram::new(LATENCY_BUCKETS)).render(
                &mut out,
                "memeguard_inference_seconds",
                "",
            );
            out.push_str("# HELP memeguard_decisions_total Recorded decisions by the model's verdict.\n");
            out.push_str("# TYPE memeguard_decisions_total counter\n");
            for flagged in [false, true] {
                let n = m.decisions.get(&flagged).copied().unwrap_or(0);
                let _ = writeln!(out, "memeguard_decisions_total{{flagged=\"{flagged}\"}} {n}");
            }
            out.push_str(
                "# HELP memeguard_queue_rejections_total Requests refused with 429 because the queue was full.\n",
            );
            out.push_str("# TYPE memeguard_queue_rejections_total counter\n");
            let _ = writeln!(out, "memeguard_queue_rejections_total {}", m.queue_rejections);
            out.push_str("# HELP memeguard_model_reloads_total Model reloads by outcome.\n");
            out.push_str("# TYPE memeguard_model_reloads_total counter\n");
            for outcome in ["ok", "refused"] {
                let n = m.reloads.get(outcome).copied().unwrap_or(0);
                let _ = writeln!(out, "memeguard_model_reloads_total{{outcome=\"{outcome}\"}} {n}");
            }
        });
        out.push_str("# HELP memeguard_queue_depth Pairs admitted to the scorer and not yet scored.\n");
        out.push_str("# TYPE memeguard_queue_depth gauge\n");
        let _ = writeln!(out, "memeguard_queue_depth {}", gauges.queue_depth);
        out.push_str("# HELP memeguard_queue_capacity Pairs the scorer admits before answering 429.\n");
        out.push_str("# TYPE memeguard_queue_capacity gauge\n");
        let _ = writeln!(out, "memeguard_queue_capacity {}", gauges.queue_capacity);
        out.push_str(
            "# HELP memeguard_pixels_in_flight Decoded pixels admitted to requests being decoded or scored.\n",
        );
        out.push_str("# TYPE memeguard_pixels_in_flight gauge\n");
        let _ = writeln!(out, "memeguard_pixels_in_flight {}", gauges.pixels_in_flight);
        out.push_str("# HELP memeguard_model_info The model package being served (value 1).\n");
        out.push_str("# TYPE memeguard_model_info gauge\n");
        if let Some(model) = &gauges.model {
            let _ = writeln!(
                out,
                "memeguard_model_info{{model=\"{}\",placeholder=\"{}\"}} 1",
                escape(model),
                gauges.placeholder_model
            );
        }
        out
    }
}

/// Escapes a label value for the text format.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The `method` label: one of a fixed set, so that clients cannot grow the label set with
/// made-up methods (`FOO / HTTP/1.1` is a valid request line).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every request by its route template (not the raw path, so ids do
/// not explode the label set) and records its latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.unwrap_or_else(|| "unmatched".to_string());
    state.metrics.record_request(&route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 3.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_sum 5\n") && out.contains("x_count 3\n"), "{out}");
    }

    #[test]
    fn methods_outside_the_fixed_set_are_other() {
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for made_up in ["FOO", "get", "BREW", "CONNECT", "TRACE"] {
            assert_eq!(method_label(&Method::from_bytes(made_up.as_bytes()).unwrap()), "other", "{made_up}");
        }
    }

    #[test]
    fn renders_requests_and_gauges() {
        let m = Metrics::default();
        m.record_request("/v1/moderations", "POST", 200, 0.01);
        let text = m.render(&Gauges {
            queue_depth: 3,
            queue_capacity: 8,
            pixels_in_flight: 12,
            model: Some("m@1".into()),
            placeholder_model: true,
        });
        assert!(
            text.contains("memeguard_http_requests_total{route=\"/v1/moderations\",method=\"POST\",status=\"200\"} 1")
        );
        assert!(text.contains("memeguard_queue_depth 3"));
        assert!(text.contains("memeguard_pixels_in_flight 12\n"));
        assert!(text.contains("memeguard_model_info{model=\"m@1\",placeholder=\"true\"} 1"));
    }
}
