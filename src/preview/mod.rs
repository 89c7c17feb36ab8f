//! Previews of image attachments (SPEC §12): the pure pipeline that turns an image's bytes
//! into small, metadata-free thumbnails (`render`), the bounded pool of threads it runs on
//! (`pool`), which stored preview answers a request (`negotiate`), and the service that finds
//! or makes an attachment's previews once (`service`), their removal (`sweep`), and
//! making them ahead of time for rows that have none (`backfill`).

pub mod backfill;
pub mod negotiate;
pub mod pool;
pub mod render;
pub mod service;
pub mod sweep;

pub use service::{PreviewError, Previews};
