//! The Official Account callback end to end: a real axum server on loopback, requests signed
//! and encrypted by Python (see `vectors/mod.rs`) or, where a test needs fresh timestamps
//! and message ids, by the crate's `crypto` functions (which the vector tests pin to Python's
//! output), the real engine, the outbox worker, and a fake WeChat API.

mod common;
mod vectors;

use common::*;
use kefu_core::outbox::Clock;
use kefu_core::{ConversationKey, Outbound, OutboundKind, QuickReply, SendError, Speaker};
use kefu_wechat::{crypto, xml, Cause, Wechat, WechatSettings, CHANNEL, MP_PATH};
use std::sync::Arc;
use std::time::Duration;
use vectors as v;

struct Rig {
    wechat: Arc<Wechat>,
    store: Arc<Gated>,
    url: String,
    fake: FakeApi,
    http: reqwest::Client,
}

impl Rig {
    async fn start(store: Arc<Gated>, tune: impl FnOnce(&mut WechatSettings)) -> Rig {
        let fake = FakeApi::start().await;
        let engine = engine(store.clone());
        let wake = Arc::new(tokio::sync::Notify::new());
        let outbox = kefu_core::ConversationStore::outbox(&*store);
        let mut settings = WechatSettings::new(v::TOKEN, v::APP_ID, SECRET);
        settings.encoding_aes_key = Some(v::AES_KEY.to_string());
        settings.api_url = Some(fake.url.clone());
        tune(&mut settings);
        let wechat = Wechat::new(engine, outbox.clone(), wake.clone(), settings).unwrap();
        run_worker(outbox, wake, wechat.channel());
        let url = serve(wechat.router()).await;
        Rig {
            wechat,
            store,
            url,
            fake,
            http: reqwest::Client::new(),
        }
    }

    /// At the vectors' time.
    async fn at_vector_time(store: Arc<Gated>) -> Rig {
        Rig::start(store, |s| {
            s.clock = Clock::manual(v::TIMESTAMP.parse::<u64>().unwrap() * 1000)
        })
        .await
    }

    async fn post(&self, query: &str, body: impl Into<String>) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}{MP_PATH}?{query}", self.url))
            .body(body.into())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A plaintext-mode POST signed now with a fresh nonce.
    async fn post_plain(&self, nonce: &str, body: impl Into<String>) -> (u16, String) {
        let ts = now_secs();
        let sig = crypto::signature(&[v::TOKEN, &ts, nonce]);
        self.post(
            &format!("signature={sig}&timestamp={ts}&nonce={nonce}"),
            body,
        )
        .await
    }

    async fn customer_lines(&self, openid: &str) -> usize {
        let key = ConversationKey::new(CHANNEL, openid);
        kefu_core::ConversationStore::transcript(&*self.store, &key)
            .await
            .unwrap()
            .iter()
            .filter(|l| l.speaker == Speaker::Customer)
            .count()
    }

    fn refused(&self, cause: Cause) -> u64 {
        self.wechat
            .rejections()
            .snapshot()
            .into_iter()
            .find(|(c, _)| *c == cause)
            .map_or(0, |(_, n)| n)
    }
}

fn envelope(encrypt: &str) -> String {
    format!("<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
}

/// Opens an encrypted passive reply: checks its signature and decrypts it (both pinned to
/// Python's output by the vector tests).
fn open_reply(body: &str) -> xml::TextReply {
    let env = xml::parse_reply_envelope(body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        crypto::signature(&[v::TOKEN, &env.timestamp, &env.nonce, &env.encrypt]),
        env.msg_signature,
        "the reply's msg_signature"
    );
    let crypt = crypto::MessageCrypt::new(v::AES_KEY, v::APP_ID).unwrap();
    let plain = crypt.decrypt(&env.encrypt).unwrap();
    xml::parse_text_reply(plain.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_check_echoes_on_a_valid_signature_and_refuses_a_forged_one() {
    let rig = Rig::start(Gated::new(true), |_| {}).await;
    let get = |query: String| {
        let http = rig.http.clone();
        let url = format!("{}{MP_PATH}?{query}", rig.url);
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let ok = format!(
        "signature={}&timestamp={}&nonce={}&echostr=7381947259",
        v::SIGNATURE,
        v::TIMESTAMP,
        v::NONCE
    );
    assert_eq!(get(ok).await, (200, "7381947259".to_string()));
    let forged = format!(
        "signature={}&timestamp={}&nonce=1234567891&echostr=7381947259",
        v::SIGNATURE,
        v::TIMESTAMP
    );
    assert_eq!(get(forged).await.0, 403);
    assert_eq!(get("echostr=1".into()).await.0, 403);
    assert_eq!(rig.refused(Cause::Signature), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_message_from_python_gets_a_passive_reply() {
    let rig = Rig::at_vector_time(Gated::new(true)).await;
    let query = format!(
        "signature={}&timestamp={}&nonce={}",
        v::SIGNATURE,
        v::TIMESTAMP,
        v::NONCE
    );
    let (status, body) = rig.post(&query, v::MSG).await;
    assert_eq!(status, 200, "{body}");
    let reply = xml::parse_text_reply(body.as_bytes()).unwrap();
    assert_eq!(reply.to_user, "oUser123");
    assert_eq!(reply.from_user, "gh_kefu");
    assert!(reply.content.contains(ANSWER_ZH), "{}", reply.content);
    assert_eq!(rig.customer_lines("oUser123").await, 1);
    // Nothing went through the API: the answer was passive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rig.fake.sends().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_safe_mode_message_from_python_is_answered_encrypted() {
    let rig = Rig::at_vector_time(Gated::new(true)).await;
    let query = format!(
        "signature={}&timestamp={}&nonce={}&openid=oUser123&encrypt_type=aes&msg_signature={}",
        v::SIGNATURE,
        v::TIMESTAMP,
        v::NONCE,
        v::MSG_SIGNATURE
    );
    let (status, body) = rig.post(&query, envelope(v::ENCRYPTED_MSG)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(ANSWER_ZH), "the reply must be encrypted");
    let reply = open_reply(&body);
    assert_eq!(reply.to_user, "oUser123");
    assert!(reply.content.contains(ANSWER_ZH), "{}", reply.content);

    // Compatible mode: plaintext fields and Encrypt together; the encrypted one counts.
    let compat = v::MSG.replace(
        "</xml>",
        &format!("<Encrypt><![CDATA[{}]]></Encrypt></xml>", v::ENCRYPTED_MSG),
    );
    let (status, body) = rig.post(&query, compat).await;
    // The same message again (same MsgId): a retry after completion, no second turn.
    assert_eq!((status, body.as_str()), (200, "success"));
    assert_eq!(rig.customer_lines("oUser123").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signatures_and_a_wrong_appid_are_refused_and_nothing_is_processed() {
    let rig = Rig::at_vector_time(Gated::new(true)).await;
    let base = format!("timestamp={}&nonce={}", v::TIMESTAMP, v::NONCE);
    // A wrong `signature`.
    let forged = format!("signature={}&{base}", "0".repeat(40));
    assert_eq!(rig.post(&forged, v::MSG).await.0, 403);
    // No signature at all.
    assert_eq!(rig.post(&base, v::MSG).await.0, 403);
    // Safe mode with a wrong msg_signature.
    let bad_msg_sig = format!(
        "signature={}&{base}&encrypt_type=aes&msg_signature={}",
        v::SIGNATURE,
        v::MSG_SIGNATURE_WRONG_APPID
    );
    assert_eq!(
        rig.post(&bad_msg_sig, envelope(v::ENCRYPTED_MSG)).await.0,
        403
    );
    assert_eq!(rig.refused(Cause::Signature), 3);
    // Correctly signed, but encrypted (by Python) for another AppID.
    let wrong_appid = format!(
        "signature={}&{base}&encrypt_type=aes&msg_signature={}",
        v::SIGNATURE,
        v::MSG_SIGNATURE_WRONG_APPID
    );
    let (status, body) = rig
        .post(&wrong_appid, envelope(v::ENCRYPTED_WRONG_APPID))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another AppID"), "{body}");
    assert_eq!(rig.refused(Cause::Decrypt), 1);
    assert_eq!(rig.customer_lines("oUser123").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_replayed_requests_are_refused() {
    let rig = Rig::start(Gated::new(true), |_| {}).await;
    // Correctly signed, but from ten minutes ago.
    let old = (kefu_core::conversation::now_millis() / 1000 - 600).to_string();
    let sig = crypto::signature(&[v::TOKEN, &old, "42"]);
    let (status, _) = rig
        .post(
            &format!("signature={sig}&timestamp={old}&nonce=42"),
            text_xml("oStale", "1001", "退款"),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(rig.refused(Cause::Stale), 1);

    // A fresh request, then its signed query string replayed with another body.
    let ts = now_secs();
    let sig = crypto::signature(&[v::TOKEN, &ts, "777"]);
    let query = format!("signature={sig}&timestamp={ts}&nonce=777");
    let (status, body) = rig.post(&query, text_xml("oA", "2001", "退款")).await;
    assert_eq!(status, 200);
    assert!(body.contains(ANSWER_ZH));
    let (status, body) = rig
        .post(&query, text_xml("oVictim", "2002", "转人工"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(rig.refused(Cause::Replayed), 1);
    assert_eq!(rig.customer_lines("oVictim").await, 0);
    // The identical request again (as WeChat's retry may be): no second turn or answer.
    let (status, body) = rig.post(&query, text_xml("oA", "2001", "退款")).await;
    assert_eq!((status, body.as_str()), (200, "success"));
    assert_eq!(rig.customer_lines("oA").await, 1);
    assert_eq!(rig.refused(Cause::Stale), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_racing_the_first_delivery_gets_one_answer_from_one_turn() {
    let store = Gated::new(false);
    let rig = Rig::start(store.clone(), |_| {}).await;
    let body = text_xml("oRace", "3001", "怎么退款");
    let first = {
        let (http, url) = (rig.http.clone(), rig.url.clone());
        let body = body.clone();
        tokio::spawn(async move {
            let ts = now_secs();
            let sig = crypto::signature(&[v::TOKEN, &ts, "1"]);
            let r = http
                .post(format!(
                    "{url}{MP_PATH}?signature={sig}&timestamp={ts}&nonce=1"
                ))
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    // The first delivery's turn is running (held at the store) when the retry arrives.
    store.until_entered(1).await;
    let retry = {
        let (http, url) = (rig.http.clone(), rig.url.clone());
        tokio::spawn(async move {
            let ts = now_secs();
            let sig = crypto::signature(&[v::TOKEN, &ts, "2"]);
            let r = http
                .post(format!(
                    "{url}{MP_PATH}?signature={sig}&timestamp={ts}&nonce=2"
                ))
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.release();
    let first = first.await.unwrap();
    let retry = retry.await.unwrap();
    assert_eq!((first.0, retry.0), (200, 200));
    let answers: Vec<&String> = [&first.1, &retry.1]
        .into_iter()
        .filter(|b| b.contains(ANSWER_ZH))
        .collect();
    assert_eq!(answers.len(), 1, "exactly one answer: {first:?} {retry:?}");
    // The latest delivery (the retry) carries it; the abandoned first says nothing.
    assert_eq!(first.1, "success");
    assert_eq!(store.commits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(rig.customer_lines("oRace").await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rig.fake.sends().is_empty(), "{:?}", rig.fake.sends());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_turn_answers_success_and_goes_through_the_customer_service_api() {
    let store = Gated::new(false);
    let rig = Rig::start(store.clone(), |s| {
        s.reply_budget = Duration::from_millis(300)
    })
    .await;
    let (status, body) = rig
        .post_plain("9", text_xml("oSlow", "4001", "退款要多久"))
        .await;
    assert_eq!((status, body.as_str()), (200, "success"));
    // A retry while the turn still runs: no second turn, nothing said.
    let (status, body) = rig
        .post_plain("10", text_xml("oSlow", "4001", "退款要多久"))
        .await;
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(rig.fake.sends().is_empty());
    store.release();
    let sends = rig.fake.until_sent(1).await;
    let send = &sends[0];
    assert_eq!(send.path, "/cgi-bin/message/custom/send");
    assert_eq!(send.query["access_token"], "TOKEN-1");
    assert_eq!(send.body["touser"], "oSlow");
    assert_eq!(send.body["msgtype"], "text");
    assert!(send.body["text"]["content"]
        .as_str()
        .unwrap()
        .contains(ANSWER_ZH));
    let token = &rig.fake.calls()[0];
    assert_eq!(token.path, "/cgi-bin/token");
    assert_eq!(token.query["grant_type"], "client_credential");
    assert_eq!(token.query["appid"], v::APP_ID);
    assert_eq!(token.query["secret"], SECRET);
    assert_eq!(store.commits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_messages_that_are_not_text() {
    let rig = Rig::start(Gated::new(true), |_| {}).await;
    let event = |from: &str, event: &str| {
        format!("<xml><ToUserName>gh_kefu</ToUserName><FromUserName>{from}</FromUserName><CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>{event}</Event></xml>")
    };
    let (status, body) = rig.post_plain("20", event("oNew", "subscribe")).await;
    assert_eq!(status, 200);
    let greeting = xml::parse_text_reply(body.as_bytes()).unwrap();
    assert!(!greeting.content.trim().is_empty());
    // The event delivered again (FromUserName + CreateTime): no second greeting.
    let (_, body) = rig.post_plain("21", event("oNew", "subscribe")).await;
    assert_eq!(body, "success");
    let (_, body) = rig.post_plain("22", event("oNew", "unsubscribe")).await;
    assert_eq!(body, "success");
    let image = "<xml><ToUserName>gh_kefu</ToUserName><FromUserName>oPic</FromUserName><CreateTime>1700000000</CreateTime><MsgType>image</MsgType><PicUrl>http://x/y.jpg</PicUrl><MediaId>m</MediaId><MsgId>5001</MsgId></xml>";
    let (status, body) = rig.post_plain("23", image).await;
    assert_eq!(status, 200);
    let reply = xml::parse_text_reply(body.as_bytes()).unwrap();
    assert!(reply.content.contains("文字") && reply.content.contains("type your question"));
    assert_eq!(rig.customer_lines("oPic").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_bodies_are_refused_clearly() {
    let rig = Rig::start(Gated::new(true), |s| s.max_body_bytes = 4096).await;
    let (status, _) = rig.post_plain("30", "<xml>".repeat(2000)).await;
    assert_eq!(status, 413);
    for (nonce, body) in [
        ("31", "not xml".to_string()),
        ("32", "<xml><ToUserName>gh</ToUserName>".to_string()),
        (
            "33",
            "<xml><ToUserName>gh</ToUserName><MsgType>text</MsgType></xml>".to_string(),
        ),
        ("34", String::new()),
    ] {
        let (status, message) = rig.post_plain(nonce, body).await;
        assert_eq!(status, 400, "{message}");
        assert!(
            message.contains("message") || message.contains("XML"),
            "{message}"
        );
    }
    let ts = now_secs();
    let sig = crypto::signature(&[v::TOKEN, &ts, "35"]);
    let response = rig
        .http
        .post(format!(
            "{}{MP_PATH}?signature={sig}&timestamp={ts}&nonce=35",
            rig.url
        ))
        .body(vec![0xffu8, 0xfe, 0x3c])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(rig.refused(Cause::TooLarge), 1);
    assert_eq!(rig.refused(Cause::Malformed), 5);
}

fn outbound(openid: &str, text: &str) -> Outbound {
    Outbound {
        conversation: ConversationKey::new(CHANNEL, openid),
        text: text.to_string(),
        quick_replies: Vec::new(),
        kind: OutboundKind::AgentMessage,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_and_the_message_sent_again() {
    let rig = Rig::start(Gated::new(true), |_| {}).await;
    let channel = rig.wechat.channel();
    assert_eq!(channel.name(), "wechat");
    channel.send(&outbound("oT", "first")).await.unwrap();
    // The cached token is used again.
    channel.send(&outbound("oT", "second")).await.unwrap();
    assert_eq!(rig.fake.token_requests(), 1);
    rig.fake.script(&[40001]);
    let mut message = outbound("oT", "third");
    message.quick_replies = vec![
        QuickReply::new("退款", "refund"),
        QuickReply::new("人工", "/human"),
    ];
    channel.send(&message).await.unwrap();
    assert_eq!(rig.fake.token_requests(), 2);
    let sends = rig.fake.sends();
    assert_eq!(sends.len(), 4);
    assert_eq!(sends[2].query["access_token"], "TOKEN-1");
    assert_eq!(sends[3].query["access_token"], "TOKEN-2");
    assert_eq!(
        sends[3].body["text"]["content"],
        "third\n\n1. 退款\n2. 人工"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errcodes_map_to_send_errors_without_leaking_the_secret() {
    let rig = Rig::start(Gated::new(true), |_| {}).await;
    let channel = rig.wechat.channel();
    type Expect = fn(&SendError) -> bool;
    let cases: [(i64, Expect); 7] = [
        (45015, |e| matches!(e, SendError::Unreachable(_))),
        (43004, |e| matches!(e, SendError::Unreachable(_))),
        (40003, |e| matches!(e, SendError::Unreachable(_))),
        (45047, |e| matches!(e, SendError::RateLimited { .. })),
        (45009, |e| matches!(e, SendError::RateLimited { .. })),
        (-1, |e| matches!(e, SendError::Unavailable(_))),
        (44004, |e| matches!(e, SendError::Rejected(_))),
    ];
    for (code, expected) in cases {
        rig.fake.script(&[code]);
        let e = channel.send(&outbound("oE", "hello")).await.unwrap_err();
        assert!(expected(&e), "errcode {code} gave {e:?}");
        let text = e.to_string();
        assert!(!text.contains(SECRET) && !text.contains("TOKEN-"), "{text}");
    }
    // A token refused twice in a row is not retried forever.
    rig.fake.script(&[42001, 42001]);
    let e = channel.send(&outbound("oE", "hello")).await.unwrap_err();
    assert!(matches!(e, SendError::Rejected(_)), "{e:?}");
    // The API unreachable: retry later, and the URL (token) is not in the error.
    let mut settings = WechatSettings::new(v::TOKEN, v::APP_ID, SECRET);
    settings.api_url = Some("http://127.0.0.1:9".into());
    let store = Gated::new(true);
    let down = Wechat::new(
        engine(store.clone()),
        kefu_core::ConversationStore::outbox(&*store),
        Arc::new(tokio::sync::Notify::new()),
        settings,
    )
    .unwrap();
    let e = down.channel().send(&outbound("oE", "x")).await.unwrap_err();
    assert!(matches!(e, SendError::Unavailable(_)), "{e:?}");
    assert!(!e.to_string().contains(SECRET), "{e}");
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let store = Gated::new(true);
    let make = |tune: fn(&mut WechatSettings)| {
        let mut settings = WechatSettings::new(v::TOKEN, v::APP_ID, SECRET);
        tune(&mut settings);
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains(SECRET) && !debug.contains(v::TOKEN),
            "{debug}"
        );
        Wechat::new(
            engine(store.clone()),
            kefu_core::ConversationStore::outbox(&*store),
            Arc::new(tokio::sync::Notify::new()),
            settings,
        )
        .map(|_| ())
    };
    assert!(make(|_| {}).is_ok());
    assert!(make(|s| s.token = " ".into()).is_err());
    assert!(make(|s| s.app_secret = String::new()).is_err());
    assert!(make(|s| s.encoding_aes_key = Some("too-short".into())).is_err());
    assert!(make(|s| s.api_url = Some("api.weixin.qq.com".into())).is_err());
    assert!(make(|s| s.reply_budget = Duration::from_secs(5)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_number_picks_the_line_of_the_list_the_bot_sent() {
    let rig = Rig::start(Gated::new(true), |_| {}).await;
    // Not understood: the bot offers a person as line 1.
    let (status, body) = rig
        .post_plain("nonce-n1", text_xml("oNumbers", "881", "天气怎么样"))
        .await;
    assert_eq!(status, 200, "{body}");
    let offer = xml::parse_text_reply(body.as_bytes()).unwrap();
    assert!(offer.content.contains("1. 转人工"), "{}", offer.content);
    // "1" is that line: a person, not another "I don't understand".
    let (status, body) = rig
        .post_plain("nonce-n2", text_xml("oNumbers", "882", "1"))
        .await;
    assert_eq!(status, 200, "{body}");
    let key = ConversationKey::new(CHANNEL, "oNumbers");
    let transcript = kefu_core::ConversationStore::transcript(&*rig.store, &key)
        .await
        .unwrap();
    let last = transcript.last().unwrap();
    assert_eq!(
        last.kind,
        Some(kefu_core::OutboundKind::Handoff),
        "{transcript:#?}"
    );
}
