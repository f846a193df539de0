//! Streams: their status, a sync or a reset now, a reconcile now, held sweeps, forgotten
//! connections.

use std::collections::BTreeMap;

use super::args::{ForgetArgs, ReconcileArgs, ResetArgs, StatusArgs, SweepArgs, SyncArgs};
use super::backend::{resolve, worker_parts};
use super::{parse_stream, report, CliResult};
use crate::core::job::{enqueue_syncs, now_rfc3339, SyncRequest, Trigger};
use crate::core::reconcile::{decide_held, HoldDecision};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::local::ops;
use crate::ports::{RecordStore, StateStore, StreamDiscovery, StreamStatus};

pub async fn status(args: StatusArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let streams = store.list_streams().await?;
    // Nango's own counts, when its key is at hand.
    let nango_counts: Option<BTreeMap<StreamKey, Option<u64>>> = match worker_parts(&resolved).await
    {
        Ok((client, _)) => match client.discover().await {
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
        },
        Err(_) => None,
    };
    let mut rows = Vec::new();
    for (stream, s) in &streams {
        let live = store.count_live(stream).await?;
        let nango = nango_counts
            .as_ref()
            .and_then(|m| m.get(stream).copied().flatten());
        rows.push((stream, s, live, nango));
    }
    if args.json {
        for (stream, s, live, nango) in &rows {
            let line = serde_json::json!({"stream": stream, "status": s.status(), "records": live, "nango_record_count": nango, "state": s});
            println!("{line}");
        }
        return Ok(());
    }
    println!(
        "{:<40} {:<18} {:>8} {:>8} {:<24} {:<20} NOTE",
        "STREAM", "STATUS", "RECORDS", "NANGO", "LAST SYNC", "CURSOR"
    );
    for (stream, s, live, nango) in &rows {
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
        streams.len(),
        if nango_counts.is_none() {
            "; set NANGO_API_KEY to compare with Nango's counts"
        } else {
            ""
        }
    );
    Ok(())
}

/// What the status table says beside a stream: why it is held, purged or in error.
fn status_note(stream: &StreamKey, s: &crate::ports::StreamState) -> String {
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
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let requests: Vec<SyncRequest> = match &args.stream {
        Some(text) => {
            let stream = parse_stream(text)?;
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
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let stream = parse_stream(&args.stream)?;
    let Some(current) = store.get_stream(&stream).await? else {
        return Err(format!(
            "no stream {} in the store (see `nango-sync status`)",
            stream.encode()
        )
        .into());
    };
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
    let resolved = resolve(&args.backend).await?;
    let at = ops::reconcile_now(&resolved.backends.queue).await?;
    report(
        args.json,
        serde_json::json!({"reconcile_enqueued_at": at}),
        &format!("reconcile enqueued ({at}); the worker (nango-sync serve or work) runs it"),
    );
    Ok(())
}

pub async fn sweep(args: SweepArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let stream = parse_stream(&args.stream)?;
    let decision = if args.confirm {
        HoldDecision::Confirm
    } else {
        HoldDecision::Discard
    };
    let result = decide_held(store, store, &stream, decision).await?;
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
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let connection = ConnectionKey::decode(&args.connection).map_err(|e| {
        format!(
            "--connection {:?}: {e}; write it as providerConfigKey|connectionId",
            args.connection
        )
    })?;
    let streams = ops::forget_connection(store, store, &connection, args.purge).await?;
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
