//! The floor under the gateway in the load test (`benches/load/run.py`, target `floor`):
//! Pingora itself with none of the gateway's work, on the same core and build settings. A
//! request with `If-None-Match` is answered `304` at once (what the gateway's `304` costs at
//! least, with no token, limit, lookup or log); every other request is proxied to the origin
//! by Pingora's own proxy (what a proxy on this framework costs at least). It tells which
//! part of a gap to nginx is the gateway's and which is the framework's.
//!
//! Usage: `load_floor <listen addr> <origin addr>`; one worker thread, like the bench's gateway.

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};

struct Floor {
    origin: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        let Some(tag) = session.req_header().headers.get("if-none-match").cloned() else {
            return Ok(false);
        };
        let mut resp = ResponseHeader::build(304, Some(2))?;
        resp.insert_header("etag", tag)?;
        resp.insert_header("cache-control", "private, max-age=300")?;
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.origin.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(origin)) = (args.next(), args.next()) else {
        eprintln!("usage: load_floor <listen addr> <origin addr>");
        std::process::exit(2);
    };
    let mut server = Server::new(None).expect("a server");
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Floor { origin });
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever();
}
