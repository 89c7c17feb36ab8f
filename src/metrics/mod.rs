//! The gateway's Prometheus metrics: one typed struct, registered once in the default registry
//! (the one `pingora-prometheus` 0.9 reads, both on `prometheus` 0.14), with every label value
//! drawn from a closed set. No ids, addresses, names or paths ever become a label.
//!
//! What counts as a *download*: every request that the router classified as one of the two
//! read routes (`GET`/`HEAD` on a linked or a staged attachment), whatever its answer: `200`,
//! `206`, `304`, every `4xx`/`5xx` the gateway wrote for it (`429` from the limiter included),
//! and a connection that ended before any header went out (status label `none`). A wrong method
//! on a read path is not a download (the router answers `405` before anything is read). Each
//! download is counted once, from the `logging` phase, which Pingora runs on every handled
//! path including a client disconnect; `download_bytes_total` adds the attachment bytes really
//! written to the client (`200`/`206` bodies; error JSON is not content), so a cut download
//! counts what was sent, not what was promised.
//!
//! Three components keep their own counters, and [`render`] exports their snapshot at scrape
//! time: the catalog cache (`catalog_cache_hits_total`, `catalog_cache_misses_total`), storage's
//! memory cache (`storage_memory_cache_hits_total`, `storage_memory_cache_misses_total`) and the
//! limiter (`rate_limited_total{scope}`, `limits_redis_fallback_total`).

pub mod access;
pub mod preview;

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::catalog::CacheStats;
use crate::limits::LimiterStats;
use crate::storage::{MemoryCacheStats, StorageError};

/// Latency buckets in milliseconds: a cached small read takes a few, a large video minutes.
const LATENCY_BUCKETS_MS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
    30_000.0, 60_000.0, 300_000.0,
];
/// Storage time-to-first-byte buckets in milliseconds (the read timeout is seconds).
const TTFB_BUCKETS_MS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 15_000.0,
];

/// What went wrong talking to storage: the `kind` label of `storage_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    Timeout,
    /// Storage answered an unexpected HTTP status.
    Status,
    /// Connection refused or reset, a cut or overlong body, an unreadable answer.
    Transport,
    /// The row exists but its object does not.
    NotFound,
    /// Local file-system errors, and a provider that cannot do what was asked.
    Io,
}

impl StorageErrorKind {
    pub const ALL: [StorageErrorKind; 5] = [
        Self::Timeout,
        Self::Status,
        Self::Transport,
        Self::NotFound,
        Self::Io,
    ];

    pub fn of(err: &StorageError) -> Self {
        match err {
            StorageError::NotFound => Self::NotFound,
            StorageError::Timeout => Self::Timeout,
            StorageError::Status(_) => Self::Status,
            StorageError::Transport(_) => Self::Transport,
            StorageError::Io(_) | StorageError::Config(_) => Self::Io,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Status => "status",
            Self::Transport => "transport",
            Self::NotFound => "not_found",
            Self::Io => "io",
        }
    }
}

/// The `status` label of `attachment_download_count`: the statuses a read route can answer,
/// then the class for anything else, so the set stays closed whatever a handler writes.
pub fn status_label(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 15] = [
        (0, "none"),
        (200, "200"),
        (206, "206"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (416, "416"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    if let Some((_, label)) = KNOWN.iter().find(|(s, _)| *s == status) {
        return label;
    }
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// Every metric the gateway exports, built and registered once.
struct Metrics {
    downloads: IntCounterVec,
    download_bytes: IntCounter,
    download_4xx: IntCounter,
    download_5xx: IntCounter,
    download_latency_ms: Histogram,
    downloads_in_flight: IntGauge,
    storage_ttfb_ms: Histogram,
    storage_errors: IntCounterVec,
    uploads: IntCounter,
    upload_bytes: IntCounter,
    cleanup_deleted: IntCounter,
}

impl Metrics {
    fn new() -> prometheus::Result<Metrics> {
        let counter = |name: &str, help: &str| IntCounter::new(name, help);
        let vec = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        };
        let m = Metrics {
            downloads: vec(
                "attachment_download_count",
                "Requests on the read routes, by response status.",
                "status",
            )?,
            download_bytes: counter(
                "download_bytes_total",
                "Body bytes written to clients on the read routes, cut downloads included.",
            )?,
            download_4xx: counter("download_4xx", "Read-route requests answered 4xx.")?,
            download_5xx: counter("download_5xx", "Read-route requests answered 5xx.")?,
            download_latency_ms: histogram(
                "download_latency_ms",
                "Read-route request duration, header read to last byte, in milliseconds.",
                LATENCY_BUCKETS_MS,
            )?,
            downloads_in_flight: IntGauge::new(
                "downloads_in_flight",
                "Read-route requests being served right now.",
            )?,
            storage_ttfb_ms: histogram(
                "storage_ttfb_ms",
                "Time from asking storage for an object to its answer, in milliseconds.",
                TTFB_BUCKETS_MS,
            )?,
            storage_errors: vec(
                "storage_errors_total",
                "Failed storage operations, by kind.",
                "kind",
            )?,
            uploads: counter("upload_count", "Uploads staged successfully.")?,
            upload_bytes: counter(
                "upload_bytes_total",
                "Bytes of uploads staged successfully.",
            )?,
            cleanup_deleted: counter(
                "cleanup_deleted_total",
                "Expired staged uploads and orphan objects deleted by cleanup.",
            )?,
        };
        // Every label value exists from the start, so a dashboard sees 0 rather than nothing.
        for kind in StorageErrorKind::ALL {
            m.storage_errors.with_label_values(&[kind.as_str()]);
        }
        Ok(m)
    }

    fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        let all: [Box<dyn Collector>; 11] = [
            Box::new(self.downloads.clone()),
            Box::new(self.download_bytes.clone()),
            Box::new(self.download_4xx.clone()),
            Box::new(self.download_5xx.clone()),
            Box::new(self.download_latency_ms.clone()),
            Box::new(self.downloads_in_flight.clone()),
            Box::new(self.storage_ttfb_ms.clone()),
            Box::new(self.storage_errors.clone()),
            Box::new(self.uploads.clone()),
            Box::new(self.upload_bytes.clone()),
            Box::new(self.cleanup_deleted.clone()),
        ];
        all.into_iter().try_for_each(|c| registry.register(c))
    }
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = Metrics::new().expect("metric names and options are static and valid");
        if let Err(e) = m.register(prometheus::default_registry()) {
            // Only a name clash with another collector can fail; the metrics still count.
            tracing::error!(error = %e, "registering metrics");
        }
        m
    })
}

/// Register every metric now, so that the first scrape lists them all at zero.
pub fn init() {
    metrics();
    preview::init();
}

/// A read-route request ended (any status, any path through the proxy) after writing `bytes`
/// body bytes. Only a `2xx` body is attachment content; an error's JSON body is not counted.
pub fn download_finished(status: u16, bytes: u64, latency: Duration) {
    let m = metrics();
    m.downloads.with_label_values(&[status_label(status)]).inc();
    match status {
        200..=299 => m.download_bytes.inc_by(bytes),
        400..=499 => m.download_4xx.inc(),
        500..=599 => m.download_5xx.inc(),
        _ => {}
    }
    m.download_latency_ms
        .observe(latency.as_secs_f64() * 1000.0);
}

/// Counts a read-route request in `downloads_in_flight` until dropped. Kept in the request
/// context, so that every end of a request (done, error, client gone, task dropped) releases it.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        metrics().downloads_in_flight.inc();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics().downloads_in_flight.dec();
    }
}

/// Storage answered a read (headers received, or the file opened) after `elapsed`.
pub fn storage_first_byte(elapsed: Duration) {
    metrics()
        .storage_ttfb_ms
        .observe(elapsed.as_secs_f64() * 1000.0);
}

/// A storage operation failed (any operation: read, write, copy, delete, list).
pub fn storage_error(err: &StorageError) {
    storage_error_kind(StorageErrorKind::of(err));
}

pub fn storage_error_kind(kind: StorageErrorKind) {
    metrics()
        .storage_errors
        .with_label_values(&[kind.as_str()])
        .inc();
}

/// An upload of `bytes` bytes was staged (object written and row inserted).
pub fn upload_finished(bytes: u64) {
    let m = metrics();
    m.uploads.inc();
    m.upload_bytes.inc_by(bytes);
}

/// A cleanup pass deleted `n` staged uploads or orphan objects.
pub fn cleanup_deleted(n: u64) {
    metrics().cleanup_deleted.inc_by(n);
}

/// Counters other components keep themselves, read at scrape time.
pub struct Snapshot<'a> {
    /// `None` when the catalog cache is off: both cache counters then read 0.
    pub cache: Option<CacheStats>,
    /// `None` when storage's memory cache is off: both of its counters then read 0.
    pub memory: Option<MemoryCacheStats>,
    pub limits: &'a LimiterStats,
}

/// The Prometheus text exposition: the default registry plus the [`Snapshot`] counters.
pub fn render(snapshot: &Snapshot<'_>) -> prometheus::Result<Vec<u8>> {
    init();
    let mut families = prometheus::gather();
    let cache = snapshot.cache.unwrap_or_default();
    let memory = snapshot.memory.unwrap_or_default();
    for (name, help, value) in [
        (
            "catalog_cache_hits_total",
            "Catalog lookups answered by the in-process cache.",
            cache.hits,
        ),
        (
            "catalog_cache_misses_total",
            "Catalog lookups that went to the database.",
            cache.misses,
        ),
        (
            "storage_memory_cache_hits_total",
            "Small object reads answered from the gateway's memory (storage.memory_cache_*).",
            memory.hits,
        ),
        (
            "storage_memory_cache_misses_total",
            "Small object reads that had to fetch the body from storage to keep it.",
            memory.misses,
        ),
        (
            "limits_redis_fallback_total",
            "Limit decisions taken without Redis because it failed.",
            snapshot.limits.redis_fallbacks(),
        ),
    ] {
        let counter = IntCounter::new(name, help)?;
        counter.inc_by(value);
        families.extend(counter.collect());
    }
    let limited = IntCounterVec::new(
        Opts::new(
            "rate_limited_total",
            "Requests refused by a limit, by scope.",
        ),
        &["scope"],
    )?;
    for (scope, count) in snapshot.limits.limited_by_scope() {
        limited.with_label_values(&[scope.as_str()]).inc_by(count);
    }
    families.extend(limited.collect());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    TextEncoder::new().encode(&families, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_a_closed_set() {
        assert_eq!(status_label(206), "206");
        assert_eq!(status_label(0), "none");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
        assert_eq!(status_label(999), "5xx");
        assert_eq!(status_label(201), "2xx");
    }

    #[test]
    fn storage_errors_map_to_kinds() {
        assert_eq!(
            StorageErrorKind::of(&StorageError::Timeout).as_str(),
            "timeout"
        );
        assert_eq!(
            StorageErrorKind::of(&StorageError::Status(503)).as_str(),
            "status"
        );
        assert_eq!(
            StorageErrorKind::of(&StorageError::Transport("reset".into())).as_str(),
            "transport"
        );
        assert_eq!(
            StorageErrorKind::of(&StorageError::NotFound).as_str(),
            "not_found"
        );
        assert_eq!(
            StorageErrorKind::of(&std::io::Error::other("x").into()).as_str(),
            "io"
        );
    }

    #[test]
    fn render_lists_every_metric_with_its_exact_name() {
        download_finished(200, 10, Duration::from_millis(3));
        let limits = LimiterStats::default();
        let snapshot = Snapshot {
            cache: Some(CacheStats { hits: 3, misses: 4 }),
            memory: None,
            limits: &limits,
        };
        let text = String::from_utf8(render(&snapshot).unwrap()).unwrap();
        for name in [
            "attachment_download_count",
            "download_bytes_total",
            "download_4xx",
            "download_5xx",
            "download_latency_ms_bucket",
            "downloads_in_flight",
            "storage_ttfb_ms_bucket",
            "upload_count",
            "upload_bytes_total",
            "cleanup_deleted_total",
            "limits_redis_fallback_total",
        ] {
            assert!(
                text.contains(&format!("\n{name}")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("catalog_cache_hits_total 3"));
        assert!(text.contains("catalog_cache_misses_total 4"));
        assert!(text.contains("rate_limited_total{scope=\"concurrency\"} 0"));
        assert!(text.contains("storage_errors_total{kind=\"not_found\"}"));
    }

    #[test]
    fn in_flight_guard_decrements_on_drop() {
        // No other unit test holds a guard, so the gauge moves by exactly ours.
        let gauge = || metrics().downloads_in_flight.get();
        let before = gauge();
        let guard = InFlight::start();
        assert_eq!(gauge(), before + 1);
        drop(guard);
        assert_eq!(gauge(), before);
    }

    #[test]
    fn dashboard_queries_only_exported_metrics() {
        let limits = LimiterStats::default();
        let snapshot = Snapshot {
            cache: None,
            memory: None,
            limits: &limits,
        };
        download_finished(200, 1, Duration::from_millis(1));
        storage_first_byte(Duration::from_millis(1));
        let text = String::from_utf8(render(&snapshot).unwrap()).unwrap();
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../conf/grafana-dashboard.json")).unwrap();
        let panels = dashboard["panels"].as_array().unwrap();
        assert!(panels.len() >= 6);
        for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
            let expr = target["expr"].as_str().unwrap();
            // Every `name{` in a query is a series this module exports.
            for (at, _) in expr.match_indices('{') {
                let name: String = expr[..at]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if name.is_empty() {
                    continue;
                }
                assert!(
                    text.contains(&format!("\n{name}{{")) || text.contains(&format!("\n{name} ")),
                    "dashboard queries {name}, which /metrics does not export"
                );
            }
        }
    }
}
