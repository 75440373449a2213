//! Fly.io regions: a write that lands outside PRIMARY_REGION is answered 409 with
//! `fly-replay: region=<primary>` and not processed; reads are served where they land, and in
//! the primary region writes go through.

use packr::config::FlyRegions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::publish_body::PublishBody;
use crate::support::server::TestServer;

async fn on_fly(region: &str, primary: &str) -> (TestServer, String) {
    let fly = FlyRegions {
        region: region.into(),
        primary: primary.into(),
    };
    let server = TestServer::start_with(|config| {
        config.region = Some(fly.region.clone());
        config.fly = Some(fly);
    })
    .await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    (server, token)
}

async fn publish(server: &TestServer, token: &str, body: &PublishBody) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{}/{}", server.url, body.name.replace('/', "%2f")))
        .bearer_auth(token)
        .json(&body.json())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_write_outside_the_primary_region_is_sent_back_with_fly_replay() {
    let (server, token) = on_fly("fra", "ams").await;
    let http = reqwest::Client::new();

    let response = publish(&server, &token, &PublishBody::new("@acme/widget", "1.0.0")).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(response.headers()["fly-replay"], "region=ams");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "wrong_region", "{body}");

    // Logins, token revocations and other writes go to the primary too, whoever sends them.
    let login = http
        .put(format!("{}/-/user/org.couchdb.user:alice", server.url))
        .json(&json!({ "name": "alice", "password": "s3cret-pass" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::CONFLICT);
    assert_eq!(login.headers()["fly-replay"], "region=ams");
    let revoke = http
        .delete(format!("{}/-/user/token/{token}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::CONFLICT);

    // Nothing was published or revoked, and reads are answered here.
    let (status, _) = server.get_json("/@acme%2fwidget", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(server.stored_blobs().await.is_empty());
    let (status, whoami) = server.get_json("/-/whoami", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    assert_eq!(whoami["username"], "alice");
    let ready = http
        .get(format!("{}/-/health/ready", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(ready.headers().get("fly-replay").is_none());
}

#[tokio::test]
async fn in_the_primary_region_writes_are_processed() {
    let (server, token) = on_fly("ams", "ams").await;
    let body = PublishBody::new("@acme/widget", "1.0.0");
    let response = publish(&server, &token, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().get("fly-replay").is_none());
    let packument = server.packument("@acme/widget", &token).await;
    assert_eq!(packument["dist-tags"]["latest"], "1.0.0");
}
