//! The local HTTP server runs the same handler over real TCP: each sample event, replayed as a
//! plain HTTP request, gets the status the Lambda gives it.

use std::sync::Arc;

use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::core::webhook::WebhookApp;
use nango_sync::local::server;
use tokio::sync::oneshot;

use crate::common::{read, test_verifier};
use crate::events::EXPECTED;

struct Running {
    url: String,
    app: Arc<WebhookApp<MemoryQueue>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(max_body_bytes: usize) -> Running {
    let app = Arc::new(WebhookApp::new(
        test_verifier(),
        MemoryQueue::new(),
        max_body_bytes,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(Arc::clone(&app), listener, async {
        let _ = stopped.await;
    }));
    Running {
        url,
        app,
        stop: Some(stop),
    }
}

/// Replays a Lambda HTTP event as a plain request: same method, headers and body bytes.
async fn replay(client: &reqwest::Client, url: &str, file: &str) -> reqwest::StatusCode {
    let request = lambda_http::request::from_str(&read(&format!("events/{file}"))).unwrap();
    let mut builder = client.request(request.method().clone(), url);
    for (name, value) in request.headers() {
        if name != "host" {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(request.body().as_ref().to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn sample_events_over_tcp_get_the_lambda_statuses() {
    let server = start(nango_sync::config::DEFAULT_MAX_BODY_BYTES).await;
    let client = reqwest::Client::new();
    let mut expected_messages = 0;
    for (file, status, messages) in EXPECTED {
        assert_eq!(
            replay(&client, &server.url, file).await.as_u16(),
            status.as_u16(),
            "{file}"
        );
        expected_messages += messages;
    }
    assert_eq!(server.app.queue().sent().len(), expected_messages);
}

#[tokio::test]
async fn oversize_body_over_tcp_is_413_and_enqueues_nothing() {
    let server = start(1024).await;
    let response = reqwest::Client::new()
        .post(&server.url)
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert!(server.app.queue().sent().is_empty());
}
