//! The service report on SQLite and PostgreSQL: a known history built through the stores'
//! APIs (conversations, the queue, tickets), with times set to known values, and the report's
//! exact figures; then a period ending mid-history, odd stored rows, and an empty database.

mod common;

use common::{on_both, TestDb};
use kefu_core::{
    Conversation, ConversationKey, ConversationStore, HandoffQueue, HandoffReason, HandoffRequest,
    Locale, NewTicket, OutboundKind, Priority, QuickReply, Rating, Speaker, TicketStatus,
    TicketUpdate, Tickets, TranscriptLine, TurnCommit,
};
use kefu_sql::report::ReportError;
use kefu_sql::{Database, Report, Slice, Spread};
use std::collections::BTreeMap;

const SECOND: u64 = 1000;
const MIN: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;
/// The period's start (2027-01-15).
const T0: u64 = 1_800_000_000_000;
/// The period's end.
const UNTIL: u64 = T0 + 10 * DAY;

// Hand-offs' enqueue times.
const E1: u64 = T0 + HOUR + 5 * MIN;
const E2: u64 = T0 + 2 * HOUR + MIN;
const E3: u64 = T0 + 2 * DAY + MIN;
const E0: u64 = T0 - 2 * DAY;

/// Runs statements on the test database beside kefu (to set times the APIs take from the
/// clock, or store what kefu never would).
async fn sql(t: &TestDb, statements: &str) {
    use sqlx::Connection;
    match &t.options.schema {
        Some(schema) => {
            let options: sqlx::postgres::PgConnectOptions = t.url.parse().unwrap();
            let options = options.options([("search_path", schema.as_str())]);
            let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
            sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        None => {
            let mut conn = sqlx::SqliteConnection::connect(&t.url).await.unwrap();
            sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}

fn key(id: &str) -> ConversationKey {
    ConversationKey::new("web", id)
}

fn line(at: u64, speaker: Speaker, text: &str, kind: Option<OutboundKind>) -> TranscriptLine {
    TranscriptLine {
        at,
        speaker,
        message_id: (speaker == Speaker::Customer).then(|| format!("m-{at}")),
        text: text.to_string(),
        decision: None,
        confidence: None,
        entry: None,
        kind,
        quick_replies: Vec::new(),
    }
}

/// The survey's first question, with its score buttons.
fn survey_question(at: u64) -> TranscriptLine {
    let mut line = line(
        at,
        Speaker::Bot,
        "How did we do?",
        Some(OutboundKind::Survey),
    );
    line.quick_replies = ["5", "4", "3", "2", "1"]
        .iter()
        .map(|s| QuickReply::new(format!("{s} stars"), *s))
        .collect();
    line
}

/// The survey's second question (a comment), with only a skip button.
fn comment_prompt(at: u64) -> TranscriptLine {
    let mut line = line(
        at,
        Speaker::Bot,
        "Anything you'd like to tell us?",
        Some(OutboundKind::Survey),
    );
    line.quick_replies = vec![QuickReply::new("Skip", "Skip")];
    line
}

fn rating(score: u8, agent: &str, at: u64) -> Rating {
    Rating {
        score,
        comment: None,
        agent: Some(agent.to_string()),
        at,
    }
}

/// Commits a conversation started at `started_at` with its transcript and ratings.
async fn conversation(
    db: &Database,
    id: &str,
    customer: &str,
    started_at: u64,
    lines: Vec<TranscriptLine>,
    ratings: Vec<Rating>,
) {
    let mut state = Conversation::new(key(id), customer, Locale::En);
    state.started_at = started_at;
    state.updated_at = lines
        .iter()
        .map(|l| l.at)
        .chain(ratings.iter().map(|r| r.at))
        .max()
        .unwrap_or(started_at);
    state.ratings = ratings;
    db.conversations()
        .commit(TurnCommit::new(state, Some(format!("first-{id}")), lines))
        .await
        .unwrap();
}

/// Queues a hand-off (or transfer) of conversation `id`.
#[allow(clippy::too_many_arguments)]
async fn enqueue(
    db: &Database,
    id: &str,
    customer: &str,
    group: &str,
    reason: HandoffReason,
    entry: Option<&str>,
    order: Option<&str>,
    enqueued_at: u64,
) {
    db.queue()
        .enqueue(HandoffRequest {
            conversation: key(id),
            user: customer.to_string(),
            skill_group: group.to_string(),
            priority: Priority::Normal,
            reason,
            entry: entry.map(str::to_string),
            locale: Locale::En,
            entities: order
                .map(|o| BTreeMap::from([("order_no".to_string(), o.to_string())]))
                .unwrap_or_default(),
            transcript: Vec::new(),
            enqueued_at,
            vip: false,
            escalated_at: None,
            note: None,
        })
        .await
        .unwrap();
}

/// An agent takes conversation `id`, replies at `replied` (if at all), and closes it; the
/// claim and close times are then set to `claimed_at` and `closed_at` (the queue takes them
/// from the clock).
async fn handle(
    t: &TestDb,
    db: &Database,
    id: &str,
    agent: &str,
    claimed_at: u64,
    replied: Option<u64>,
    closed_at: u64,
) {
    let queue = db.queue();
    let taken = queue.take(&key(id), agent, 10).await.unwrap();
    assert!(matches!(taken, kefu_core::Take::Taken(_)), "{taken:?}");
    if let Some(at) = replied {
        queue.replied(&key(id), at).await.unwrap();
    }
    queue.close(&key(id)).await.unwrap();
    sql(
        t,
        &format!(
            "UPDATE handoff_queue SET claimed_at = {claimed_at}, closed_at = {closed_at} \
             WHERE id = (SELECT MAX(id) FROM handoff_queue WHERE conversation_id = '{id}')"
        ),
    )
    .await;
}

/// Opens a ticket, then sets when it was opened and when it is due.
async fn ticket(
    t: &TestDb,
    db: &Database,
    customer: &str,
    order: Option<&str>,
    created_at: u64,
    due_at: u64,
    status: TicketStatus,
) {
    let tickets = db.tickets();
    let opened = tickets
        .open(NewTicket {
            kind: "card_key_missing".to_string(),
            order: order.map(str::to_string),
            conversation: None,
            customer: customer.to_string(),
            description: "the card key did not arrive".to_string(),
            skill_group: "general".to_string(),
            sla_millis: DAY,
            by: "bot".to_string(),
            idempotency_key: None,
        })
        .await
        .unwrap();
    if status != TicketStatus::Open {
        tickets
            .update(
                &opened.number,
                TicketUpdate {
                    status: Some(status),
                    owner: None,
                    by: "ann".to_string(),
                    note: "done".to_string(),
                },
            )
            .await
            .unwrap();
    }
    sql(
        t,
        &format!(
            "UPDATE tickets SET created_at = {created_at}, due_at = {due_at} \
             WHERE number = '{}'",
            opened.number
        ),
    )
    .await;
}

/// The history the report tests read:
///
/// - c1 (alice): hand-off `requested` about order DD1 (FAQ entry `order.card_key_lookup`),
///   taken by ann after 2 min, first reply at 3 min, closed at 30 min; survey, rated 5.
/// - c2 (bob): hand-off `needs_person` about order DD2, taken by ann after 4 min, transferred
///   to billing at 10 min without a reply; there ben takes it 6 min later, replies at 8 min,
///   closes it an hour after the transfer; survey, rated 3. A day later bob opens a ticket on
///   DD2 (not resolved at first contact).
/// - c3 (alice again, two days later): hand-off `requested` on the same FAQ entry as c1 (so
///   c1 was not resolved at first contact), taken by ben after 10 min, reply at 12, closed at
///   40; survey, not answered.
/// - c4 (carol): the bot alone; a ticket, not yet due.
/// - c0 (dave): a hand-off, survey and rating two days before the period, and a ticket
///   before the period, resolved; a message in the period.
/// - erin: a hand-off after the period.
async fn history(t: &TestDb) -> Database {
    let db = t.open().await;
    let answer = Some(OutboundKind::Answer);
    conversation(
        &db,
        "c1",
        "alice",
        T0 + HOUR,
        vec![
            line(T0 + HOUR, Speaker::Customer, "my card key is missing", None),
            line(E1 + 3 * MIN, Speaker::Agent, "let me check", None),
            survey_question(E1 + 30 * MIN + SECOND),
            line(E1 + 31 * MIN, Speaker::Customer, "5", None),
            comment_prompt(E1 + 31 * MIN),
        ],
        vec![rating(5, "ann", E1 + 31 * MIN)],
    )
    .await;
    enqueue(
        &db,
        "c1",
        "alice",
        "general",
        HandoffReason::Requested,
        Some("order.card_key_lookup"),
        Some("DD1"),
        E1,
    )
    .await;
    handle(
        t,
        &db,
        "c1",
        "ann",
        E1 + 2 * MIN,
        Some(E1 + 3 * MIN),
        E1 + 30 * MIN,
    )
    .await;

    conversation(
        &db,
        "c2",
        "bob",
        T0 + 2 * HOUR,
        vec![
            line(T0 + 2 * HOUR, Speaker::Customer, "refund order DD2", None),
            survey_question(E2 + 70 * MIN + SECOND),
            line(E2 + 72 * MIN, Speaker::Customer, "3", None),
            comment_prompt(E2 + 72 * MIN),
        ],
        vec![rating(3, "ben", E2 + 72 * MIN)],
    )
    .await;
    enqueue(
        &db,
        "c2",
        "bob",
        "general",
        HandoffReason::NeedsPerson,
        Some("refund.request"),
        Some("DD2"),
        E2,
    )
    .await;
    handle(t, &db, "c2", "ann", E2 + 4 * MIN, None, E2 + 10 * MIN).await;
    enqueue(
        &db,
        "c2",
        "bob",
        "billing",
        HandoffReason::Transferred,
        Some("refund.request"),
        Some("DD2"),
        E2 + 10 * MIN,
    )
    .await;
    handle(
        t,
        &db,
        "c2",
        "ben",
        E2 + 16 * MIN,
        Some(E2 + 18 * MIN),
        E2 + 70 * MIN,
    )
    .await;
    ticket(
        t,
        &db,
        "bob",
        Some("DD2"),
        E2 + DAY,
        E2 + 2 * DAY,
        TicketStatus::Open,
    )
    .await;

    conversation(
        &db,
        "c3",
        "alice",
        T0 + 2 * DAY,
        vec![
            line(T0 + 2 * DAY, Speaker::Customer, "still no card key", None),
            survey_question(E3 + 40 * MIN + SECOND),
        ],
        Vec::new(),
    )
    .await;
    enqueue(
        &db,
        "c3",
        "alice",
        "general",
        HandoffReason::Requested,
        Some("order.card_key_lookup"),
        None,
        E3,
    )
    .await;
    handle(
        t,
        &db,
        "c3",
        "ben",
        E3 + 10 * MIN,
        Some(E3 + 12 * MIN),
        E3 + 40 * MIN,
    )
    .await;

    conversation(
        &db,
        "c4",
        "carol",
        T0 + 3 * DAY,
        vec![
            line(T0 + 3 * DAY, Speaker::Customer, "how do I redeem", None),
            line(T0 + 3 * DAY, Speaker::Bot, "like this", answer),
        ],
        Vec::new(),
    )
    .await;
    ticket(
        t,
        &db,
        "carol",
        None,
        T0 + 3 * DAY,
        UNTIL + DAY,
        TicketStatus::Open,
    )
    .await;

    conversation(
        &db,
        "c0",
        "dave",
        E0,
        vec![
            survey_question(E0 + HOUR),
            line(E0 + 2 * HOUR, Speaker::Customer, "4", None),
            line(T0 + 5 * DAY, Speaker::Customer, "hello again", None),
            line(T0 + 5 * DAY, Speaker::Bot, "hello", answer),
        ],
        vec![rating(4, "ann", E0 + 2 * HOUR)],
    )
    .await;
    enqueue(
        &db,
        "c0",
        "dave",
        "general",
        HandoffReason::Requested,
        None,
        Some("DD0"),
        E0,
    )
    .await;
    handle(t, &db, "c0", "ann", E0 + MIN, Some(E0 + 2 * MIN), E0 + HOUR).await;
    ticket(
        t,
        &db,
        "dave",
        Some("DD0"),
        T0 - 5 * DAY,
        T0 - 4 * DAY,
        TicketStatus::Resolved,
    )
    .await;

    enqueue(
        &db,
        "c5",
        "erin",
        "general",
        HandoffReason::Requested,
        None,
        None,
        UNTIL + HOUR,
    )
    .await;
    db
}

fn spread(values: &[u64]) -> Spread {
    Spread::of(values.iter().map(|v| v * MIN))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_known_history_has_exact_figures() {
    on_both(async |t: &TestDb| {
        let db = history(t).await;
        let report = db.report(T0, UNTIL).await.unwrap();
        let n = t.name;

        assert_eq!(report.conversations, 4, "{n}");
        assert_eq!(report.contained, 1, "{n}");
        assert_eq!(report.containment(), Some(0.25), "{n}");
        assert_eq!(report.handoffs, 3, "{n}");
        assert_eq!(
            report.handoff_reasons,
            BTreeMap::from([
                ("needs_person".to_string(), 1),
                ("requested".to_string(), 2)
            ]),
            "{n}"
        );
        assert_eq!(report.transfers, 1, "{n}");
        // Claims after 2, 4 (ann), 6 (ben, after the transfer) and 10 minutes.
        assert_eq!(
            report.queue_wait,
            Spread {
                count: 4,
                p50_ms: Some(4 * MIN),
                p90_ms: Some(10 * MIN)
            },
            "{n}"
        );
        // First replies 3, 8 (from the transfer) and 12 minutes after the enqueue.
        assert_eq!(
            report.first_reply,
            Spread {
                count: 3,
                p50_ms: Some(8 * MIN),
                p90_ms: Some(12 * MIN)
            },
            "{n}"
        );
        // c1 in 30 minutes, c3 in 40, c2's chain in 70 (from the hand-off, across the transfer).
        assert_eq!(
            report.resolution,
            Spread {
                count: 3,
                p50_ms: Some(40 * MIN),
                p90_ms: Some(70 * MIN)
            },
            "{n}"
        );
        // Alice came back about c1's matter; bob opened a ticket on c2's order.
        assert_eq!(report.fcr, Some(1.0 / 3.0), "{n}");
        assert_eq!(report.ratings, 2, "{n}");
        assert_eq!(report.csat_average, Some(4.0), "{n}");
        assert_eq!(report.surveys, 3, "{n}");
        assert_eq!(report.response_rate, Some(2.0 / 3.0), "{n}");
        assert_eq!(report.tickets_opened, 2, "{n}");
        assert_eq!(report.tickets_overdue, 1, "{n}");

        let general = Slice {
            handoffs: 3,
            queue_wait: spread(&[2, 4, 10]),
            first_reply: spread(&[3, 12]),
            resolution: spread(&[30, 40]),
            fcr: Some(0.5),
            ratings: 1,
            csat_average: Some(5.0),
        };
        let billing = Slice {
            handoffs: 1,
            queue_wait: spread(&[6]),
            first_reply: spread(&[8]),
            resolution: spread(&[70]),
            fcr: Some(0.0),
            ratings: 1,
            csat_average: Some(3.0),
        };
        assert_eq!(
            report.groups,
            BTreeMap::from([
                ("billing".to_string(), billing),
                ("general".to_string(), general)
            ]),
            "{n}"
        );
        let ann = Slice {
            handoffs: 2,
            queue_wait: spread(&[2, 4]),
            first_reply: spread(&[3]),
            resolution: spread(&[30]),
            fcr: Some(0.0),
            ratings: 1,
            csat_average: Some(5.0),
        };
        let ben = Slice {
            handoffs: 2,
            queue_wait: spread(&[6, 10]),
            first_reply: spread(&[8, 12]),
            resolution: spread(&[40, 70]),
            fcr: Some(0.5),
            ratings: 1,
            csat_average: Some(3.0),
        };
        assert_eq!(
            report.agents,
            BTreeMap::from([("ann".to_string(), ann), ("ben".to_string(), ben)]),
            "{n}"
        );

        let text = report.prometheus();
        for line in [
            "kefu_report_containment_ratio 0.25",
            "kefu_report_handoffs{reason=\"requested\"} 2",
            "kefu_report_first_reply_seconds{quantile=\"0.5\"} 480",
            "kefu_report_first_reply_seconds{quantile=\"0.9\"} 720",
            "kefu_report_group_first_reply_seconds{skill_group=\"billing\",quantile=\"0.5\"} 480",
            "kefu_report_tickets_overdue 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{n}: no `{line}` in\n{text}"
            );
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["first_reply"]["p50_ms"], 8 * MIN, "{n}");
        assert_eq!(json["agents"]["ben"]["fcr"], 0.5, "{n}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_ending_mid_history_sees_only_what_happened_before_its_end() {
    on_both(async |t: &TestDb| {
        let db = history(t).await;
        // c1 was claimed and answered, not yet closed or rated.
        let until = T0 + HOUR + 20 * MIN;
        let report = db.report(T0, until).await.unwrap();
        let n = t.name;
        let taken = Slice {
            handoffs: 1,
            queue_wait: spread(&[2]),
            first_reply: spread(&[3]),
            ..Slice::default()
        };
        let expected = Report {
            since: T0,
            until,
            conversations: 1,
            contained: 0,
            handoffs: 1,
            handoff_reasons: BTreeMap::from([("requested".to_string(), 1)]),
            transfers: 0,
            queue_wait: spread(&[2]),
            first_reply: spread(&[3]),
            resolution: Spread::default(),
            fcr: None,
            ratings: 0,
            csat_average: None,
            surveys: 0,
            response_rate: None,
            tickets_opened: 0,
            tickets_overdue: 0,
            groups: BTreeMap::from([("general".to_string(), taken.clone())]),
            agents: BTreeMap::from([("ann".to_string(), taken)]),
        };
        assert_eq!(report, expected, "{n}");

        // The week before the period: dave's hand-off, rating and survey.
        let before = db.report(T0 - 7 * DAY, T0).await.unwrap();
        assert_eq!(
            (
                before.conversations,
                before.handoffs,
                before.ratings,
                before.surveys
            ),
            (1, 1, 1, 1),
            "{n}"
        );
        assert_eq!(before.csat_average, Some(4.0), "{n}");
        assert_eq!(before.resolution, spread(&[60]), "{n}");
        assert_eq!(before.fcr, Some(1.0), "{n}");
        assert_eq!(before.tickets_overdue, 0, "{n}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_stored_rows_are_skipped_or_clamped_never_fatal() {
    on_both(async |t: &TestDb| {
        let db = t.open().await;
        let at = T0 + HOUR;
        let ratings = format!(
            r#"{{"ratings": [{{"score": "five"}}, {{"score": 9, "at": {at}}}, 7, {{"score": 4, "at": {at}, "agent": "ann"}}]}}"#
        );
        sql(
            t,
            &format!(
                "INSERT INTO conversations (channel, conversation_id, customer, locale, holder, \
                   agent, flow, state, version, started_at, updated_at) VALUES \
                 ('web', 'broken', 'u1', 'en', 'bot', NULL, NULL, 'not json', 1, {at}, {at}), \
                 ('web', 'odd', 'u2', 'en', 'bot', NULL, NULL, '{ratings}', 1, {at}, {at}), \
                 ('web', 'listless', 'u3', 'en', 'bot', NULL, NULL, '{{\"ratings\": 3}}', 1, {at}, {at}); \
                 INSERT INTO handoff_queue (channel, conversation_id, customer, skill_group, \
                   priority, reason, entry, locale, entities, transcript, enqueued_at, \
                   claimed_by, claimed_at, first_reply_at, closed_at) VALUES \
                 ('web', 'odd', 'u2', 'general', 1, 'from_a_newer_kefu', NULL, 'en', 'oops', \
                   '[]', {at}, 'ann', {}, {}, {}); \
                 INSERT INTO transcript_lines (channel, conversation_id, at, speaker, text, kind, \
                   quick_replies) VALUES \
                 ('web', 'odd', {at}, 'bot', 'How did we do?', 'survey', '{{broken'), \
                 ('web', 'odd', {at}, 'bot', 'How did we do?', 'survey', NULL)",
                at - MIN,
                at - 2 * MIN,
                at - 3 * MIN,
            ),
        )
        .await;
        let report = db.report(T0, UNTIL).await.unwrap();
        let n = t.name;
        assert_eq!((report.conversations, report.contained), (3, 2), "{n}");
        assert_eq!(
            report.handoff_reasons,
            BTreeMap::from([("from_a_newer_kefu".to_string(), 1)]),
            "{n}"
        );
        let zero = Spread {
            count: 1,
            p50_ms: Some(0),
            p90_ms: Some(0),
        };
        assert_eq!(
            (report.queue_wait, report.first_reply, report.resolution),
            (zero, zero, zero),
            "{n}"
        );
        assert_eq!(report.fcr, Some(1.0), "{n}");
        assert_eq!((report.ratings, report.csat_average), (1, Some(4.0)), "{n}");
        assert_eq!((report.surveys, report.response_rate), (1, Some(1.0)), "{n}");
        assert_eq!(report.agents["ann"].ratings, 1, "{n}");
        assert!(!report.prometheus().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_reports_zeros_and_no_values() {
    on_both(async |t: &TestDb| {
        let db = t.open().await;
        let report = db.report(T0, UNTIL).await.unwrap();
        let n = t.name;
        assert_eq!(
            (
                report.conversations,
                report.handoffs,
                report.ratings,
                report.surveys
            ),
            (0, 0, 0, 0),
            "{n}"
        );
        assert_eq!(report.containment(), None, "{n}");
        assert_eq!(report.first_reply, Spread::default(), "{n}");
        assert_eq!(
            (report.fcr, report.csat_average, report.response_rate),
            (None, None, None)
        );
        assert!(report.groups.is_empty() && report.agents.is_empty(), "{n}");
        let text = report.prometheus();
        assert!(text.contains("kefu_report_conversations 0"), "{text}");
        assert!(!text.contains("ratio"), "{text}");
        let empty = db.report(T0, T0).await.unwrap_err();
        assert!(matches!(empty, ReportError::EmptyPeriod { .. }), "{empty}");
        assert!(empty.to_string().contains("must end"), "{empty}");
    })
    .await;
}
