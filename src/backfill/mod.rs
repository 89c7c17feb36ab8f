//! `attachment-gateway backfill` (SPEC §2, §13): one `LINKED` `"ChatAttachment"` row per
//! element of the app's legacy attachment JSON, for the messages written before dual-write.
//! Walks the messages table by key (`catalog::legacy`), converts each page (`convert`, pure)
//! and inserts it in batches.
//!
//! Idempotent: an existing id is left alone (`ON CONFLICT DO NOTHING`), and an element without
//! an id gets one derived from its message and position, so a second run inserts nothing.
//! Resumable: each page is committed on its own; after a crash a new run re-reads from the
//! start inserting nothing twice, or starts past `--after <message id>` (the summary and the
//! progress line carry the last one done).

pub mod convert;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::legacy::LegacySource;
use crate::catalog::CatalogError;
use crate::config::BackfillConfig;

/// How a run goes.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Read and convert everything, count what exists, write nothing.
    pub dry_run: bool,
    /// Start after this message id (a previous run's `last_message_id`).
    pub after: Option<String>,
}

/// The JSON summary: counts of attachments (elements), not of messages, except `messages`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub dry_run: bool,
    pub messages: u64,
    /// Messages in the table when the run began (for the progress bar).
    pub messages_total: u64,
    /// Rows written (with `--dry-run`: that would be written).
    pub inserted: u64,
    /// Elements whose id was in the catalog already.
    pub existing: u64,
    pub skipped: Skipped,
    /// The last message done: `--after` this to resume.
    pub last_message_id: Option<String>,
    pub elapsed_s: f64,
    /// Elements (inserted + existing + skipped) per second.
    pub rows_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Skipped {
    pub total: u64,
    /// Reason (`unsafe_path`, `size_missing`, ...) -> count.
    pub reasons: BTreeMap<&'static str, u64>,
}

impl Summary {
    fn rows(&self) -> u64 {
        self.inserted + self.existing + self.skipped.total
    }

    fn timed(&mut self, elapsed: Duration) {
        self.elapsed_s = elapsed.as_secs_f64();
        self.rows_per_s = if self.elapsed_s > 0.0 {
            (self.rows() as f64 / self.elapsed_s).round()
        } else {
            0.0
        };
    }
}

/// Run the backfill; `progress` sees the summary so far after every page.
pub async fn run(
    source: &dyn LegacySource,
    cfg: &BackfillConfig,
    options: &Options,
    progress: &mut (dyn FnMut(&Summary) + Send),
) -> Result<Summary, CatalogError> {
    let started = Instant::now();
    let mut summary = Summary {
        dry_run: options.dry_run,
        messages_total: source.count_messages().await?,
        last_message_id: options.after.clone(),
        ..Summary::default()
    };
    loop {
        let page = source
            .page(summary.last_message_id.as_deref(), cfg.batch_size)
            .await?;
        let Some(last) = page.last() else { break };
        let last = last.id.clone();
        let mut rows = Vec::new();
        for message in &page {
            let converted = convert::convert(message, &cfg.fields);
            for skip in converted.skips {
                // Ids and reasons only: a path or a name may be personal data.
                tracing::warn!(
                    message_id = %skip.message_id,
                    position = ?skip.position,
                    reason = skip.reason.as_str(),
                    "backfill skipped an attachment"
                );
                summary.skipped.total += 1;
                *summary
                    .skipped
                    .reasons
                    .entry(skip.reason.as_str())
                    .or_default() += 1;
            }
            rows.extend(converted.rows);
        }
        let inserted = if options.dry_run {
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            rows.len() as u64 - source.count_existing(&ids).await?.min(rows.len() as u64)
        } else {
            source.insert_linked(&rows).await?
        };
        summary.inserted += inserted;
        summary.existing += rows.len() as u64 - inserted;
        summary.messages += page.len() as u64;
        summary.last_message_id = Some(last);
        summary.timed(started.elapsed());
        progress(&summary);
        if page.len() < cfg.batch_size as usize {
            break;
        }
    }
    summary.timed(started.elapsed());
    Ok(summary)
}

/// One line of a terminal progress bar (`\r`-rewritten by the caller).
pub fn progress_line(s: &Summary) -> String {
    const WIDTH: u64 = 30;
    // An empty table is all done.
    let done_of = |scale: u64| {
        (s.messages.min(s.messages_total) * scale)
            .checked_div(s.messages_total)
            .unwrap_or(scale)
    };
    let (done, percent) = (done_of(WIDTH), done_of(100));
    format!(
        "[{}{}] {percent:>3}% {}/{} messages | {} inserted, {} existing, {} skipped | {} rows/s",
        "#".repeat(done as usize),
        ".".repeat((WIDTH - done) as usize),
        s.messages,
        s.messages_total,
        s.inserted,
        s.existing,
        s.skipped.total,
        s.rows_per_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_fills_with_the_messages_done() {
        let s = Summary {
            messages: 50,
            messages_total: 200,
            inserted: 70,
            rows_per_s: 1000.0,
            ..Summary::default()
        };
        let line = progress_line(&s);
        assert!(
            line.starts_with("[#######......................."),
            "{line}"
        );
        assert!(
            line.contains(" 25% 50/200 messages | 70 inserted"),
            "{line}"
        );
    }
}
