//! The agents' console over real HTTP on loopback (`kefu serve`'s router on a real SQLite
//! database): sessions, CSRF and origin checks, the log-in limit, and an agent working a
//! conversation from the queue to the customer's rating.

use kefu_app::config::Config;
use kefu_app::App;
use kefu_core::conversation::now_millis;
use kefu_core::{ConversationKey, HandoffQueue, Inbound};
use kefu_sql::Role;
use reqwest::redirect::Policy;
use std::path::Path;

const PASSWORD: &str = "correct horse battery";

struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Another process's view of the same database (the customer's side, accounts).
    other: App,
}

impl Server {
    async fn start(dir: &Path, extra: &str) -> Server {
        let yaml = format!(
            "storage:\n  url: sqlite://{}/kefu.db\n{extra}",
            dir.display()
        );
        Server::with_yaml(&yaml).await
    }

    async fn with_yaml(yaml: &str) -> Server {
        let config = Config::parse(Path::new("kefu.yaml"), yaml).unwrap();
        let app = App::from_config(&config).await.unwrap();
        let other = App::from_config(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            kefu_app::serve::run(app, &config, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Server {
            base,
            stop: Some(stop),
            task: Some(task),
            other,
        }
    }

    async fn add(&self, name: &str, role: Role) {
        self.other
            .db
            .accounts()
            .add(name, role, PASSWORD, now_millis())
            .await
            .unwrap();
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Logs in; the session cookie (`name=value`).
async fn log_in(base: &str, name: &str, password: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/console/login"))
        .form(&[("name", name), ("password", password)])
        .send()
        .await
        .unwrap()
}

fn session_cookie(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/console"), "{set}");
    set.split(';').next().unwrap().to_string()
}

async fn get(base: &str, path: &str, cookie: &str) -> (u16, String) {
    let response = client()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf token")
        + 19;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

async fn post(
    base: &str,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let response = client()
        .post(format!("{base}{path}"))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_missing_session_and_a_cross_site_post_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "").await;
    server.add("alice", Role::Agent).await;
    let base = server.base.clone();

    // No cookie: the pages lead to the log-in, the live parts and forms refuse.
    let (status, _) = get(&base, "/console", "").await;
    assert_eq!(status, 303);
    assert_eq!(get(&base, "/console/queue", "").await.0, 401);
    assert_eq!(get(&base, "/console/events", "").await.0, 401);
    let forged = format!("kefu_console={}", "ab".repeat(32));
    assert_eq!(get(&base, "/console/queue", &forged).await.0, 401);
    assert_eq!(get(&base, "/console", "kefu_console=<script>").await.0, 303);
    let (status, _, _) = post(
        &base,
        "/console/act",
        &forged,
        &[("op", "claim"), ("group", "general")],
    )
    .await;
    assert_eq!(status, 401);

    // A real session, but a form without the page's token, or with another session's.
    let response = log_in(&base, "alice", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let cookie = session_cookie(&response);
    let (status, page) = get(&base, "/console", &cookie).await;
    assert_eq!(status, 200);
    let token = csrf(&page);
    let (status, _, _) = post(
        &base,
        "/console/status",
        &cookie,
        &[("status", "available")],
    )
    .await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, _, _) = post(
        &base,
        "/console/status",
        &cookie,
        &[("status", "available"), ("csrf", &"0".repeat(token.len()))],
    )
    .await;
    assert_eq!(status, 403, "a wrong CSRF token");
    // A cross-site form post carries the session cookie only if SameSite failed; its Origin
    // still gives it away.
    let response = client()
        .post(format!("{base}/console/status"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("status", "available"), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = client()
        .post(format!("{base}/console/login"))
        .header("origin", "http://evil.example")
        .form(&[("name", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "log-in CSRF");
    // The right token from the same site works.
    let (status, location, _) = post(
        &base,
        "/console/status",
        &cookie,
        &[("status", "available"), ("csrf", &token)],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/console"));
    let account = server
        .other
        .db
        .accounts()
        .get("alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.status, kefu_sql::Status::Available);

    // Logged out, the old cookie opens nothing.
    let (status, _, _) = post(&base, "/console/logout", &cookie, &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    assert_eq!(get(&base, "/console/queue", &cookie).await.0, 401);
    // Agents do not see the dashboard.
    let cookie = session_cookie(&log_in(&base, "alice", PASSWORD).await);
    assert_eq!(get(&base, "/console/dashboard", &cookie).await.0, 403);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_log_ins_are_limited_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "console:\n  failed_logins_per_account: 3\n  failed_logins_per_address: 10\n",
    )
    .await;
    server.add("alice", Role::Agent).await;
    server.add("bob", Role::Agent).await;
    let base = server.base.clone();
    for _ in 0..3 {
        assert_eq!(
            log_in(&base, "alice", "wrong password!").await.status(),
            401
        );
    }
    // The fourth try is refused without checking the password, even the right one.
    let refused = log_in(&base, "alice", PASSWORD).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.text().await.unwrap().contains("15 minutes"));
    // Another account is not locked by alice's failures, and a success does not count.
    for _ in 0..3 {
        assert_eq!(log_in(&base, "bob", PASSWORD).await.status(), 303);
    }
    // Guessing many names from one address hits the address's limit (10: 3 for alice, 7
    // more).
    for i in 0..7 {
        assert_eq!(
            log_in(&base, &format!("nobody{i}"), "wrong password!")
                .await
                .status(),
            401
        );
    }
    assert_eq!(log_in(&base, "bob", PASSWORD).await.status(), 429);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_a_conversation_from_the_queue_to_the_rating() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "").await;
    server.add("alice", Role::Admin).await;
    server.add("bob", Role::Agent).await;
    let base = server.base.clone();
    let customer = ConversationKey::new("test", "buyer-<1>");
    let say = |id: &str, text: &str| Inbound::new(customer.clone(), "buyer-<1>", id, text);
    let engine = server.other.engine.clone();
    engine.handle(say("m1", "我的卡密在哪里")).await.unwrap();
    engine.handle(say("m2", "转人工")).await.unwrap();

    let alice = session_cookie(&log_in(&base, "alice", PASSWORD).await);
    let (_, queue) = get(&base, "/console", &alice).await;
    assert!(
        queue.contains("buyer-&lt;1&gt;"),
        "escaped, in the queue: {queue}"
    );
    assert!(!queue.contains("buyer-<1>"));
    assert!(queue.contains("转人工"), "the last message is shown");
    let token = csrf(&queue);
    let (_, fragment) = get(&base, "/console/queue", &alice).await;
    assert!(fragment.starts_with("<div id=\"queue\">"), "{fragment}");

    // The conversation's page: the transcript with the bot's decisions, the context.
    let query = kefu_app::console::conversation_query(&customer);
    let (status, page) = get(&base, &format!("/console/conversation?{query}"), &alice).await;
    assert_eq!(status, 200);
    assert!(page.contains("我的卡密在哪里"), "{page}");
    assert!(
        page.contains("class=\"decision\""),
        "what the bot understood"
    );
    assert!(page.contains("class=\"confidence\""), "how sure it was");
    assert!(page.contains("Waiting for a person"));

    // alice takes it and replies; bob cannot answer her customer.
    let c = customer.channel.as_str();
    let id = customer.id.as_str();
    let act = |op: &'static str, extra: Vec<(&'static str, String)>| {
        let mut form: Vec<(&str, String)> = vec![
            ("csrf", token.clone()),
            ("op", op.to_string()),
            ("c", c.to_string()),
            ("id", id.to_string()),
        ];
        form.extend(extra);
        form
    };
    let send = |cookie: String, form: Vec<(&'static str, String)>| {
        let base = base.clone();
        async move {
            let response = client()
                .post(format!("{base}/console/act"))
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    assert_eq!(send(alice.clone(), act("take", vec![])).await.0, 303);
    let reply = act(
        "reply",
        vec![("text", "您好，我是 alice，马上为您查".to_string())],
    );
    assert_eq!(send(alice.clone(), reply).await.0, 303);
    let bob = session_cookie(&log_in(&base, "bob", PASSWORD).await);
    let (_, bob_page) = get(&base, "/console", &bob).await;
    let bob_token = csrf(&bob_page);
    let mut intrude = act("reply", vec![("text", "我是 bob".to_string())]);
    intrude[0].1 = bob_token.clone();
    let (status, body) = send(bob.clone(), intrude).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("alice is handling"), "{body}");
    let mut close = act("close", vec![]);
    close[0].1 = bob_token;
    assert_eq!(send(bob.clone(), close).await.0, 409, "bob cannot close it");

    let transcript = server.other.agents.transcript(&customer).await.unwrap();
    assert!(transcript.iter().any(|l| l.text.contains("我是 alice")));
    assert!(!transcript.iter().any(|l| l.text.contains("我是 bob")));

    // A ticket from the console: the customer is told its number.
    let ticket = act(
        "ticket",
        vec![
            ("kind", "card_key".to_string()),
            ("description", "卡密未收到".to_string()),
            ("form", "f1".to_string()),
        ],
    );
    assert_eq!(send(alice.clone(), ticket.clone()).await.0, 303);
    assert_eq!(send(alice.clone(), ticket).await.0, 303, "sent twice");
    let tickets = server
        .other
        .agents
        .tickets()
        .for_customer("test", "buyer-<1>")
        .await
        .unwrap();
    assert_eq!(tickets.len(), 1);
    let transcript = server.other.agents.transcript(&customer).await.unwrap();
    assert!(transcript.last().unwrap().text.contains(&tickets[0].number));
    let told = transcript
        .iter()
        .filter(|l| l.text.contains(&tickets[0].number))
        .count();
    assert_eq!(told, 1, "the customer is told once");

    // The ticket moves on from the console; the customer hears of it.
    let update = act(
        "ticket_update",
        vec![
            ("ticket", tickets[0].number.clone()),
            ("status", "resolved".to_string()),
            ("note", "已补发卡密".to_string()),
        ],
    );
    assert_eq!(send(alice.clone(), update).await.0, 303);
    let transcript = server.other.agents.transcript(&customer).await.unwrap();
    assert!(transcript.last().unwrap().text.contains("已补发卡密"));
    let mut forged = act(
        "ticket_update",
        vec![
            ("ticket", "T19990101000001".to_string()),
            ("status", "closed".to_string()),
        ],
    );
    forged[0].1 = token.clone();
    assert_eq!(send(alice.clone(), forged).await.0, 404);

    // Closing sends the survey; the customer rates 5.
    assert_eq!(send(alice.clone(), act("close", vec![])).await.0, 303);
    engine.handle(say("m3", "5")).await.unwrap();
    let (_, page) = get(&base, &format!("/console/conversation?{query}"), &alice).await;
    assert!(page.contains("5/5"), "the rating is in the context panel");
    assert!(page.contains(&tickets[0].number), "and the ticket");

    // The dashboard: one hand-off, one rating of 5, the first-reply time.
    let (status, dashboard) = get(&base, "/console/dashboard?days=7", &alice).await;
    assert_eq!(status, 200);
    let tile = |id: &str| {
        let at = dashboard.find(&format!("id=\"{id}\"")).unwrap();
        let value = dashboard[at..].find("class=\"value\">").unwrap() + at + 14;
        dashboard[value..value + dashboard[value..].find('<').unwrap()].to_string()
    };
    assert_eq!(tile("handoffs"), "1");
    assert_eq!(tile("handoff-rate"), "100%", "one conversation, handed off");
    assert_eq!(tile("ratings"), "1");
    assert_eq!(tile("csat"), "5.00");
    assert_ne!(tile("first-reply"), "—");
    let metrics = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kefu_report_csat_average 5"), "{metrics}");
    assert!(server
        .other
        .db
        .queue()
        .waiting(None)
        .await
        .unwrap()
        .is_empty());
    server.stop().await;
}

/// Reads the console's event stream until a change naming `id`.
async fn heard(stream: &mut reqwest::Response, buffer: &mut String, id: &str) {
    loop {
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            if line.trim_end() == format!("data: {id}") {
                return;
            }
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(15), stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no change for {id} within 15 s"))
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgresql_share_the_live_queue_and_one_agent_wins_a_race() {
    let url = std::env::var("KEFU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("kefu_console_{}_{nanos}", std::process::id());
    let yaml = format!("storage:\n  url: {url}\n  schema: {schema}\n");
    let a = Server::with_yaml(&yaml).await;
    let b = Server::with_yaml(&yaml).await;
    a.add("alice", Role::Agent).await;
    a.add("bob", Role::Agent).await;

    // alice's console page is on A; its live stream too. Her session works on B as well.
    let alice = session_cookie(&log_in(&a.base, "alice", PASSWORD).await);
    let mut stream = client()
        .get(format!("{}/console/events", a.base))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (status, page) = get(&b.base, "/console", &alice).await;
    assert_eq!(status, 200, "a session made on A is valid on B");
    let alice_token = csrf(&page);

    // A customer hands off in B's web chat: A's console hears of it (B announces it on the
    // database, A listens).
    let customer_http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let chat = customer_http
        .get(format!("{}/chat", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = chat.find("data-csrf=\"").unwrap() + "data-csrf=\"".len();
    let chat_token = &chat[at..at + 32];
    let sent = customer_http
        .post(format!("{}/chat/messages", b.base))
        .header("x-kefu-csrf", chat_token)
        .json(&serde_json::json!({"id": "m1", "text": "转人工"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let waiting = a.other.db.queue().waiting(None).await.unwrap();
    assert_eq!(waiting.len(), 1);
    let customer = waiting[0].conversation.clone();
    let mut buffer = String::new();
    heard(
        &mut stream,
        &mut buffer,
        &kefu_app::console::change_id(&customer),
    )
    .await;
    let (_, queue) = get(&a.base, "/console/queue", &alice).await;
    assert!(queue.contains(&customer.id), "{queue}");

    // alice on A and bob on B take it at the same moment: one wins, the other is told who.
    let bob = session_cookie(&log_in(&b.base, "bob", PASSWORD).await);
    let (_, page) = get(&b.base, "/console", &bob).await;
    let bob_token = csrf(&page);
    let (c, id) = (customer.channel.clone(), customer.id.clone());
    let take = |base: String, cookie: String, token: String| {
        let (c, id) = (c.clone(), id.clone());
        async move {
            let response = client()
                .post(format!("{base}/console/act"))
                .header("cookie", cookie)
                .form(&[
                    ("csrf", token.as_str()),
                    ("op", "take"),
                    ("c", c.as_str()),
                    ("id", id.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let (one, two) = tokio::join!(
        take(a.base.clone(), alice.clone(), alice_token),
        take(b.base.clone(), bob.clone(), bob_token)
    );
    let mut statuses = [one.0, two.0];
    statuses.sort();
    assert_eq!(statuses, [303, 409], "{one:?} {two:?}");
    let loser = if one.0 == 409 { &one.1 } else { &two.1 };
    assert!(loser.contains("is handling this conversation"), "{loser}");
    let owner = a.other.db.queue().claimed_by(&customer).await.unwrap();
    assert!(
        matches!(owner.as_deref(), Some("alice" | "bob")),
        "{owner:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_keys_are_masked_in_the_console_and_revealing_one_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    // The order tables are the order system (they are still empty when the server starts).
    let server = Server::start(dir.path(), "orders:\n  backend: tables\n").await;
    server.add("alice", Role::Agent).await;
    server.add("bob", Role::Agent).await;
    let csv = "order_no,product,status,amount,buyer_channel,buyer_user,paid_at,card_keys\n\
               DD20261203000001,Steam 100,delivered,100,test,keybuyer,2026-12-01 10:00,ABCD-EFGH-IJKL-MNOP\n";
    let records = kefu_orders_file::parse_orders(
        Path::new("orders.csv"),
        csv,
        &kefu_orders_file::ImportOptions::default(),
    )
    .unwrap();
    server.other.db.orders().import(&records).await.unwrap();
    let base = server.base.clone();
    let customer = ConversationKey::new("test", "keybuyer");
    server
        .other
        .engine
        .handle(Inbound::new(customer.clone(), "keybuyer", "m1", "人工"))
        .await
        .unwrap();
    let alice = session_cookie(&log_in(&base, "alice", PASSWORD).await);
    let query = kefu_app::console::conversation_query(&customer);
    let (_, page) = get(&base, &format!("/console/conversation?{query}"), &alice).await;
    assert!(
        page.contains("DD20261203000001"),
        "the order is in the context panel"
    );
    assert!(!page.contains("ABCD-EFGH-IJKL-MNOP"), "never the whole key");
    assert!(page.contains("****"), "masked: {page}");
    let token = csrf(&page);
    let reveal = |cookie: String, token: String, order: &'static str, reason: &'static str| {
        let base = base.clone();
        async move {
            let response = client()
                .post(format!("{base}/console/act"))
                .header("cookie", cookie)
                .form(&[
                    ("csrf", token.as_str()),
                    ("op", "reveal"),
                    ("c", "test"),
                    ("id", "keybuyer"),
                    ("order", order),
                    ("reason", reason),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // No reason, or an order that is not this customer's: refused, nothing recorded.
    assert_eq!(
        reveal(alice.clone(), token.clone(), "DD20261203000001", "")
            .await
            .0,
        400
    );
    assert_eq!(
        reveal(alice.clone(), token.clone(), "DD1", "查看").await.0,
        403
    );
    // alice takes the case; bob may not see its keys.
    server
        .other
        .agents
        .take(&customer, "alice", 3)
        .await
        .unwrap();
    let bob = session_cookie(&log_in(&base, "bob", PASSWORD).await);
    let (_, bob_page) = get(&base, "/console", &bob).await;
    let (status, _) = reveal(bob, csrf(&bob_page), "DD20261203000001", "好奇").await;
    assert_eq!(status, 409);
    let (status, shown) = reveal(alice, token, "DD20261203000001", "客户说卡密页面打不开").await;
    assert_eq!(status, 200);
    assert!(
        shown.contains("ABCD-EFGH-IJKL-MNOP"),
        "shown once, on this response"
    );
    use kefu_core::AuditLog;
    let audit = server
        .other
        .db
        .audit()
        .for_subject("DD20261203000001")
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "agent:alice");
    assert!(audit[0].detail.contains("客户说卡密页面打不开"));
    assert!(
        !audit[0].detail.contains("ABCD-EFGH-IJKL-MNOP"),
        "the log keeps it masked"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_at_capacity_gets_no_more_from_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "").await;
    server.add("alice", Role::Agent).await;
    server
        .other
        .db
        .accounts()
        .set_capacity("alice", 1)
        .await
        .unwrap();
    for chat in ["c1", "c2"] {
        server
            .other
            .engine
            .handle(Inbound::new(
                ConversationKey::new("test", chat),
                chat,
                "m1",
                "转人工",
            ))
            .await
            .unwrap();
    }
    let base = server.base.clone();
    let alice = session_cookie(&log_in(&base, "alice", PASSWORD).await);
    let (_, page) = get(&base, "/console", &alice).await;
    let token = csrf(&page);
    let next = [
        ("csrf", token.as_str()),
        ("op", "claim"),
        ("group", "general"),
    ];
    let (status, location, _) = post(&base, "/console/act", &alice, &next).await;
    assert_eq!(status, 303);
    assert!(
        location.contains("id=c1"),
        "the longest waiting first: {location}"
    );
    let (status, _, body) = post(&base, "/console/act", &alice, &next).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("capacity"), "{body}");
    let take = [
        ("csrf", token.as_str()),
        ("op", "take"),
        ("c", "test"),
        ("id", "c2"),
    ];
    assert_eq!(post(&base, "/console/act", &alice, &take).await.0, 409);
    assert_eq!(
        server.other.db.queue().waiting(None).await.unwrap().len(),
        1
    );
    server.stop().await;
}
