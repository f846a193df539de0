//! Streams: their status, a sync or a reset now, a reconcile now, held sweeps, forgotten
//! connections.

use std::collections::BTreeMap;

use super::args::{ForgetArgs, ReconcileArgs, ResetArgs, StatusArgs, SweepArgs, SyncArgs};
use super::backend::{resolve, worker_parts, DbFile, Resolved};
use super::{confirm, report, CliResult, NeedsOperator};
use crate::config::WorkerBehaviour;
use crate::core::clock::SystemClock;
use crate::core::connection::forget_connection;
use crate::core::drift::{decide_held, HoldDecision};
use crate::core::job::{now_rfc3339, Trigger};
use crate::core::reconcile::{enqueue_syncs, SyncRequest};
use crate::core::state::StreamStatus;
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::write::DeleteMode;
use crate::local::ops;
use crate::ports::{RecordStore, StateStore, StreamDiscovery};

pub async fn status(args: StatusArgs) -> CliResult {
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let store = &resolved.backends.store;
    let streams = store.list_streams().await?;
    // Not for --check, which a cron job runs often and which should not spend the account's
    // rate limit (discovery asks Nango once per connection).
    let nango_counts = if args.check {
        None
    } else {
        nango_counts(&resolved).await
    };
    let mut rows = Vec::new();
    for (stream, s) in &streams {
        let live = store.count_live(stream).await?;
        let nango = nango_counts
            .as_ref()
            .and_then(|m| m.get(stream).copied().flatten());
        rows.push((stream, s, live, nango));
    }
    let dead_letters = match &resolved.backends.dead_letters {
        Some(queue) => Some(queue.depth().await?),
        None => None,
    };
    if args.json {
        for (stream, s, live, nango) in &rows {
            let line = serde_json::json!({"stream": stream, "status": s.status(), "records": live, "nango_record_count": nango, "state": s});
            println!("{line}");
        }
    } else {
        print_status_table(&rows, nango_counts.is_some());
    }
    match dead_letters {
        Some(0) | None => {}
        Some(n) => eprintln!("the dead-letter queue holds {n} job(s): see the README's \"Replaying the dead-letter queue\""),
    }
    if args.check {
        check(&rows, dead_letters.unwrap_or(0))?;
    }
    Ok(())
}

/// `status --check`'s exit codes, combined as flags.
const STREAMS_NEED_AN_OPERATOR: u8 = 8;
const DEAD_LETTERS_WAIT: u8 = 16;

/// Nango's own count of each stream it lists, when its key is at hand.
async fn nango_counts(resolved: &Resolved) -> Option<BTreeMap<StreamKey, Option<u64>>> {
    let (client, _) = worker_parts(resolved).await.ok()?;
    match client.discover().await {
        Ok(found) => Some(
            found
                .into_iter()
                .map(|d| (d.stream, d.sync.record_count))
                .collect(),
        ),
        Err(e) => {
            eprintln!("warning: Nango's counts unavailable: {e}");
            None
        }
    }
}

type StatusRow<'a> = (
    &'a StreamKey,
    &'a crate::core::state::StreamState,
    u64,
    Option<u64>,
);

/// `status --check`: 8 when a stream needs an operator (in error, held, nango_purged), 16 when
/// the dead-letter queue holds jobs, 24 for both: flags, clear of clap's 2 for a wrong command
/// line and of 1 for a command that failed.
fn check(rows: &[StatusRow<'_>], dead_letters: u64) -> CliResult {
    let attention: Vec<String> = rows
        .iter()
        .filter(|(_, s, ..)| {
            matches!(
                s.status(),
                StreamStatus::Error | StreamStatus::Held | StreamStatus::NangoPurged
            )
        })
        .map(|(stream, s, ..)| format!("{} ({})", stream.encode(), s.status().as_str()))
        .collect();
    let code = if attention.is_empty() {
        0
    } else {
        STREAMS_NEED_AN_OPERATOR
    } | if dead_letters > 0 {
        DEAD_LETTERS_WAIT
    } else {
        0
    };
    if code == 0 {
        return Ok(());
    }
    let mut summary = Vec::new();
    if !attention.is_empty() {
        summary.push(format!(
            "{} stream(s) need an operator: {}",
            attention.len(),
            attention.join(", ")
        ));
    }
    if dead_letters > 0 {
        summary.push(format!("the dead-letter queue holds {dead_letters} job(s)"));
    }
    Err(NeedsOperator {
        code,
        summary: format!("check: {}", summary.join("; ")),
    }
    .into())
}

fn print_status_table(rows: &[StatusRow<'_>], with_nango: bool) {
    println!(
        "{:<40} {:<18} {:>8} {:>8} {:<24} {:<20} NOTE",
        "STREAM", "STATUS", "RECORDS", "NANGO", "LAST SYNC", "CURSOR"
    );
    for (stream, s, live, nango) in rows {
        let status = s.status();
        let cursor = s.cursor.as_deref().map_or("-".to_owned(), |c| {
            if c.len() > 18 {
                format!("{}…", &c[..17])
            } else {
                c.to_owned()
            }
        });
        println!(
            "{:<40} {:<18} {:>8} {:>8} {:<24} {:<20} {}",
            stream.encode(),
            status.as_str(),
            live,
            nango.map_or("-".to_owned(), |n| n.to_string()),
            s.last_sync_at.as_deref().unwrap_or("-"),
            cursor,
            status_note(stream, s)
        );
    }
    eprintln!(
        "{} stream(s){}",
        rows.len(),
        if with_nango {
            ""
        } else {
            "; set NANGO_API_KEY (or give --stack) to compare with Nango's counts"
        }
    );
}

/// What the status table says beside a stream: why it is held, purged or in error.
fn status_note(stream: &StreamKey, s: &crate::core::state::StreamState) -> String {
    match s.status() {
        StreamStatus::Held => {
            let h = s.held.as_ref().expect("a held stream has its hold");
            format!(
                "would delete {} of {} (Nango counts {}, last success {}): nango-sync sweep --stream '{}' --confirm | --discard",
                h.would_delete,
                h.live_count,
                h.nango_count,
                h.last_success_at.as_deref().unwrap_or("unknown"),
                stream.encode()
            )
        }
        StreamStatus::NangoPurged => s
            .nango
            .purged
            .as_ref()
            .map(|p| format!("copy kept: {}", p.reason))
            .unwrap_or_default(),
        StreamStatus::ConnectionDeleted => format!(
            "connection deleted at {}; no longer synced",
            s.connection_deleted_at.as_deref().unwrap_or("?")
        ),
        StreamStatus::Error | StreamStatus::Ok => s.error.clone().unwrap_or_default(),
    }
}

pub async fn sync_now(args: SyncArgs) -> CliResult {
    let selected = args.stream.selected()?;
    if selected.is_none() && !args.all {
        return Err(
            "name the stream (--stream, or --integration, --connection and --model), or give --all"
                .into(),
        );
    }
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let store = &resolved.backends.store;
    let requests: Vec<SyncRequest> = match selected {
        Some(stream) => {
            let name = store
                .get_stream(&stream)
                .await?
                .and_then(|s| s.sync_name)
                .unwrap_or_default();
            vec![SyncRequest::new(stream, name)]
        }
        None => store
            .list_streams()
            .await?
            .into_iter()
            .map(|(stream, s)| SyncRequest::new(stream, s.sync_name.unwrap_or_default()))
            .collect(),
    };
    let count = enqueue_syncs(
        &resolved.backends.queue,
        requests,
        Trigger::Manual,
        &now_rfc3339(),
        &SystemClock,
    )
    .await?;
    report(
        args.json,
        serde_json::json!({"enqueued": count}),
        &format!("{count} sync job(s) enqueued"),
    );
    Ok(())
}

pub async fn reset(args: ResetArgs) -> CliResult {
    let stream = args.stream.required()?;
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let store = &resolved.backends.store;
    let Some(current) = store.get_stream(&stream).await? else {
        return Err(format!(
            "no stream {} in the store (see `nango-sync status`)",
            stream.encode()
        )
        .into());
    };
    confirm(
        args.yes,
        &format!(
            "reset clears the cursor of {} in {}: its next sync re-reads the whole stream from Nango",
            stream.encode(),
            resolved.store_target
        ),
    )?;
    store.reset_cursor(&stream).await?;
    if args.sync {
        let request = SyncRequest::new(
            stream.clone(),
            current.sync_name.clone().unwrap_or_default(),
        );
        enqueue_syncs(
            &resolved.backends.queue,
            vec![request],
            Trigger::Manual,
            &now_rfc3339(),
            &SystemClock,
        )
        .await?;
    }
    report(
        args.json,
        serde_json::json!({"stream": stream, "previous_cursor": current.cursor, "sync_enqueued": args.sync}),
        &format!(
            "cursor of {} cleared (was {}){}",
            stream.encode(),
            current.cursor.as_deref().unwrap_or("unset"),
            if args.sync { "; sync enqueued" } else { "" }
        ),
    );
    Ok(())
}

pub async fn reconcile(args: ReconcileArgs) -> CliResult {
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let at = ops::reconcile_now(&resolved.backends.queue).await?;
    report(
        args.json,
        serde_json::json!({"reconcile_enqueued_at": at}),
        &format!("reconcile enqueued ({at}); the worker (nango-sync serve or work) runs it"),
    );
    Ok(())
}

pub async fn sweep(args: SweepArgs) -> CliResult {
    let stream = args.stream.required()?;
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let store = &resolved.backends.store;
    let decision = if args.confirm {
        // Nothing held: the decision below refuses, saying why, with nothing to ask.
        if let Some(h) = store.get_stream(&stream).await?.and_then(|s| s.held) {
            let hard = resolved.vars.read::<WorkerBehaviour>()?.delete_mode == DeleteMode::Hard;
            confirm(
                args.yes,
                &format!(
                    "sweep --confirm {} {} of the {} live records of {} in {} (Nango counts {})",
                    if hard { "removes" } else { "marks deleted" },
                    h.would_delete,
                    h.live_count,
                    stream.encode(),
                    resolved.store_target,
                    h.nango_count
                ),
            )?;
        }
        HoldDecision::Confirm
    } else {
        HoldDecision::Discard
    };
    let result = decide_held(store, store, &stream, decision, &SystemClock).await?;
    let human = match decision {
        HoldDecision::Confirm => format!(
            "{}: {} record(s) marked deleted, {} live",
            stream.encode(),
            result.tombstoned,
            result.live_count
        ),
        HoldDecision::Discard => format!(
            "{}: held sweep dropped; the copy is kept ({} live)",
            stream.encode(),
            result.live_count
        ),
    };
    report(
        args.json,
        serde_json::json!({"stream": stream, "sweep": result}),
        &human,
    );
    Ok(())
}

pub async fn forget(args: ForgetArgs) -> CliResult {
    let connection = match &args.integration {
        Some(integration) => ConnectionKey {
            provider_config_key: integration.clone(),
            connection_id: args.connection.clone(),
        },
        None => ConnectionKey::decode(&args.connection).map_err(|e| {
            format!(
                "--connection {:?}: {e}; write it as 'providerConfigKey|connectionId', or give --integration",
                args.connection
            )
        })?,
    };
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let store = &resolved.backends.store;
    if args.purge {
        confirm(
            args.yes,
            &format!(
                "forget --purge removes every record of {}'s streams from {}",
                connection.encode(),
                resolved.store_target
            ),
        )?;
    }
    let streams = forget_connection(store, store, &connection, args.purge, &SystemClock).await?;
    let changed: u64 = streams.iter().map(|(_, n)| n).sum();
    let verb = if args.purge {
        "removed"
    } else {
        "marked deleted"
    };
    report(
        args.json,
        serde_json::json!({"connection": connection.encode(), "purge": args.purge,
            "streams": streams.iter().map(|(s, n)| serde_json::json!({"stream": s, "records": n})).collect::<Vec<_>>()}),
        &format!(
            "{}: {} stream(s) no longer synced, {changed} record(s) {verb}",
            connection.encode(),
            streams.len()
        ),
    );
    Ok(())
}
