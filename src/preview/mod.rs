//! Previews of image attachments, and of PDFs and videos through a confined tool (`frame`)
//! (SPEC §12): the pure pipeline that turns an untrusted source
//! into small, metadata-free variants (`render` and its parts, no I/O), the bounded pool of
//! threads it runs on (`pool`), which stored preview answers a request (`negotiate`), the
//! service that finds or makes an attachment's previews once (`service`), their removal
//! (`sweep`), and making them ahead of time for rows that have none (`backfill`).

pub mod backfill;
mod colour;
mod decode;
mod encode;
pub mod frame;
pub mod negotiate;
mod placeholder;
pub mod pool;
pub mod render;
mod resize;
#[cfg(test)]
mod samples;
pub mod service;
mod sniff;
pub mod sweep;

pub use service::{PreviewError, Previews};
