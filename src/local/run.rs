//! One process with the whole pipeline: the webhook endpoint on localhost (the Lambda's handler),
//! the queue, the worker loop (the Lambda's handler again) and the store. `nango-sync serve` and
//! `nango-sync demo` run it. Stopping it lets the batch in hand finish; whatever is still queued
//! stays queued (the embedded queue is in the SQLite file), so a restart resumes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::adapters::nango::NangoClient;
use crate::core::rotation::RotatingSecret;
use crate::core::signature::Verifier;
use crate::core::webhook::WebhookApp;
use crate::core::worker::{WorkerApp, WorkerSettings};
use crate::local::backend::{Queue, Store};
use crate::local::jobs::{run_jobs, RunTotals};
use crate::local::server::ServerLimits;
use crate::ports::QueueError;

/// The parts of a local run.
pub struct LocalParts {
    pub verifier: RotatingSecret<Verifier>,
    pub max_body_bytes: usize,
    pub store: Store,
    pub queue: Queue,
    /// The worker loop's Nango client and settings; `None` runs only the endpoint, in front of
    /// the queue.
    pub worker: Option<(NangoClient, WorkerSettings)>,
    /// Enqueue a reconcile at start and then this often, as the deployed schedule does (`None`:
    /// never), so that missed webhooks heal locally too.
    pub reconcile_every: Option<std::time::Duration>,
}

pub struct LocalRun {
    /// Where Nango (or `nango-sync sign --post`) sends webhooks.
    pub webhook_url: String,
    stop: Arc<AtomicBool>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    server: JoinHandle<()>,
    worker: Option<JoinHandle<Result<RunTotals, QueueError>>>,
    schedule: Option<JoinHandle<()>>,
}

impl LocalRun {
    pub async fn start(listen: SocketAddr, parts: LocalParts) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let webhook_url = format!("http://{}/", listener.local_addr()?);
        let webhook = Arc::new(WebhookApp::new(
            parts.verifier,
            parts.queue.clone(),
            parts.max_body_bytes,
        ));
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::local::server::serve(
            webhook,
            listener,
            ServerLimits::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let schedule = parts.reconcile_every.map(|period| {
            let queue = parts.queue.clone();
            tokio::spawn(async move {
                loop {
                    match crate::local::ops::reconcile_now(&queue).await {
                        Ok(at) => tracing::info!(%at, "scheduled reconcile enqueued"),
                        Err(error) => tracing::warn!(%error, "scheduled reconcile not enqueued; next period tries again"),
                    }
                    tokio::time::sleep(period).await;
                }
            })
        });
        let worker = parts.worker.map(|(source, settings)| {
            let app = WorkerApp {
                source,
                records: parts.store.clone(),
                state: parts.store,
                queue: parts.queue.clone(),
                settings,
            };
            let (stop, consumer) = (Arc::clone(&stop), parts.queue);
            tokio::spawn(async move { run_jobs(&consumer, &app, false, &stop).await })
        });
        Ok(Self {
            webhook_url,
            stop,
            stop_server: Some(stop_server),
            server,
            worker,
            schedule,
        })
    }

    /// Stops the endpoint and the worker loop (after its current batch); returns what it ran.
    pub async fn stop(mut self) -> Result<RunTotals, QueueError> {
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(schedule) = self.schedule.take() {
            schedule.abort();
        }
        let _ = (&mut self.server).await;
        match self.worker.take() {
            Some(worker) => worker.await.map_err(|e| QueueError(Box::new(e)))?,
            None => Ok(RunTotals::default()),
        }
    }
}
