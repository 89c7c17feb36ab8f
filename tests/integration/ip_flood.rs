//! The pre-authentication per-IP guard through the real gateway (SPEC §8): a flood from
//! thousands of addresses, each under its own limit, never makes the gateway refuse an address
//! that took no part in it. Addresses vary over loopback through a trusted proxy's
//! `X-Forwarded-For`.

use crate::harness;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::local::{Data, Extra, Local, PREFIX};

const ADDRESSES: u32 = 4096;
const PER_ADDRESS: u32 = 6;

async fn status(env: &Local, xff: &str) -> u16 {
    env.client
        .get(env.url(&format!("{PREFIX}/d1/a1")))
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_addresses_never_refuses_a_bystander() {
    let extra = Extra {
        server: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        sections: "[limits]\nuser_per_minute = 600\nip_per_minute = 60\nburst = 10\n".into(),
        ..Extra::default()
    };
    let env = Local::start(Data::create().await, extra).await;
    let started = Instant::now();
    let requests = (0..ADDRESSES * PER_ADDRESS).map(|i| {
        let n = i % ADDRESSES;
        format!("10.{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff)
    });
    let statuses: Vec<u16> = futures_util::stream::iter(requests)
        .map(|xff| {
            let env = &env;
            async move { status(env, &xff).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "flood took {:?}",
        started.elapsed()
    );
    // Every flooding address stayed under its own burst: not one refusal.
    let refused = statuses.iter().filter(|s| **s != 401).count();
    assert_eq!(
        refused, 0,
        "flooding addresses refused under their own limit"
    );
    // A fresh client is admitted (to its token check) ...
    assert_eq!(status(&env, "192.0.2.250").await, 401);
    // ... and the guard still holds an address over its own burst.
    let mut last = 0;
    for _ in 0..11 {
        last = status(&env, "192.0.2.251").await;
    }
    assert_eq!(last, 429);
}
