//! Pure HTTP response policy: ranges, conditionals, `Content-Disposition`, media types,
//! validators.
//! No I/O and no clock reads here; everything is a function of its arguments.

pub mod conditional;
pub mod disposition;
pub mod headers;
pub mod media;
pub mod origin;
pub mod range;

/// `[http]` as validated by `config`: what the response headers say. Defined here, below
/// `config`, so that the pure policy never depends on the configuration loader.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub cache_max_age_s: u64,
    /// Full reads above this are refused; ranges keep working.
    pub max_object_bytes: u64,
    /// MIME types (or `type/*` wildcards) shown inline.
    pub inline_types: Vec<String>,
    pub cross_origin_resource_policy: String,
    /// Origins whose pages may make cookie-authenticated writes (normalized by
    /// `origin::normalize`); empty: the request's own scheme and `Host`.
    pub allowed_origins: Vec<String>,
}
