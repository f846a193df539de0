//! A plain HTTP server on localhost around the same webhook handler the Lambda runs, for local
//! runs: Nango (or the simulator, or curl) posts here instead of to a Function URL.

use std::future::Future;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::core::webhook::{Outcome, WebhookApp, WebhookRequest};
use crate::ports::JobQueue;

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve<Q>(
    app: Arc<WebhookApp<Q>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) where
    Q: JobQueue + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, std::convert::Infallible>(answer(&app, request).await) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
}

async fn answer<Q: JobQueue>(
    app: &WebhookApp<Q>,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // Read one byte past the limit so an oversize body is refused without buffering all of it.
    let outcome = match Limited::new(body, app.max_body_bytes() + 1).collect().await {
        Ok(collected) => {
            let body = collected.to_bytes();
            let headers = &parts.headers;
            let values = |name: &str| headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
            app.decide(&WebhookRequest::new(parts.method.as_str(), &body, values))
                .await
        }
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Outcome::PayloadTooLarge,
        Err(_) => Outcome::IncompleteBody,
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
