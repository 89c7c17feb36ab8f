//! Staged uploads apart from the connection: what a request's head must say (`policy`), what
//! its leading bytes must look like (`sniff`), whether it fits the user's staged quota
//! (`quota`), and how its body is stored and its row inserted (`store`). The handlers that drive a Pingora session are in `proxy::upload`.

pub mod policy;
pub mod quota;
pub mod sniff;
pub mod store;
