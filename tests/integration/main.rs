//! Every integration test of the gateway, in one test binary.
//!
//! One binary, not one per file: each test binary links Pingora, sqlx, the image codecs and the
//! gateway itself, so thirty-odd of them cost minutes of linking and gigabytes of disk for no
//! isolation gained (`cargo nextest` runs every test in its own process anyway). A module per
//! area; run one with `cargo nextest run --test integration uploads::`.

mod harness;

mod app_bounds;
mod architecture;
mod backend_faults;
mod backfill;
mod browser;
mod catalog;
mod cleanup_dialogs;
mod cross_site;
mod deletes;
mod demo;
mod denial_vs_miss;
mod gateway_read;
mod ip_flood;
mod limits;
mod limits_chat;
mod media_previews;
mod observability;
mod offload;
mod parser_properties;
mod previews;
mod prisma;
mod read_policy;
mod redis_cluster;
mod redis_tls;
mod request_targets;
mod schema;
mod sigv4_vectors;
mod soak;
mod storage_providers;
mod stream_memory;
mod tls;
mod ts_client;
mod upload_quota;
mod uploads;
