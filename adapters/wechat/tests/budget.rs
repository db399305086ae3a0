//! The 5-second rule under tokio's paused clock, without sockets (the router called
//! directly), so the timing is exact and deterministic.

mod common;
mod vectors;

use axum::body::Body;
use axum::http::Request;
use common::*;
use kefu_core::OutboxState;
use kefu_wechat::{crypto, Wechat, WechatSettings, DEFAULT_REPLY_BUDGET, MP_PATH};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use vectors as v;

#[tokio::test(start_paused = true)]
async fn a_turn_slower_than_the_budget_is_answered_success_at_4_s_and_its_replies_queued() {
    let store = Gated::delayed(Duration::from_secs(10));
    let outbox = kefu_core::ConversationStore::outbox(&*store);
    let settings = WechatSettings::new(v::TOKEN, v::APP_ID, SECRET);
    assert_eq!(settings.reply_budget, DEFAULT_REPLY_BUDGET);
    let wechat = Wechat::new(
        engine(store.clone()),
        outbox.clone(),
        Arc::new(tokio::sync::Notify::new()),
        settings,
    )
    .unwrap();
    let request = |nonce: &str, msg_id: &str| {
        let ts = now_secs();
        let sig = crypto::signature(&[v::TOKEN, &ts, nonce]);
        Request::post(format!(
            "{MP_PATH}?signature={sig}&timestamp={ts}&nonce={nonce}"
        ))
        .body(Body::from(text_xml("oPaused", msg_id, "退款")))
        .unwrap()
    };
    let started = tokio::time::Instant::now();
    let response = wechat.router().oneshot(request("1", "77")).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(4));
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(&body[..], b"success");
    assert!(outbox
        .list(OutboxState::Pending, 10)
        .await
        .unwrap()
        .is_empty());
    // A retry at 4 s: answered at once, nothing more.
    let response = wechat.router().oneshot(request("2", "77")).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(&body[..], b"success");
    assert_eq!(started.elapsed(), Duration::from_secs(4));
    // The turn ends at 10 s; its replies are waiting for the customer-service API.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let pending = outbox.list(OutboxState::Pending, 10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].message.conversation.id, "oPaused");
    assert!(pending[0].message.text.contains(ANSWER_ZH));
    assert_eq!(store.commits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_turn_within_the_budget_is_answered_passively() {
    let store = Gated::delayed(Duration::from_millis(3900));
    let outbox = kefu_core::ConversationStore::outbox(&*store);
    let wechat = Wechat::new(
        engine(store.clone()),
        outbox.clone(),
        Arc::new(tokio::sync::Notify::new()),
        WechatSettings::new(v::TOKEN, v::APP_ID, SECRET),
    )
    .unwrap();
    let ts = now_secs();
    let sig = crypto::signature(&[v::TOKEN, &ts, "1"]);
    let request = Request::post(format!("{MP_PATH}?signature={sig}&timestamp={ts}&nonce=1"))
        .body(Body::from(text_xml("oQuick", "78", "退款")))
        .unwrap();
    let started = tokio::time::Instant::now();
    let response = wechat.router().oneshot(request).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(3900));
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains(ANSWER_ZH));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(outbox
        .list(OutboxState::Pending, 10)
        .await
        .unwrap()
        .is_empty());
}
