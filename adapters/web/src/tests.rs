//! The web chat over real HTTP on loopback, with the engine on memory stores.

use super::*;
use kefu_core::testing::OneEntry;

struct Server {
    base: String,
    chat: Arc<WebChat>,
    engine: Arc<Engine>,
}

async fn server(per_conversation_per_minute: u32) -> Server {
    let kb = Arc::new(OneEntry::new(
        "service.hours",
        "hours",
        "9点到24点",
        "We are here 9:00 to 24:00.",
    ));
    let engine = Arc::new(Engine::builder(kb).build());
    let chat = WebChat::new(
        engine.clone(),
        WebChatSettings {
            key: CookieKey::new(*b"test key of the web chat tests.."),
            max_body_bytes: 4096,
            per_ip_per_minute: 0,
            per_conversation_per_minute,
            secure_cookie: false,
            default_locale: Locale::Zh,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = chat.router();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    Server { base, chat, engine }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Opens the chat in `http`: the page's CSRF token and the conversation id of its cookie.
async fn open(http: &reqwest::Client, base: &str) -> (String, String) {
    let page = http.get(format!("{base}/chat")).send().await.unwrap();
    let cookie = page.headers()[SET_COOKIE].to_str().unwrap();
    let id = cookie["kefu_chat=".len()..]
        .split('.')
        .next()
        .unwrap()
        .to_string();
    (csrf(&page.text().await.unwrap()), id)
}

/// The chat page as `http` sees it.
async fn page_of(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/chat"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The CSRF token in a page.
fn csrf(page: &str) -> String {
    let start = page.find("data-csrf=\"").unwrap() + "data-csrf=\"".len();
    page[start..start + 32].to_string()
}

async fn say(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    text: &str,
) -> reqwest::Response {
    http.post(format!("{base}/chat/messages"))
        .header("x-kefu-csrf", token)
        .json(&serde_json::json!({ "id": id, "text": text }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_asks_and_the_page_keeps_the_conversation_across_reloads() {
    let s = server(0).await;
    let http = browser();
    let page = http
        .get(format!("{}/chat", s.base))
        .header("accept-language", "en-US,en;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("kefu_chat=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let page = page.text().await.unwrap();
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    let token = csrf(&page);

    let answer = say(&http, &s.base, &token, "m1", "what are your hours?").await;
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["replies"][0]["text"], "We are here 9:00 to 24:00.");

    // A retry of the same message is answered the same and handled once.
    let again: serde_json::Value = say(&http, &s.base, &token, "m1", "what are your hours?")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["replies"][0]["text"], "We are here 9:00 to 24:00.");

    // A reload shows the conversation, once, and sets no new cookie.
    let reload = http.get(format!("{}/chat", s.base)).send().await.unwrap();
    assert!(reload.headers().get(SET_COOKIE).is_none());
    let reload = reload.text().await.unwrap();
    assert_eq!(
        reload.matches("what are your hours?").count(),
        1,
        "{reload}"
    );
    assert!(reload.contains("We are here 9:00 to 24:00."), "{reload}");
    assert!(reload.contains(r#"data-next="2""#), "{reload}");

    // Another browser has its own conversation.
    let other = page_of(&browser(), &s.base).await;
    assert!(!other.contains("what are your hours?"));
    assert!(
        other.contains(r#"<html lang="zh-CN">"#),
        "the default language"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buttons_come_with_replies_and_survive_a_reload() {
    let s = server(0).await;
    let http = browser();
    let page = page_of(&http, &s.base).await;
    let token = csrf(&page);
    let answer: serde_json::Value = say(&http, &s.base, &token, "m1", "asdfgh qwerty")
        .await
        .json()
        .await
        .unwrap();
    let buttons = answer["replies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["quick_replies"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    assert!(
        !buttons.is_empty(),
        "a reply the bot is unsure of offers a person: {answer}"
    );
    let label = buttons[0]["label"].as_str().unwrap();
    let reload = page_of(&http, &s.base).await;
    assert!(
        reload.contains(&format!(">{}</button>", page::escape(label))),
        "{reload}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_without_the_cookie_or_token_or_within_limits_are_refused() {
    let s = server(3).await;
    let http = browser();
    // No cookie yet.
    let refused = say(&http, &s.base, "00", "m1", "hi").await;
    assert_eq!(refused.status(), 403);
    let page = page_of(&http, &s.base).await;
    let token = csrf(&page);
    // A wrong token (a page of another conversation, a forged form).
    let other_page = page_of(&browser(), &s.base).await;
    assert_eq!(
        say(&http, &s.base, &csrf(&other_page), "m1", "hi")
            .await
            .status(),
        403
    );
    // A forged cookie.
    let forged = reqwest::Client::new()
        .post(format!("{}/chat/messages", s.base))
        .header(
            "cookie",
            "kefu_chat=00112233445566778899aabbccddeeff.00112233445566778899aabbccddeeff",
        )
        .header("x-kefu-csrf", &token)
        .json(&serde_json::json!({"id": "m1", "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Malformed, empty, too long, oversize.
    let malformed = http
        .post(format!("{}/chat/messages", s.base))
        .header("x-kefu-csrf", &token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(say(&http, &s.base, &token, "m1", "   ").await.status(), 400);
    assert_eq!(
        say(&http, &s.base, &token, "bad id!", "hi").await.status(),
        400
    );
    let long = "好".repeat(MAX_TEXT_CHARS + 1);
    assert_eq!(
        say(&http, &s.base, &token, "m1", &long).await.status(),
        413,
        "over 4096 bytes"
    );
    let long = "a".repeat(MAX_TEXT_CHARS + 1);
    assert_eq!(say(&http, &s.base, &token, "m1", &long).await.status(), 400);
    // The per-conversation limit: a burst of 5 (the GCRA tolerance), then 429.
    let mut statuses = Vec::new();
    for i in 0..7 {
        let r = say(&http, &s.base, &token, &format!("r{i}"), "hours?").await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 2], "{statuses:?}");
    let counts = s.chat.refusals().snapshot();
    let count = |r: Refusal| counts.iter().find(|(c, _)| *c == r).unwrap().1;
    assert_eq!(count(Refusal::Forged), 1, "the other conversation's token");
    assert_eq!(
        count(Refusal::NoConversation),
        2,
        "no cookie, a forged cookie"
    );
    assert_eq!(count(Refusal::RateLimitedConversation), 2);
    assert_eq!(count(Refusal::TooLarge), 1);
}

/// Reads server-sent events until one named `lines` arrives; its data.
async fn next_lines(stream: &mut reqwest::Response, buffer: &mut String) -> serde_json::Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: lines") {
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                return serde_json::from_str(data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_messages_arrive_live_on_the_open_page() {
    let s = server(0).await;
    let http = browser();
    let (token, id) = open(&http, &s.base).await;
    assert_eq!(
        say(&http, &s.base, &token, "m1", "转人工").await.status(),
        200
    );
    let mut stream = http
        .get(format!("{}/chat/events?from=0", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut buffer = String::new();
    // What the page may not have yet comes first.
    let first = next_lines(&mut stream, &mut buffer).await;
    assert_eq!(first["lines"][0]["speaker"], "customer");
    assert_eq!(first["lines"][0]["message_id"], "m1");
    let shown = first["next"].as_u64().unwrap();
    assert!(first.get("decision").is_none() && first["lines"][0].get("confidence").is_none());

    // An agent answers; the outbox delivers through the web channel, which wakes the page.
    let key = ConversationKey::new(CHANNEL, id.as_str());
    let agents = s.engine.agents();
    let claimed = agents.claim("general", "alice").await.unwrap().unwrap();
    assert_eq!(claimed.conversation, key);
    let sent = agents
        .message(&key, "alice", "您好，我是小王，请问订单号是多少？")
        .await
        .unwrap();
    s.chat.channel().deliver(&sent, "outbox-1").await.unwrap();
    let mut texts = Vec::new();
    while !texts.iter().any(|t: &String| t.contains("小王")) {
        let more = next_lines(&mut stream, &mut buffer).await;
        assert!(more["next"].as_u64().unwrap() > shown);
        for line in more["lines"].as_array().unwrap() {
            texts.push(line["text"].as_str().unwrap().to_string());
            if line["text"].as_str().unwrap().contains("小王") {
                assert_eq!(line["speaker"], "agent");
            }
        }
    }

    // Stopping the server ends the stream (so a graceful shutdown is not held up by pages).
    s.chat.close();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(_)) = stream.chunk().await {}
        })
        .await
        .is_ok(),
        "closing ends the stream"
    );
}
