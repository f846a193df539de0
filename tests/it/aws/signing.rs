//! The BatchWriteItem calls the records store signs itself (not through the SDK: see
//! src/adapters/aws/dynamodb/batch_write.rs) are checked as DynamoDB checks them. The shared moto
//! takes any signature, so this test starts a moto server of its own with authentication on
//! (`INITIAL_NO_AUTH_ACTION_COUNT`): past the first calls, moto recomputes each call's SigV4
//! signature with botocore from the user's secret key and refuses a call whose signature differs.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use nango_sync::adapters::aws::dynamodb::{create_table, DynamoRecordStore};
use nango_sync::core::record::NangoRecord;
use nango_sync::ports::RecordStore;
use serde_json::json;

use crate::common::{contacts, fast_writes, unique_name};

/// The IAM calls that set up the user are the ones moto lets through unauthenticated.
const SETUP_CALLS: u32 = 3;

struct AuthenticatingMoto {
    child: Child,
    url: String,
}

impl Drop for AuthenticatingMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_authenticating_moto() -> AuthenticatingMoto {
    // scripts/moto.sh installs moto's server here.
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/moto_server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_CALLS.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{server} (installed by scripts/moto.sh): {e}"));
    let moto = AuthenticatingMoto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..300 {
        // A bare connection: an HTTP call would count as one of the unauthenticated ones.
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto with authentication did not listen on {port} within 30 s");
}

/// An IAM call (query protocol), made while moto still lets calls through unauthenticated.
async fn iam(moto: &AuthenticatingMoto, params: &[(&str, &str)]) -> String {
    let response = reqwest::Client::new()
        .post(&moto.url)
        // moto routes by the credential scope's service.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=setup/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[params, &[("Version", "2010-05-08")]].concat()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{params:?}");
    response.text().await.unwrap()
}

fn form(params: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn between<'a>(text: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = text.find(&open).unwrap() + open.len();
    &text[start..start + text[start..].find('<').unwrap()]
}

async fn client(moto: &AuthenticatingMoto, key: &str, secret: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(nango_sync::setup::behavior_version())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "iam user"))
        .endpoint_url(&moto.url)
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

fn record(id: &str) -> NangoRecord {
    let object = json!({"id": id, "name": format!("{id} \u{e9}t\u{e9} \"quoted\""), "_nango_metadata": {
        "first_seen_at": "2026-12-07T00:00:00+00:00", "last_modified_at": "2026-12-07T00:00:00+00:00",
        "last_action": "ADDED", "deleted_at": null, "pruned_at": null, "cursor": format!("cursor-{id}")}});
    NangoRecord::from_object(object.as_object().unwrap().clone()).unwrap()
}

#[tokio::test]
async fn batch_writes_signed_outside_the_sdk_pass_dynamodbs_signature_check() {
    let moto = start_authenticating_moto().await;
    let user = "nango-sync-signing";
    iam(&moto, &[("Action", "CreateUser"), ("UserName", user)]).await;
    let policy = json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]});
    iam(
        &moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", user),
            ("PolicyName", "all-of-dynamodb"),
            ("PolicyDocument", &policy.to_string()),
        ],
    )
    .await;
    let created = iam(&moto, &[("Action", "CreateAccessKey"), ("UserName", user)]).await;
    let (key, secret) = (
        between(&created, "AccessKeyId"),
        between(&created, "SecretAccessKey"),
    );

    // From here on every call is authenticated: the SDK's own, then the store's.
    let dynamo = client(&moto, key, secret).await;
    let table = unique_name("signed");
    create_table(&dynamo, &table).await.unwrap();
    let stream = contacts();
    let records: Vec<NangoRecord> = (0..30).map(|i| record(&format!("r{i}"))).collect();

    // A wrong secret: moto refuses the call, and the store says so without retrying.
    let forged = DynamoRecordStore::new(
        client(&moto, key, "not-the-secret").await,
        &table,
        fast_writes(),
    );
    let refused = forged.write_page(&stream, &records).await.unwrap_err();
    assert!(!refused.is_retryable(), "{refused}");

    let store = DynamoRecordStore::new(dynamo, &table, fast_writes());
    let report = store.write_page(&stream, &records).await.unwrap();
    assert_eq!(report.upserted, 30);
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let stored = store.stored_versions_of(&stream, &ids).await.unwrap();
    assert_eq!(stored.len(), 30, "every record was written, over two calls");
}
