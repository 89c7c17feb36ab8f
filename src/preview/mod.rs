//! Previews of image attachments: `render` turns an untrusted source into the variants; no I/O.

mod colour;
mod decode;
mod encode;
mod placeholder;
pub mod render;
mod resize;
#[cfg(test)]
mod samples;
mod sniff;
