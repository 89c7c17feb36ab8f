//! attachment-gateway: a Pingora edge gateway that serves private support-chat attachments.
//!
//! The request's path through the gateway reads in the module names: `route` classifies the
//! path, `authn` turns a token into a `Principal`, `catalog` finds the row, `authz` turns
//! (principal, row) into a `Permit`, `http` decides the response policy, `storage` streams the
//! bytes. `proxy` is the table of contents that calls them in order.

pub mod attachment;
pub mod authn;
pub mod authz;
pub mod backfill;
pub mod broadcast;
pub mod catalog;
pub mod cleanup;
pub mod cli;
pub mod commit;
pub mod config;
pub mod demo;
pub mod drain;
pub mod erase;
pub mod error;
pub mod http;
pub mod io_runtime;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod preview;
pub mod proxy;
pub mod route;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod upgrade;
pub mod upload;
