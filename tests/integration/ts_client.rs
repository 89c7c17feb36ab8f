//! The TypeScript client (`clients/ts`, issue 17 point 5) against the real gateway: Node runs
//! `clients/ts/test/*.test.mjs` on the compiled client, which commits alice's staged uploads
//! through the admin listener, directly and through the dual-write example. Needs Node and `npm ci --prefix clients/ts`
//! (scripts/test.sh runs it); the client is compiled here (`npm run build`).

use crate::harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::local::{Data, Extra, Local};

const SERVICE_TOKEN: &str = "ts-client-service-token-0123456789";

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/ts")
}

fn npm(args: &[&str]) -> Command {
    let mut cmd = Command::new("npm");
    cmd.current_dir(client_dir()).args(args);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_commits_through_the_real_gateway() {
    assert!(
        client_dir().join("node_modules/typescript").is_dir(),
        "run `npm ci --prefix clients/ts` first (scripts/test.sh does)"
    );
    let build = npm(&["run", "build", "--silent"]).output().unwrap();
    assert!(
        build.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );

    let data = Data::create().await;
    data.catalog.upsert_dialog("d1", "alice").await.unwrap();
    for id in ["s1", "s2", "s3", "s4"] {
        data.attachment(id, None, "image/png", b"\x89PNG\r\n\x1a\n")
            .await;
    }
    let env = Local::start(
        data,
        Extra {
            sections: format!("[internal]\nservice_token = \"{SERVICE_TOKEN}\"\n"),
            ..Extra::default()
        },
    )
    .await;

    let out = Command::new("node")
        .current_dir(client_dir())
        .args(["--test", "test/"])
        .env("GATEWAY_ADMIN", &env.gw.admin)
        .env("GATEWAY_SERVICE_TOKEN", SERVICE_TOKEN)
        .env("GATEWAY_STAGED_IDS", "s1,s2,s3,s4")
        .output()
        .expect("node on PATH");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(report.contains("# pass 6"), "{report}");
}
