//! What `demo` prints: the page to open and what to try there, then requests to paste, each
//! with the status it answers (`tests/integration/demo.rs` replays every one of them).

use super::people::{self, OWNER, PEOPLE};
use super::seed::{self, DIALOG, GALLERY, GALLERY_SIZE, PNG};
use crate::config::Config;
use crate::http::conditional;

pub fn print(cfg: &Config) -> anyhow::Result<()> {
    let site = format!("http://{}", cfg.server.listen);
    println!("\nattachment-gateway demo: open {site}/ in a browser\n");
    println!("  The page is a small support chat served by the app behind the gateway; every");
    println!("  file on it goes through the gateway. Choose who you are at the top:");
    for p in &PEOPLE {
        println!("    - {}: sees {}", p.name, p.sees);
    }
    println!(
        "  Then try: the gallery dialog ({GALLERY_SIZE} screenshots as previews, all at once);"
    );
    println!("  click a picture for the full file; open the PDF; play and seek the video (its");
    println!("  index is at the end of the file: watch the 206s); upload a file, see its preview,");
    println!("  send it, and switch to Carol (staff) to see it there; switch to Bob: nothing.");
    println!("  Metrics: http://{}/metrics\n", cfg.server.admin_listen);
    println!("Or with curl (tokens valid for 24 hours):\n");
    for (what, cmd) in requests(cfg, &site)? {
        println!("# {what}\n{cmd}\n");
    }
    Ok(())
}

fn requests(cfg: &Config, site: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let base = format!("{site}/api/support-chat/attachments");
    let who = |id: &str| {
        let person = people::find(id).expect("a demo person");
        people::token_for(cfg, person).map(|t| format!("-H 'Authorization: Bearer {t}'"))
    };
    let (owner, stranger, staff, admin) = (who(OWNER)?, who("bob")?, who("carol")?, who("dave")?);
    let png = format!("{base}/{DIALOG}/att_png");
    let etag =
        conditional::strong_etag("att_png", PNG.len() as u64, seed::seeded_at(), "image/png");
    Ok(vec![
        (
            "owner reads the screenshot (200)",
            format!("curl -sS -o /dev/null -D - {owner} {png}"),
        ),
        (
            "its small preview, WebP when accepted (200)",
            format!(
                "curl -sS -o /dev/null -D - -H 'Accept: image/webp' {owner} {png}?variant=thumb"
            ),
        ),
        (
            "another user gets the same answer as a missing file (404)",
            format!("curl -sS -i {stranger} {png}"),
        ),
        (
            "staff with the permission (200)",
            format!("curl -sS -o /dev/null -D - {staff} {base}/{DIALOG}/att_pdf"),
        ),
        (
            "admin (200)",
            format!("curl -sS -o /dev/null -D - {admin} {base}/{DIALOG}/att_large"),
        ),
        (
            "a byte range of the large file (206)",
            format!(
                "curl -sS -o /dev/null -D - -H 'Range: bytes=0-1023' {owner} {base}/{DIALOG}/att_large"
            ),
        ),
        (
            "revalidation from the catalog alone (304)",
            format!("curl -sS -o /dev/null -D - -H 'If-None-Match: {etag}' {owner} {png}"),
        ),
        ("no token (401)", format!("curl -sS -i {png}")),
        (
            "the uploader previews a staged file (200)",
            format!("curl -sS -o /dev/null -D - {owner} {base}/staged/att_staged"),
        ),
        (
            "a screenshot of the gallery dialog (200)",
            format!("curl -sS -o /dev/null -D - {owner} {base}/{GALLERY}/att_shot_000"),
        ),
    ])
}
