//! The default limits fit a chat (SPEC §8), through the real gateway with no quota keys set:
//! one user behind one address opens a dialog of 100 attachments at once and then scrubs
//! through a video (40 ranges within 5 s) without a single `429`, in-process and through
//! Redis; a client reading 3,000 times a minute is still refused, per user across two
//! instances sharing Redis, and per address when it spreads its reads over many users.

use crate::harness;

use std::time::{Duration, Instant};

use attachment_gateway::limits::keys;
use harness::local::{Data, Extra, Local, PREFIX};
use harness::redis::RedisServer;
use harness::token;

const PAGE: usize = 100;
const VIDEO_BYTES: usize = 4 * 1024 * 1024;
const SEEKS: usize = 40;

async fn chat_data() -> Data {
    let data = Data::create().await;
    let picture = vec![0x5a_u8; 2048];
    for i in 0..PAGE {
        data.attachment(&format!("shot{i}"), Some("dlg"), "image/png", &picture)
            .await;
    }
    let video: Vec<u8> = (0..VIDEO_BYTES).map(|i| (i % 251) as u8).collect();
    data.attachment("video", Some("dlg"), "video/mp4", &video)
        .await;
    data
}

/// A user id no other test (or earlier run against the same Redis) has used.
fn fresh_user(tag: &str) -> String {
    format!("{tag}{}", uuid_like())
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The page (100 previews at once), then 40 seeks within 5 s: every status.
async fn open_dialog_and_scrub(gw: &Local, user: &str) -> Vec<u16> {
    // The dialog's owner in the catalog is alice; this user is an admin, so every read is
    // authorized and the only thing that could refuse one is a limit.
    let bearer = format!("Bearer {}", token(user, "ADMIN", &[]));
    let page = (0..PAGE).map(|i| {
        let req = gw
            .client
            .get(gw.url(&format!("{PREFIX}/dlg/shot{i}")))
            .header("authorization", &bearer);
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let mut statuses = futures_util::future::join_all(page).await;
    let started = Instant::now();
    for i in 0..SEEKS {
        // A player's seeks: ranges spread over the file, a few at once like Chromium's.
        let from = (i * 7919 * 1024) % (VIDEO_BYTES - 65536);
        let resp = gw
            .client
            .get(gw.url(&format!("{PREFIX}/dlg/video")))
            .header("authorization", &bearer)
            .header("range", format!("bytes={from}-{}", from + 65535))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        // On a schedule (one seek every 100 ms from the start), not 100 ms after each answer:
        // a slow answer on a busy machine must not stretch the scrub past its 5 s.
        let next = started + Duration::from_millis(100 * (i as u64 + 1));
        tokio::time::sleep_until(next.into()).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "40 seeks within 5 s"
    );
    statuses
}

fn assert_page_served(statuses: &[u16]) {
    assert_eq!(statuses.len(), PAGE + SEEKS);
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        refused, 0,
        "no 429 for a person reading a dialog: {statuses:?}"
    );
    assert!(statuses[..PAGE].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[PAGE..].iter().all(|s| *s == 206), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dialog_page_and_a_scrubbed_video_fit_the_default_limits_in_process() {
    let gw = Local::start(
        chat_data().await,
        Extra {
            // No quota key at all: the defaults are under test.
            sections: "[limits]\n".into(),
            ..Default::default()
        },
    )
    .await;
    let statuses = open_dialog_and_scrub(&gw, &fresh_user("reader")).await;
    assert_page_served(&statuses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dialog_page_and_a_scrubbed_video_fit_the_default_limits_through_redis() {
    let redis = RedisServer::start().await;
    let gw = Local::start(
        chat_data().await,
        Extra {
            sections: format!("[limits]\nredis_url = \"{}\"\n", redis.url()),
            ..Default::default()
        },
    )
    .await;
    let statuses = open_dialog_and_scrub(&gw, &fresh_user("reader")).await;
    assert_page_served(&statuses);
    // The decisions were Redis's, not a silent in-process fallback.
    assert!(
        redis
            .exists(&keys::ip_rate(Some("127.0.0.1".parse().unwrap())))
            .await
    );
}

/// `rate_limited_total{scope}` of one instance.
async fn limited(gw: &harness::Gateway, scope: &str) -> u64 {
    gw.counter(&format!("rate_limited_total{{scope=\"{scope}\"}}"))
        .await
        .unwrap_or(0)
}

/// Reads at 3,000 a minute (one every 20 ms) for at most `window`, alternating between the
/// instances; `user_of(i)` picks the caller of the i-th read. Returns (reads, first 429 at).
async fn scrape(
    instances: &[&harness::Gateway],
    window: Duration,
    user_of: impl Fn(usize) -> String,
) -> (usize, Option<usize>) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < window {
        let gw = instances[i % instances.len()];
        let bearer = format!("Bearer {}", token(&user_of(i), "ADMIN", &[]));
        let status = client
            .get(gw.url(&format!("{PREFIX}/dlg/shot{}", i % PAGE)))
            .header("authorization", bearer)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 429 {
            return (i + 1, Some(i));
        }
        assert_eq!(status, 200, "read {i}");
        i += 1;
        let next = started + Duration::from_millis(20 * i as u64);
        tokio::time::sleep_until(next.into()).await;
    }
    (i, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scraper_is_limited_per_user_across_instances() {
    let redis = RedisServer::start().await;
    let a = Local::start(
        chat_data().await,
        Extra {
            sections: format!("[limits]\nredis_url = \"{}\"\n", redis.url()),
            ..Default::default()
        },
    )
    .await;
    let b = a.twin().await;
    let user = fresh_user("scraper");
    // Each instance alone sees 1,500 a minute: within its burst for 13 s if it counted alone.
    // Shared, the user's burst of 200 drains at 40 a second and runs out after about 5 s.
    let (reads, refused_at) = scrape(&[&a.gw, &b], Duration::from_secs(10), |_| user.clone()).await;
    let refused_at = refused_at.unwrap_or_else(|| panic!("{reads} reads in 10 s, none refused"));
    assert!(
        refused_at >= 200,
        "the burst is served first: refused at {refused_at}"
    );
    assert_eq!(limited(&a.gw, "ip").await + limited(&b, "ip").await, 0);
    assert_eq!(limited(&a.gw, "user").await + limited(&b, "user").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scraper_is_limited_per_address_whatever_the_users() {
    let redis = RedisServer::start().await;
    let gw = Local::start(
        chat_data().await,
        Extra {
            sections: format!("[limits]\nredis_url = \"{}\"\n", redis.url()),
            ..Default::default()
        },
    )
    .await;
    let run = uuid_like();
    // A new user for every read: no user limit can trip, only the address's.
    let (reads, refused_at) = scrape(&[&gw.gw], Duration::from_secs(12), |i| {
        format!("u{run}x{i}")
    })
    .await;
    let refused_at = refused_at.unwrap_or_else(|| panic!("{reads} reads in 12 s, none refused"));
    assert!(refused_at >= 200, "refused at {refused_at}");
    assert_eq!(limited(&gw.gw, "user").await, 0);
    assert_eq!(limited(&gw.gw, "ip").await, 1);
}
