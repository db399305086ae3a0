//! The outbox conformance suite (`kefu_core::testing`) on SQLite and PostgreSQL: messages
//! written with their commit, delivered once and in order through failing channels, dead
//! letters, leases of workers that died, and two workers (two connection pools, as two
//! processes would have) on one outbox. `outbox_processes` runs real processes.

mod common;

use common::{on_both, TestDb};
use kefu_core::testing;
use kefu_core::ConversationStore;
use std::sync::Arc;

async fn store(t: &TestDb) -> Arc<dyn ConversationStore> {
    Arc::new(t.open().await.conversations())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_channel_delivers_once_in_order() {
    on_both(async |t: &TestDb| {
        testing::flaky_channel_delivers_once_in_order(store(t).await, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_failing_channel_dead_letters() {
    on_both(async |t: &TestDb| {
        testing::always_failing_channel_dead_letters(store(t).await, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_customer_dead_letters_at_once() {
    on_both(async |t: &TestDb| {
        testing::unreachable_customer_dead_letters_at_once(store(t).await, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    on_both(async |t: &TestDb| {
        testing::retry_after_is_honoured(store(t).await, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_claim_is_taken_over_after_its_lease() {
    on_both(async |t: &TestDb| {
        testing::a_dead_workers_claim_is_taken_over_after_its_lease(store(t).await, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_send_one_message_twice() {
    on_both(async |t: &TestDb| {
        testing::two_workers_never_send_one_message_twice(store(t).await, store(t).await, t.name)
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_commit_with_their_change_only() {
    on_both(async |t: &TestDb| {
        testing::messages_commit_with_their_change_only(store(t).await, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_what_is_not_sent() {
    on_both(async |t: &TestDb| {
        testing::pruning_keeps_what_is_not_sent(store(t).await, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_messages_go_out_too() {
    on_both(async |t: &TestDb| {
        testing::enqueued_messages_go_out_too(store(t).await, t.name).await;
    })
    .await;
}
