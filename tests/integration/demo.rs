//! `attachment-gateway demo` as a newcomer runs it: every printed curl line, replayed, gets
//! the status its comment promises.

use crate::harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::free_port;

/// Split a printed shell command into words (single quotes only, as the demo prints them).
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// One printed request: the status its comment promises, its headers and its URL.
type Printed = (u16, Vec<(String, String)>, String);

/// Each `# ... (NNN)` comment and the curl line below it.
fn requests(guide: &str) -> Vec<Printed> {
    let lines: Vec<&str> = guide.lines().collect();
    let mut out = Vec::new();
    for pair in lines.windows(2) {
        let (comment, cmd) = (pair[0], pair[1]);
        let Some(status) = comment
            .strip_prefix("# ")
            .and_then(|c| c.rsplit_once('('))
            .and_then(|(_, s)| s.strip_suffix(')'))
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        assert!(
            cmd.starts_with("curl "),
            "a complete curl command follows: {cmd}"
        );
        let w = words(cmd);
        let headers = w
            .windows(2)
            .filter(|p| p[0] == "-H")
            .map(|p| {
                let (k, v) = p[1].split_once(": ").unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        out.push((status, headers, w.last().unwrap().clone()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printed_request_answers_as_promised() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin, app) = (free_port(), free_port(), free_port());
    let out_path = dir.path().join("guide.txt");
    let mut child = Command::new(harness::binary())
        .current_dir(dir.path())
        .args(["demo", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(["--app-listen", &format!("127.0.0.1:{app}")])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    // Seeding makes the previews of 100 screenshots first: slow in a debug build.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{admin}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "demo did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let guide = std::fs::read_to_string(&out_path).unwrap();
    let requests = requests(&guide);
    assert!(
        requests.len() >= 7,
        "the guide lists the requests:\n{guide}"
    );
    for expected in [200, 404, 206, 304, 401] {
        assert!(
            requests.iter().any(|(s, _, _)| *s == expected),
            "no ({expected}) line"
        );
    }
    for (status, headers, url) in &requests {
        assert!(
            url.starts_with(&format!("http://127.0.0.1:{listen}/")),
            "{url}"
        );
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), *status, "{url} with {headers:?}");
    }
    // The browser route: the guide's first line is the chat page, served through the gateway.
    let page = format!("http://127.0.0.1:{listen}/");
    assert!(
        guide.contains(&format!("open {page} in a browser")),
        "{guide}"
    );
    let resp = client.get(&page).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // Choosing who you are sets a session cookie the gateway accepts.
    let resp = client
        .post(format!("{page}demo/session"))
        .body(r#"{"as":"alice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, _, png_url) = &requests[0];
    let resp = client
        .get(png_url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    // Read with the cookie, a file is revalidated on every use (a shared browser).
    assert_eq!(resp.headers()["cache-control"], "private, no-cache");
    let _ = child.kill();
    let _ = child.wait();
}
