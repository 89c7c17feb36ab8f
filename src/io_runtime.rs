//! One long-lived multi-thread tokio runtime for I/O clients (database pools, storage HTTP
//! client). Pingora builds a runtime per service; a pool made on one runtime breaks when that
//! runtime goes away, so every pool is created and driven here and request filters hop onto it.
//! The one exception is object reads (`proxy::read`): their connection pool (`storage::reader`)
//! is made and used only by the proxy service, whose runtime lives as long as the process, and
//! a hop per body chunk was the largest cost of streaming a large object.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static IO: OnceLock<Runtime> = OnceLock::new();

/// The I/O runtime, built on first use (after any fork).
pub fn runtime() -> &'static Runtime {
    IO.get_or_init(|| {
        Builder::new_multi_thread()
            .thread_name("gateway-io")
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    })
}

/// Run `fut` on the I/O runtime and wait for it from any runtime.
pub async fn run<F, T>(fut: F) -> Result<T, IoTaskFailed>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    runtime().spawn(fut).await.map_err(|_| IoTaskFailed)
}

/// Block the calling (non-async) thread on `fut` using the I/O runtime.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    runtime().block_on(fut)
}

/// The I/O task panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("I/O task failed")]
pub struct IoTaskFailed;
