//! Pure HTTP response policy: ranges, conditionals, `Content-Disposition`, validators.
//! No I/O and no clock reads here; everything is a function of its arguments.

pub mod conditional;
pub mod disposition;
pub mod headers;
pub mod range;
