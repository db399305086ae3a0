//! One `kefu serve`, as an operator runs it, with the Telegram and Discord bots and a WeChat
//! Official Account all on — pointed at fake Telegram and Discord servers on loopback, so the
//! real teloxide and serenity clients are what talks: a Telegram customer asks for a person,
//! an agent takes the conversation in the console and replies, and the reply reaches
//! Telegram; a Discord direct message and a signed WeChat message are answered by the same
//! process.

mod running;

use kefu_discord::testing::{message_json, FakeDiscord, APP_ID, TOKEN as DISCORD_TOKEN};
use kefu_telegram::testing::{private_text, FakeBotApi};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const TELEGRAM_TOKEN: &str = "424242:serve-test-token";
const PASSWORD: &str = "a long enough password";
const WAIT: Duration = Duration::from_secs(30);

fn add_agent(config: &std::path::Path, name: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("--config")
        .arg(config)
        .args(["agents", "add", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A console page as the agent with `cookie` sees it: its status and text.
async fn page(base: &str, path: &str, cookie: &str) -> (u16, String) {
    let response = client()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls `check` until it gives something, at most [`WAIT`].
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_runs_both_bots_and_an_agents_console_reply_reaches_telegram() {
    let telegram = FakeBotApi::start(TELEGRAM_TOKEN).await;
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kefu.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  url: sqlite://{dir}/kefu.db\n\
             channels:\n  telegram:\n    token_env: TEST_TG_TOKEN\n    api_url: {tg}\n\
             \x20 discord:\n    token_env: TEST_DC_TOKEN\n    application_id: {APP_ID}\n    api_url: {dc}\n\
             \x20 wechat:\n    app_id: wxtest\n    token_env: TEST_WX_TOKEN\n    app_secret_env: TEST_WX_SECRET\n",
            dir = dir.path().display(),
            tg = telegram.url,
            dc = discord.api_url,
        ),
    )
    .unwrap();
    add_agent(&config, "alice");
    let (mut server, addr) = running::serve_with_env(
        dir.path(),
        Some(&config),
        &[
            ("TEST_TG_TOKEN", TELEGRAM_TOKEN),
            ("TEST_DC_TOKEN", DISCORD_TOKEN),
            ("TEST_WX_TOKEN", "wx-token"),
            ("TEST_WX_SECRET", "wx-secret"),
        ],
    );
    let base = format!("http://{addr}");

    // A Telegram customer asks for a person.
    telegram.push(private_text(1, 9001, 1, "转人工", "zh-hans"));
    let handed = telegram
        .wait_sent(WAIT, |sent| sent.iter().any(|s| s.chat_id == 9001))
        .await;
    assert!(
        handed
            .iter()
            .any(|s| s.chat_id == 9001 && s.text.contains("人工")),
        "{handed:#?}"
    );

    // Discord is up in the same process: a direct message is answered.
    eventually("the Discord bot registers its commands", || {
        (!discord
            .state
            .requests("PUT", &format!("/api/v10/applications/{APP_ID}/commands"))
            .is_empty())
        .then_some(())
    })
    .await;
    discord.dispatch(
        "MESSAGE_CREATE",
        message_json(
            5001,
            6001,
            None,
            7001,
            false,
            "how long does a refund take",
            &[],
        ),
    );
    let answer = eventually("a Discord reply", || {
        discord.state.posted(6001).first().cloned()
    })
    .await;
    assert!(
        answer["content"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refund"),
        "{answer}"
    );

    // WeChat: a signed plaintext message is answered in WeChat's passive reply.
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signature = kefu_wechat::crypto::signature(&["wx-token", &timestamp, "n0nce"]);
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[o-customer]]></FromUserName>\
         <CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[退款多久到账]]></Content><MsgId>1234567890123456</MsgId></xml>"
    );
    let answer = client()
        .post(format!(
            "{base}/wechat/mp?signature={signature}&timestamp={timestamp}&nonce=n0nce&openid=o-customer"
        ))
        .body(xml.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let reply = kefu_wechat::xml::parse_text_reply(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(reply.to_user, "o-customer");
    assert!(reply.content.contains("退款"), "{}", reply.content);
    let forged = client()
        .post(format!(
            "{base}/wechat/mp?signature={}&timestamp={timestamp}&nonce=n0nce",
            "0".repeat(40)
        ))
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // An agent logs in to the console, takes the Telegram conversation and replies.
    let login = client()
        .post(format!("{base}/console/login"))
        .form(&[("name", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, queue) = page(&base, "/console", &cookie).await;
    assert!(
        queue.contains("telegram"),
        "the queue shows the Telegram customer"
    );
    let at = queue.find("name=\"csrf\" value=\"").expect("a csrf token") + 19;
    let csrf = queue[at..at + queue[at..].find('"').unwrap()].to_string();
    let act = |op: &'static str, extra: Vec<(&'static str, &'static str)>| {
        let mut form = vec![
            ("csrf", csrf.clone()),
            ("op", op.to_string()),
            ("c", "telegram".to_string()),
            ("id", "9001".to_string()),
        ];
        form.extend(extra.into_iter().map(|(k, v)| (k, v.to_string())));
        client()
            .post(format!("{base}/console/act"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };
    let took = act("take", vec![]).await.unwrap();
    assert!(
        took.status().is_redirection() || took.status().is_success(),
        "{took:?}"
    );
    let replied = act("reply", vec![("text", "您好，我是客服小王，这就帮您查")])
        .await
        .unwrap();
    assert!(
        replied.status().is_redirection() || replied.status().is_success(),
        "{replied:?}"
    );
    let sent = telegram
        .wait_sent(WAIT, |sent| {
            sent.iter()
                .any(|s| s.chat_id == 9001 && s.text == "您好，我是客服小王，这就帮您查")
        })
        .await;
    assert!(
        sent.iter()
            .any(|s| s.chat_id == 9001 && s.text == "您好，我是客服小王，这就帮您查"),
        "the agent's reply reached Telegram: {sent:#?}"
    );
    // A group member's conversation warns the agent that replies there are public.
    telegram.push(kefu_telegram::testing::group_text(
        3,
        -100777,
        9002,
        70,
        "转人工",
        true,
    ));
    let group = "/console/conversation?c=telegram&id=-100777%3A9002";
    let mut group_page = page(&base, group, &cookie).await;
    for _ in 0..200 {
        if group_page.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        group_page = page(&base, group, &cookie).await;
    }
    assert!(group_page.1.contains("id=\"group-chat\""), "{group_page:?}");
    let private = "/console/conversation?c=telegram&id=9001";
    assert!(!page(&base, private, &cookie)
        .await
        .1
        .contains("id=\"group-chat\""));
    // The customer's answer reaches the console's transcript, not the bot.
    telegram.push(private_text(
        2,
        9001,
        2,
        "好的，订单是 DD20261203000009",
        "zh-hans",
    ));
    let transcript_has_it = async {
        for _ in 0..200 {
            if page(&base, private, &cookie)
                .await
                .1
                .contains("DD20261203000009")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        transcript_has_it.await,
        "the agent sees the customer's answer"
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kefu_turns_total{channel=\"telegram\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("kefu_turns_total{channel=\"discord\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "kefu_channel_rejections_total{channel=\"wechat\",cause=\"signature_mismatch\"} 1"
        ),
        "{metrics}"
    );
    server.terminate();
    assert!(server.wait_exit(20).success());
}
