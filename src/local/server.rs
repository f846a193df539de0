//! A plain HTTP server on localhost around the same webhook handler the Lambda runs, for local
//! runs: Nango (or the simulator, or curl) posts here instead of to a Function URL.
//!
//! Behind a tunnel it faces the internet, so it bounds what a client can hold: headers must
//! arrive within a timeout (an idle connection is closed when it expires, between requests too),
//! a body within another, and past a number of open connections it stops accepting until one
//! closes (the kernel's backlog holds the rest), so a flood of idle sockets delays a genuine
//! webhook by at most the header timeout and never exhausts the process's file descriptors.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::core::webhook::{RequestOutcome, WebhookApp, WebhookRequest};
use crate::ports::JobQueue;

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From a connection's start, or the end of its last response, to the end of a request's
    /// headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_timeout: Duration,
    /// Connections open at once; beyond, new ones wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 8192,
        }
    }
}

/// How long to pause accepting after a failed accept (out of file descriptors, say): an
/// immediate retry would fail again, in a busy loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve<Q>(
    app: Arc<WebhookApp<Q>>,
    listener: TcpListener,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) where
    Q: JobQueue + 'static,
{
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            accepted = async {
                let slot = Arc::clone(&slots).acquire_owned().await.expect("never closed");
                (slot, listener.accept().await)
            } => accepted,
            () = &mut shutdown => return,
        };
        let (slot, (stream, peer)) = match accepted {
            (slot, Ok(pair)) => (slot, pair),
            (_, Err(error)) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move {
                    Ok::<_, std::convert::Infallible>(
                        answer(&app, request, limits.body_timeout).await,
                    )
                }
            });
            if let Err(error) = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
}

async fn answer<Q: JobQueue>(
    app: &WebhookApp<Q>,
    request: hyper::Request<Incoming>,
    body_timeout: Duration,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // Read one byte past the limit so an oversize body is refused without buffering all of it.
    let read = Limited::new(body, app.max_body_bytes() + 1).collect();
    let outcome = match tokio::time::timeout(body_timeout, read)
        .await
        .unwrap_or_else(|_| Err("the body did not arrive in time".into()))
    {
        Ok(collected) => {
            let body = collected.to_bytes();
            let headers = &parts.headers;
            let values = |name: &str| headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
            app.decide(&WebhookRequest::new(parts.method.as_str(), &body, values))
                .await
        }
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            RequestOutcome::PayloadTooLarge
        }
        Err(_) => RequestOutcome::IncompleteBody,
    };
    let mut response = hyper::Response::builder()
        .status(outcome.status())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(allow) = outcome.allow() {
        response = response.header(hyper::header::ALLOW, allow);
    }
    response
        .body(Full::new(Bytes::from_static(outcome.body().as_bytes())))
        .expect("static response parts are valid")
}
