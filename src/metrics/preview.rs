//! The metrics of previews (SPEC §9, §12): made, failed (by a closed set of reasons), how long
//! making them took, and how many jobs the pool holds. Registered beside the others in the
//! default registry.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};

/// A 12 MP photo takes a few hundred milliseconds; a queue adds seconds.
const BUCKETS_MS: &[f64] = &[
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 30_000.0,
];
/// Every `reason` label value, so that a dashboard sees 0 rather than nothing.
const REASONS: [&str; 4] = [
    "unsupported_type",
    "too_many_bytes",
    "too_many_pixels",
    "undecodable",
];

struct PreviewMetrics {
    generated: IntCounterVec,
    failures: IntCounterVec,
    latency_ms: Histogram,
    queue_depth: IntGauge,
}

fn metrics() -> &'static PreviewMetrics {
    static METRICS: OnceLock<PreviewMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = build().expect("metric names and options are static and valid");
        let registry = prometheus::default_registry();
        let registered = registry
            .register(Box::new(m.generated.clone()))
            .and_then(|()| registry.register(Box::new(m.failures.clone())))
            .and_then(|()| registry.register(Box::new(m.latency_ms.clone())))
            .and_then(|()| registry.register(Box::new(m.queue_depth.clone())));
        if let Err(e) = registered {
            tracing::error!(error = %e, "registering preview metrics");
        }
        m
    })
}

fn build() -> prometheus::Result<PreviewMetrics> {
    let m = PreviewMetrics {
        generated: IntCounterVec::new(
            Opts::new("preview_generated_total", "Previews made, by variant."),
            &["variant"],
        )?,
        failures: IntCounterVec::new(
            Opts::new(
                "preview_failures_total",
                "Attachments whose previews could not be made, by reason.",
            ),
            &["reason"],
        )?,
        latency_ms: Histogram::with_opts(
            HistogramOpts::new(
                "preview_latency_ms",
                "Time to make an attachment's previews (read, decode, encode, store), in ms.",
            )
            .buckets(BUCKETS_MS.to_vec()),
        )?,
        queue_depth: IntGauge::new(
            "preview_queue_depth",
            "Preview jobs admitted to the pool and not finished (running or waiting).",
        )?,
    };
    for variant in ["thumb", "preview"] {
        m.generated.with_label_values(&[variant]);
    }
    for reason in REASONS {
        m.failures.with_label_values(&[reason]);
    }
    Ok(m)
}

/// Register the preview metrics now, so that the first scrape lists them at zero.
pub fn init() {
    metrics();
}

/// One variant of an attachment was made (in all of its formats).
pub fn generated(variant: &'static str) {
    metrics().generated.with_label_values(&[variant]).inc();
}

/// An attachment's previews could not be made; `reason` is from a closed set.
pub fn failed(reason: &'static str) {
    metrics().failures.with_label_values(&[reason]).inc();
}

pub fn latency(took: Duration) {
    metrics().latency_ms.observe(took.as_secs_f64() * 1000.0);
}

pub fn queue_depth(jobs: usize) {
    metrics()
        .queue_depth
        .set(i64::try_from(jobs).unwrap_or(i64::MAX));
}
