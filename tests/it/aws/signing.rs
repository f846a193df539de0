//! The BatchWriteItem calls the records store signs itself (not through the SDK: see
//! src/adapters/aws/dynamodb/batch_write.rs) are checked as DynamoDB checks them. The shared moto
//! takes any signature, so this test starts a moto server of its own with authentication on
//! (`INITIAL_NO_AUTH_ACTION_COUNT`): past the first calls, moto recomputes each call's SigV4
//! signature with botocore from the caller's secret key (and, for a role's session, checks its
//! token) and refuses a call whose signature differs.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use nango_sync::adapters::aws::dynamodb::{create_table, DynamoRecordStore};
use nango_sync::core::record::NangoRecord;
use nango_sync::ports::RecordStore;
use serde_json::json;

use crate::common::{contacts, fast_writes, unique_name};

/// The IAM and STS calls that set up a user and a role's session are the ones moto lets through
/// unauthenticated.
const SETUP_CALLS: u32 = 6;

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
    let log_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/moto-authenticating.log"
    );
    let log = std::fs::File::create(log_path).unwrap();
    let child = Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_CALLS.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{server} (installed by scripts/moto.sh): {e}"));
    let mut moto = AuthenticatingMoto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..300 {
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto with authentication exited ({status}); see {log_path}");
        }
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

/// An IAM or STS call (query protocol), made while moto still lets calls through
/// unauthenticated.
async fn query(moto: &AuthenticatingMoto, service: &str, params: &[(&str, &str)]) -> String {
    let version = if service == "sts" {
        "2011-06-15"
    } else {
        "2010-05-08"
    };
    let response = reqwest::Client::new()
        .post(&moto.url)
        // moto routes by the credential scope's service.
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=setup/20260101/us-east-1/{service}/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[params, &[("Version", version)]].concat()))
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

async fn client(moto: &AuthenticatingMoto, credentials: Credentials) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(nango_sync::setup::behavior_version())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
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

/// Lets an IAM user or role (`kind`: "User" or "Role") do anything in DynamoDB.
async fn allow_dynamodb(moto: &AuthenticatingMoto, kind: &str, name: &str) {
    let policy = json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]})
    .to_string();
    let (action, name_field) = (format!("Put{kind}Policy"), format!("{kind}Name"));
    let params = [
        ("Action", action.as_str()),
        (name_field.as_str(), name),
        ("PolicyName", "all-of-dynamodb"),
        ("PolicyDocument", policy.as_str()),
    ];
    query(moto, "iam", &params).await;
}

/// A user's long-term key, and a role's session (key, secret and token), as Lambda has.
async fn set_up_a_user_and_a_role_session(moto: &AuthenticatingMoto) -> (Credentials, Credentials) {
    let user = "nango-sync-signing";
    query(moto, "iam", &[("Action", "CreateUser"), ("UserName", user)]).await;
    allow_dynamodb(moto, "User", user).await;
    let key = query(
        moto,
        "iam",
        &[("Action", "CreateAccessKey"), ("UserName", user)],
    )
    .await;
    let user = Credentials::new(
        between(&key, "AccessKeyId"),
        between(&key, "SecretAccessKey"),
        None,
        None,
        "iam user",
    );

    let role = "nango-sync-worker";
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
    .to_string();
    let create_role = [
        ("Action", "CreateRole"),
        ("RoleName", role),
        ("AssumeRolePolicyDocument", trust.as_str()),
    ];
    let created = query(moto, "iam", &create_role).await;
    allow_dynamodb(moto, "Role", role).await;
    let assume = [
        ("Action", "AssumeRole"),
        ("RoleArn", between(&created, "Arn")),
        ("RoleSessionName", "signing-test"),
    ];
    let session = query(moto, "sts", &assume).await;
    let session = Credentials::new(
        between(&session, "AccessKeyId"),
        between(&session, "SecretAccessKey"),
        Some(between(&session, "SessionToken").to_owned()),
        None,
        "role session",
    );
    (user, session)
}

/// Credentials like `good` that DynamoDB must refuse: another secret, or another token.
fn forged(good: &Credentials) -> Credentials {
    match good.session_token() {
        Some(token) => Credentials::new(
            good.access_key_id(),
            good.secret_access_key(),
            Some(format!("{token}x")),
            None,
            "forged token",
        ),
        None => Credentials::new(good.access_key_id(), "not-the-secret", None, None, "forged"),
    }
}

#[tokio::test]
async fn batch_writes_signed_outside_the_sdk_pass_dynamodbs_signature_check() {
    let moto = start_authenticating_moto().await;
    let (user, session) = set_up_a_user_and_a_role_session(&moto).await;

    // From here on every call is authenticated: the SDK's own, then the store's.
    let table = unique_name("signed");
    create_table(&client(&moto, user.clone()).await, &table)
        .await
        .unwrap();
    let stream = contacts();
    for credentials in [user, session] {
        let who = credentials
            .session_token()
            .map_or("user", |_| "role session");
        let records: Vec<NangoRecord> = (0..30).map(|i| record(&format!("{who} r{i}"))).collect();

        // Refused: moto answers 403, and the store says so without retrying. A page of new
        // records is written with no read first, so the refusal is the BatchWriteItem call's.
        let refused = DynamoRecordStore::new(
            client(&moto, forged(&credentials)).await,
            &table,
            fast_writes(),
        )
        .write_page(&stream, &records)
        .await
        .unwrap_err();
        assert!(
            !refused.is_retryable() && refused.to_string().contains("403"),
            "{who}: {refused}"
        );

        let store = DynamoRecordStore::new(client(&moto, credentials).await, &table, fast_writes());
        let report = store.write_page(&stream, &records).await.unwrap();
        assert_eq!(report.upserted, 30, "{who}");
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let stored = store.stored_versions_of(&stream, &ids).await.unwrap();
        assert_eq!(
            stored.len(),
            30,
            "{who}: every record was written, over two calls"
        );
    }
}

/// Credentials the provider cannot give (here a profile no file defines; in Lambda, a
/// credentials endpoint that did not answer) fail the write as worth retrying, as the SDK's own
/// calls do, rather than putting the stream in error for good.
#[tokio::test]
async fn credentials_that_cannot_be_had_fail_a_write_as_transient() {
    let missing = aws_config::profile::ProfileFileCredentialsProvider::builder()
        .profile_name("nango-sync-no-such-profile")
        .build();
    let config = aws_config::defaults(nango_sync::setup::behavior_version())
        .region(Region::new("us-east-1"))
        .credentials_provider(missing)
        .endpoint_url(crate::common::moto_endpoint())
        .load()
        .await;
    let store = DynamoRecordStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        unique_name("no-credentials"),
        fast_writes(),
    );
    let failed = store
        .write_page(&contacts(), &[record("r1")])
        .await
        .unwrap_err();
    assert!(failed.is_retryable(), "{failed}");
    assert!(failed.to_string().contains("could not prepare"), "{failed}");
}
