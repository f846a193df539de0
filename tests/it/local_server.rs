//! The local HTTP server runs the same handler over real TCP: each sample event, replayed as a
//! plain HTTP request, gets the status the Lambda gives it. And it holds up behind a tunnel: idle
//! and slow sockets are closed on timeouts, and a genuine webhook gets through a flood of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::core::webhook::WebhookApp;
use nango_sync::local::server::{self, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::common::{replay, test_verifier};
use crate::events::expected_webhooks;

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
    start_with(max_body_bytes, ServerLimits::default()).await
}

async fn start_with(max_body_bytes: usize, limits: ServerLimits) -> Running {
    let app = Arc::new(WebhookApp::new(
        test_verifier(),
        MemoryQueue::new(),
        max_body_bytes,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(Arc::clone(&app), listener, limits, async {
        let _ = stopped.await;
    }));
    Running {
        url,
        app,
        stop: Some(stop),
    }
}

#[tokio::test]
async fn sample_events_over_tcp_get_the_lambda_statuses() {
    let server = start(nango_sync::config::DEFAULT_MAX_BODY_BYTES).await;
    let client = reqwest::Client::new();
    let mut expected_messages = 0;
    for (file, status, messages) in &expected_webhooks() {
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

/// The process's soft limit on open files, from /proc (Linux).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// `count` sockets that hold a connection and send nothing, or half a request's headers.
async fn idle_sockets(url: &str, count: usize) -> Vec<TcpStream> {
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let mut socket = TcpStream::connect(&address).await.unwrap();
        if i % 2 == 1 {
            socket
                .write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: applic")
                .await
                .unwrap();
        }
        sockets.push(socket);
    }
    sockets
}

/// Whether the server closed `socket` before `by` (whatever it wrote first, say a 408).
async fn closed_by(socket: &mut TcpStream, by: Instant) -> bool {
    let mut sink = Vec::new();
    let left = by.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, socket.read_to_end(&mut sink))
        .await
        .is_ok()
}

#[tokio::test]
async fn a_genuine_webhook_is_answered_while_5000_idle_sockets_are_open() {
    // Each socket is two descriptors here, the client's and the server's.
    let limit = open_files_limit();
    assert!(
        limit >= 10_500,
        "this test holds 10,000 descriptors; the soft limit is {limit} (scripts/test.sh raises it \
         to the hard limit: ulimit -n)"
    );
    let server = start(nango_sync::config::DEFAULT_MAX_BODY_BYTES).await;
    let opened = Instant::now();
    let mut idle = idle_sockets(&server.url, 5000).await;

    let started = Instant::now();
    let status = replay(
        &reqwest::Client::new(),
        &server.url,
        "webhook-sync-success.json",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(server.app.queue().sent().len(), 1);
    assert!(took < Duration::from_secs(3), "answered in {took:?}");

    // Every idle socket is closed once the header timeout (10 s) has passed.
    let by = opened + ServerLimits::default().header_timeout + Duration::from_secs(5);
    for (i, socket) in idle.iter_mut().enumerate() {
        assert!(closed_by(socket, by).await, "socket {i} still open");
    }
}

#[tokio::test]
async fn past_the_connection_cap_a_webhook_waits_for_an_idle_one_to_time_out() {
    let limits = ServerLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_connections: 20,
    };
    let server = start_with(nango_sync::config::DEFAULT_MAX_BODY_BYTES, limits).await;
    let _idle = idle_sockets(&server.url, 20).await;
    let started = Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        replay(
            &reqwest::Client::new(),
            &server.url,
            "webhook-sync-success.json",
        ),
    )
    .await
    .expect("the idle sockets timed out and made room");
    let took = started.elapsed();
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "served once an idle socket timed out, not before: {took:?}"
    );
}

#[tokio::test]
async fn a_body_that_stalls_is_refused_after_the_body_timeout() {
    let limits = ServerLimits {
        body_timeout: Duration::from_secs(1),
        ..ServerLimits::default()
    };
    let server = start_with(nango_sync::config::DEFAULT_MAX_BODY_BYTES, limits).await;
    let mut socket = TcpStream::connect(
        server
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    )
    .await
    .unwrap();
    socket
        .write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"type\":")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = vec![0; 512];
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut answer))
        .await
        .expect("answered before the test gave up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert!(server.app.queue().sent().is_empty());
}
