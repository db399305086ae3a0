//! The WeCom application callback end to end: WeCom's published URL-check example, a
//! message encrypted by Python (see `vectors/mod.rs`), the slow path through the
//! application message API of a fake on loopback.

mod common;
mod vectors;

use common::*;
use kefu_core::outbox::Clock;
use kefu_wechat::{crypto, xml, Wecom, WecomSettings, WORK_PATH};
use std::sync::Arc;
use std::time::Duration;
use vectors as v;

async fn start(
    store: Arc<Gated>,
    token: &str,
    corp_id: &str,
    key: &str,
    tune: impl FnOnce(&mut WecomSettings),
) -> (Arc<Wecom>, String, FakeApi) {
    let fake = FakeApi::start().await;
    let wake = Arc::new(tokio::sync::Notify::new());
    let outbox = kefu_core::ConversationStore::outbox(&*store);
    let mut settings = WecomSettings::new(token, corp_id, SECRET, 1000002, key);
    settings.api_url = Some(fake.url.clone());
    tune(&mut settings);
    let wecom = Wecom::new(engine(store), outbox.clone(), wake.clone(), settings).unwrap();
    run_worker(outbox, wake, wecom.channel());
    let url = serve(wecom.router()).await;
    (wecom, url, fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_check_answers_wecoms_published_example_decrypted() {
    use v::published as p;
    let (wecom, url, _) = start(Gated::new(true), p::TOKEN, p::CORP_ID, p::AES_KEY, |_| {}).await;
    let http = reqwest::Client::new();
    // The echostr URL-encoded, as WeCom sends it.
    let echostr = p::ECHOSTR
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let query = format!(
        "msg_signature={}&timestamp={}&nonce={}&echostr={echostr}",
        p::MSG_SIGNATURE,
        p::TIMESTAMP,
        p::NONCE
    );
    let r = http
        .get(format!("{url}{WORK_PATH}?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), p::ECHO_PLAINTEXT);
    let forged = query.replace(p::NONCE, "263014781");
    let r = http
        .get(format!("{url}{WORK_PATH}?{forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(wecom.rejections().by_name()[0], ("signature_mismatch", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_from_python_is_answered_encrypted_once() {
    let at = v::WECOM_TIMESTAMP.parse::<u64>().unwrap() * 1000;
    let (wecom, url, fake) = start(Gated::new(true), v::TOKEN, v::CORP_ID, v::AES_KEY, |s| {
        s.clock = Clock::manual(at)
    })
    .await;
    let http = reqwest::Client::new();
    let query = format!(
        "msg_signature={}&timestamp={}&nonce={}",
        v::WECOM_MSG_SIGNATURE,
        v::WECOM_TIMESTAMP,
        v::WECOM_NONCE
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[{}]]></Encrypt></xml>",
        v::CORP_ID,
        v::WECOM_ENCRYPTED_MSG
    );
    let post = |body: String| {
        let (http, url, query) = (http.clone(), url.clone(), query.clone());
        async move {
            let r = http
                .post(format!("{url}{WORK_PATH}?{query}"))
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, reply) = post(body.clone()).await;
    assert_eq!(status, 200, "{reply}");
    let env = xml::parse_reply_envelope(reply.as_bytes()).unwrap();
    assert_eq!(
        crypto::signature(&[v::TOKEN, &env.timestamp, &env.nonce, &env.encrypt]),
        env.msg_signature
    );
    let plain = crypto::MessageCrypt::new(v::AES_KEY, v::CORP_ID)
        .unwrap()
        .decrypt(&env.encrypt)
        .unwrap();
    let reply = xml::parse_text_reply(plain.as_bytes()).unwrap();
    assert_eq!(reply.to_user, "zhangsan");
    assert!(reply.content.contains(ANSWER_ZH), "{}", reply.content);
    // WeCom retries it: no second turn, no second answer.
    assert_eq!(post(body).await, (200, "success".to_string()));
    // Plaintext is refused: WeCom always encrypts.
    let (status, _) = post(text_xml("zhangsan", "9", "退款")).await;
    assert_eq!(status, 400);
    assert_eq!(wecom.rejections().by_name()[5], ("malformed", 1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.sends().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_turn_goes_through_the_application_message_api() {
    let store = Gated::new(false);
    let (_wecom, url, fake) = start(store.clone(), v::TOKEN, v::CORP_ID, v::AES_KEY, |s| {
        s.reply_budget = Duration::from_millis(300)
    })
    .await;
    let crypt = crypto::MessageCrypt::new(v::AES_KEY, v::CORP_ID).unwrap();
    let ts = now_secs();
    let message = v::WECOM_MSG.replace("zhangsan", "lisi");
    let encrypted = crypt.encrypt(&message);
    let sig = crypto::signature(&[v::TOKEN, &ts, "8", &encrypted]);
    let r = reqwest::Client::new()
        .post(format!(
            "{url}{WORK_PATH}?msg_signature={sig}&timestamp={ts}&nonce=8"
        ))
        .body(format!(
            "<xml><ToUserName>{}</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>",
            v::CORP_ID
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "success");
    store.release();
    let sends = fake.until_sent(1).await;
    assert_eq!(sends[0].path, "/cgi-bin/message/send");
    assert_eq!(sends[0].body["touser"], "lisi");
    assert_eq!(sends[0].body["agentid"], 1000002);
    assert!(sends[0].body["text"]["content"]
        .as_str()
        .unwrap()
        .contains(ANSWER_ZH));
    let token = &fake.calls()[0];
    assert_eq!(token.path, "/cgi-bin/gettoken");
    assert_eq!(token.query["corpid"], v::CORP_ID);
    assert_eq!(token.query["corpsecret"], SECRET);
}
