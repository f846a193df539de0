//! `write` (send one write through Nango, at most once unless safe to repeat) and `writes` (list
//! them; `writes resolve` decides an unknown one).

use crate::core::clock::SystemClock;
use crate::core::writes::follow::read_back;
use crate::core::writes::request::{Operation, WriteRequest};
use crate::core::writes::resolve::resolve_unknown;
use crate::core::writes::state::{Resolution, WriteState};
use crate::core::writes::stored::StoredWrite;
use crate::core::writes::take::{take_until_ended, TakeSettings, Taken};
use crate::ports::{WriteSender, WriteStore};

use super::args::{ResolveArgs, WriteArgs, WritesAction, WritesArgs};
use super::backend::{resolve, worker_parts, DbFile, Resolved};
use super::{report, CliResult};

pub async fn write(args: WriteArgs) -> CliResult {
    let text = if args.request.as_os_str() == "-" {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        std::fs::read(&args.request).map_err(|e| format!("{}: {e}", args.request.display()))?
    };
    let request = WriteRequest::parse(&text)?;
    let resolved = resolve(&args.backend, DbFile::MayCreate).await?;
    let (nango, _) = worker_parts(&resolved).await?;
    let write = send(&resolved.backends.store, &nango, &request).await?;
    read_back_queued(&resolved, &nango, &write).await?;
    finish(args.json, &write)
}

/// Asks Nango to run the record's sync and queues ours that reads a succeeded write back into
/// the copy (`serve` or `work` runs it).
async fn read_back_queued(
    resolved: &Resolved,
    nango: &impl WriteSender,
    write: &StoredWrite,
) -> CliResult {
    let backends = &resolved.backends;
    if read_back(&backends.queue, &backends.store, nango, &SystemClock, write).await? {
        eprintln!(
            "{}: a sync of its record's stream is queued, to read the write back",
            write.request.id
        );
    }
    Ok(())
}

/// Takes `request` until it ends, waiting between attempts as Nango asks.
async fn send(
    store: &impl WriteStore,
    nango: &impl WriteSender,
    request: &WriteRequest,
) -> Result<StoredWrite, Box<dyn std::error::Error>> {
    let settings = TakeSettings::default();
    match take_until_ended(store, nango, &SystemClock, request, settings, None).await? {
        Taken::Ended(write)
        | Taken::EndedBefore(write)
        | Taken::Again { write, .. }
        | Taken::Running(write) => Ok(*write),
        Taken::Busy => Err(format!(
            "write {:?} is being sent by another worker: look again with `nango-sync writes`",
            request.id
        )
        .into()),
        Taken::IdReused(kept) => Err(format!(
            "write id {:?} is kept for a different write (accepted {}): nothing was sent; give this write an id of its own",
            request.id, kept.accepted_at
        )
        .into()),
    }
}

/// Reports how a write ended; an error exit unless it succeeded.
fn finish(json: bool, write: &StoredWrite) -> CliResult {
    report(json, serde_json::json!(write), &line(write));
    match write.position.state {
        WriteState::Succeeded => Ok(()),
        WriteState::Running => {
            eprintln!(
                "{}: Nango took the async action{}; it ends when its async_action webhook reaches `nango-sync serve`, or a reconcile asks Nango for its result: look again with `nango-sync writes`",
                write.request.id,
                write.action_id.as_deref().map(|id| format!(" ({id})")).unwrap_or_default()
            );
            Ok(())
        }
        WriteState::Unknown => Err(format!(
            "write {:?} may or may not have reached the provider and is not safe to repeat: look at the provider, then `nango-sync writes resolve {} --succeeded|--failed|--retry`",
            write.request.id, write.request.id
        )
        .into()),
        state => Err(format!("write {:?} {}", write.request.id, state.as_str()).into()),
    }
}

pub async fn writes(args: WritesArgs) -> CliResult {
    if let Some(WritesAction::Resolve(resolve_args)) = args.action {
        return resolve_write(resolve_args).await;
    }
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let writes = resolved.backends.store.list_writes().await?;
    if writes.is_empty() && !args.json {
        println!("no writes");
    }
    for write in writes {
        report(args.json, serde_json::json!(write), &line(&write));
    }
    Ok(())
}

async fn resolve_write(args: ResolveArgs) -> CliResult {
    let resolution = match (args.succeeded, args.failed) {
        (true, _) => Resolution::Succeeded,
        (_, true) => Resolution::Failed,
        _ => Resolution::Retry,
    };
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let store = &resolved.backends.store;
    if resolution != Resolution::Retry {
        let write = resolve_unknown(store, &SystemClock, &args.id, resolution, false).await?;
        report(args.json, serde_json::json!(write), &line(&write));
        return Ok(());
    }
    // The sender first: a write moved to accepted with nothing to send it would wait for a
    // delivery that may never come.
    let (nango, _) = worker_parts(&resolved).await?;
    let write = resolve_unknown(store, &SystemClock, &args.id, resolution, args.force).await?;
    let write = send(store, &nango, &write.request).await?;
    read_back_queued(&resolved, &nango, &write).await?;
    finish(args.json, &write)
}

/// One write in a line: id, state, attempts, what ran, when, and its outcome (cut short).
fn line(write: &StoredWrite) -> String {
    let ran = match &write.request.run {
        Operation::Tool { name, .. } => format!("tool {name}"),
        Operation::Action { name, .. } => format!("action {name}"),
        Operation::Proxy { method, path, .. } => {
            format!("proxy {} {path}", format!("{method:?}").to_uppercase())
        }
    };
    let outcome: String = write
        .outcome
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    format!(
        "{}  {}  attempts {}  {}  {}|{}  {}  {}",
        write.request.id,
        write.position.state.as_str(),
        write.position.attempts,
        ran,
        write.request.provider_config_key,
        write.request.connection_id,
        write.changed_at,
        outcome
    )
}
