//! `kefu serve`: the bot as a service — the customers' web chat (`/chat`), the agents'
//! console (`/console`), the signed webhook, the chat platforms' endpoints (Telegram's
//! webhook, Discord's interactions, WeChat's and WeCom's callbacks) and bots (Telegram's
//! polling, Discord's gateway), `/healthz`, `/readyz` and `/metrics` on one axum router,
//! the outbox worker and the SLA [supervisor](crate::supervisor) beside it, and a graceful
//! shutdown.

use crate::config::Config;
use crate::console::{load_canned, Console, ConsoleSettings};
use crate::App;
use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kefu_core::ConversationKey;
use kefu_sql::Signal;
use kefu_web::cookie::CookieKey;
use kefu_web::{WebChat, WebChatSettings};
use kefu_webhook::{Webhook, WebhookChannel, WebhookSettings};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the routes share.
struct Shared {
    app: App,
    webhook: Option<Arc<Webhook>>,
    telegram: Option<Arc<kefu_telegram::Telegram>>,
    discord: Option<Arc<kefu_discord::Discord>>,
    wechat: Option<Arc<kefu_wechat::Wechat>>,
    wecom: Option<Arc<kefu_wechat::Wecom>>,
    web: Option<Arc<WebChat>>,
    console: Option<Arc<Console>>,
}

/// The name of the console's CSRF key in the database's settings.
const CONSOLE_KEY_SETTING: &str = "console.csrf_key";

/// How often the SLA supervisor looks at the queue and the tickets.
pub const SUPERVISOR_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds the agents' console of `config` on `app`.
async fn console(app: &App, config: &Config) -> anyhow::Result<Arc<Console>> {
    let section = &config.console;
    let canned = load_canned(section.canned_replies.as_deref())?;
    let key = app
        .db
        .setting_or_insert(CONSOLE_KEY_SETTING, &kefu_web::cookie::random_hex(32))
        .await
        .context("cannot read or make the console's key in the database")?;
    let console = Console::new(
        app.clone(),
        ConsoleSettings {
            key: CookieKey::new(key.into_bytes()),
            session_ms: section.session_hours.max(1).saturating_mul(3_600_000),
            secure_cookie: section.secure_cookie,
            failed_per_account: section.failed_logins_per_account,
            failed_per_address: section.failed_logins_per_address,
            canned,
            config: config.clone(),
            max_body_bytes: config.server.max_body_bytes,
        },
    );
    console.start().await?;
    Ok(console)
}

/// Runs the SLA supervisor every [`SUPERVISOR_EVERY`] until `stopped`.
fn supervise(
    app: App,
    config: Config,
    console: Option<Arc<Console>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SUPERVISOR_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            match crate::supervisor::tick(&app, &config, kefu_core::conversation::now_millis())
                .await
            {
                Ok(tick) => {
                    app.metrics.supervised(&tick);
                    if !tick.is_empty() {
                        if let Some(console) = &console {
                            console.changed(crate::console::EVERYTHING).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the SLA supervisor could not look at the queue")
                }
            }
        }
    })
}

/// The name of the web chat's cookie key in the database's settings.
const WEB_KEY_SETTING: &str = "web.cookie_key";

/// Builds the web chat of `config` on `app`'s engine, with its cookie key from the database
/// (made by the first process that needs it); on PostgreSQL, with the other processes told of
/// every change through the database's signals, and told by them.
async fn web_chat(app: &App, config: &Config) -> anyhow::Result<Arc<WebChat>> {
    let section = &config.channels.web;
    let key = app
        .db
        .setting_or_insert(WEB_KEY_SETTING, &kefu_web::cookie::random_hex(32))
        .await
        .context("cannot read or make the web chat's cookie key in the database")?;
    let settings = WebChatSettings {
        key: CookieKey::new(key.into_bytes()),
        max_body_bytes: config.server.max_body_bytes,
        per_ip_per_minute: section.per_ip_per_minute,
        per_conversation_per_minute: section.per_conversation_per_minute,
        secure_cookie: section.secure_cookie,
        default_locale: config.engine_config().default_locale,
    };
    if app.db.backend() == kefu_sql::Backend::Sqlite {
        // One process has the database: nobody else to tell.
        return Ok(WebChat::new(app.engine.clone(), settings));
    }
    let mut heard = app
        .db
        .listen(WEB_TOPIC)
        .await
        .context("cannot listen for the other kefu processes on the database")?;
    let chat = WebChat::with_peers(
        app.engine.clone(),
        settings,
        Arc::new(DatabasePeers(app.db.clone())),
    );
    let weak = Arc::downgrade(&chat);
    tokio::spawn(async move {
        while let Some(signal) = heard.recv().await {
            let Some(chat) = weak.upgrade() else { return };
            match signal {
                Signal::Payload(id) => chat.changed_here(&id),
                Signal::Everything => chat.everything_changed_here(),
            }
        }
    });
    Ok(chat)
}

/// The Telegram channel of `section`, its token (and webhook secret) read from the
/// environment.
fn telegram(
    app: &App,
    config: &Config,
    section: &crate::config::TelegramConfig,
) -> anyhow::Result<Arc<kefu_telegram::Telegram>> {
    let (token, secret) = section.secrets(&config.orders.file)?;
    let mode = match (section.mode, secret) {
        (crate::config::TelegramMode::Webhook, Some(secret)) => kefu_telegram::Mode::Webhook {
            url: section.webhook_url.clone(),
            secret,
        },
        _ => kefu_telegram::Mode::Polling,
    };
    let mut settings = kefu_telegram::TelegramSettings::polling(token);
    settings.api_url = section.api_url.clone();
    settings.mode = mode;
    settings.max_body_bytes = config.server.max_body_bytes;
    settings.per_conversation_per_minute = section.per_conversation_per_minute;
    kefu_telegram::Telegram::new(
        app.engine.clone(),
        app.outbox.clone(),
        app.outbox_wake.clone(),
        settings,
    )
    .map_err(|e| anyhow::anyhow!("channels.telegram: {e}"))
}

/// The database topic web-chat changes are announced on.
const WEB_TOPIC: &str = "web";

/// The other processes on the database, told through its signals.
struct DatabasePeers(kefu_sql::Database);

#[async_trait::async_trait]
impl kefu_web::Peers for DatabasePeers {
    async fn announce(&self, id: &str) {
        if let Err(e) = self.0.announce(WEB_TOPIC, id).await {
            // The page on another process sees the change on its next reconnect or change.
            tracing::warn!(error = %e, "cannot tell the other processes of a web chat change");
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes: then stops accepting, lets the
/// requests in flight finish (their turns are committed, so nothing acknowledged is lost),
/// and stops the outbox worker after the round it is in.
pub async fn run(
    mut app: App,
    config: &Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut webhook = None;
    if let Some(section) = &config.channels.webhook {
        let secret = section.secret(&config.orders.file)?.into_bytes();
        if let Some(url) = &section.callback_url {
            let channel = WebhookChannel::new(url, secret.clone())
                .map_err(|e| anyhow::anyhow!("channels.webhook.callback_url: {e}"))?;
            app = app.with_channel(Arc::new(channel));
        }
        webhook = Some(Webhook::new(
            app.engine.clone(),
            WebhookSettings {
                secret,
                max_body_bytes: config.server.max_body_bytes,
                per_ip_per_minute: section.per_ip_per_minute,
                per_conversation_per_minute: section.per_conversation_per_minute,
            },
        ));
    }
    let telegram = match &config.channels.telegram {
        Some(section) => {
            let telegram = telegram(&app, config, section)?;
            app = app.with_channel(telegram.channel());
            Some(telegram)
        }
        None => None,
    };
    let discord = match &config.channels.discord {
        Some(section) => {
            let discord = kefu_discord::Discord::new(
                app.engine.clone(),
                kefu_discord::DiscordSettings {
                    token: section.token(&config.orders.file)?,
                    application_id: section.application_id,
                    public_key: section.public_key.clone(),
                    api_url: section.api_url.clone(),
                    gateway: section.gateway,
                    max_body_bytes: config.server.max_body_bytes,
                },
                app.outbox_wake.clone(),
            )
            .map_err(|e| anyhow::anyhow!("channels.discord: {e}"))?;
            app = app.with_channel(discord.channel());
            Some(discord)
        }
        None => None,
    };
    let wechat = match &config.channels.wechat {
        Some(section) => {
            let (token, app_secret, encoding_aes_key) = section.secrets(&config.orders.file)?;
            let mut settings =
                kefu_wechat::WechatSettings::new(token, section.app_id.clone(), app_secret);
            settings.encoding_aes_key = encoding_aes_key;
            settings.api_url = section.api_url.clone();
            settings.max_body_bytes = config.server.max_body_bytes;
            settings.reply_budget = std::time::Duration::from_millis(section.reply_budget_ms);
            let wechat = kefu_wechat::Wechat::new(
                app.engine.clone(),
                app.outbox.clone(),
                app.outbox_wake.clone(),
                settings,
            )
            .map_err(|e| anyhow::anyhow!("channels.wechat: {e}"))?;
            app = app.with_channel(wechat.channel());
            Some(wechat)
        }
        None => None,
    };
    let wecom = match &config.channels.wecom {
        Some(section) => {
            let (token, corp_secret, encoding_aes_key) = section.secrets(&config.orders.file)?;
            let mut settings = kefu_wechat::WecomSettings::new(
                token,
                section.corp_id.clone(),
                corp_secret,
                section.agent_id,
                encoding_aes_key,
            );
            settings.api_url = section.api_url.clone();
            settings.max_body_bytes = config.server.max_body_bytes;
            settings.reply_budget = std::time::Duration::from_millis(section.reply_budget_ms);
            let wecom = kefu_wechat::Wecom::new(
                app.engine.clone(),
                app.outbox.clone(),
                app.outbox_wake.clone(),
                settings,
            )
            .map_err(|e| anyhow::anyhow!("channels.wecom: {e}"))?;
            app = app.with_channel(wecom.channel());
            Some(wecom)
        }
        None => None,
    };
    let web = if config.channels.web.enabled {
        let chat = web_chat(&app, config).await?;
        app = app.with_channel(chat.channel());
        Some(chat)
    } else {
        None
    };
    let console = if config.console.enabled {
        Some(console(&app, config).await?)
    } else {
        None
    };
    let worker = app.outbox_worker();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let supervisor = supervise(
        app.clone(),
        config.clone(),
        console.clone(),
        stopped.clone(),
    );
    let mut platforms = Vec::new();
    if let Some(telegram) = &telegram {
        let telegram = telegram.clone();
        let mut stopped = stopped.clone();
        platforms.push(tokio::spawn(async move {
            telegram
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
        }));
    }
    if let Some(discord) = &discord {
        let discord = discord.clone();
        let mut stopped = stopped.clone();
        platforms.push(tokio::spawn(async move {
            let ran = discord
                .run_gateway(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(e) = ran {
                tracing::error!(error = %e, "the Discord gateway stopped; Discord messages are not received until kefu restarts");
            }
        }));
    }
    let worker = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
    });
    let shared = Arc::new(Shared {
        app,
        webhook: webhook.clone(),
        telegram: telegram.clone(),
        discord: discord.clone(),
        wechat: wechat.clone(),
        wecom: wecom.clone(),
        web: web.clone(),
        console: console.clone(),
    });
    let mut router: Router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared);
    if let Some(webhook) = &webhook {
        router = router.merge(webhook.router());
    }
    if let Some(telegram) = &telegram {
        router = router.merge(telegram.router());
    }
    if let Some(discord) = &discord {
        router = router.merge(discord.router());
    }
    if let Some(wechat) = &wechat {
        router = router.merge(wechat.router());
    }
    if let Some(wecom) = &wecom {
        router = router.merge(wecom.router());
    }
    if let Some(console) = &console {
        router = router.merge(console.router());
    }
    if let Some(web) = &web {
        router = router
            .merge(web.router())
            .route("/", get(|| async { axum::response::Redirect::to("/chat") }));
    }
    // Open pages' event streams end when the server stops, so the graceful shutdown is not
    // held up by them (their browsers reconnect to another process, or on restart).
    let closing = web.clone();
    let closing_console = console.clone();
    let shutdown = async move {
        shutdown.await;
        if let Some(web) = closing {
            web.close();
        }
        if let Some(console) = closing_console {
            console.close();
        }
    };
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("the server stopped with an error");
    let _ = stop.send(true);
    if let Err(e) = supervisor.await {
        tracing::warn!(error = %e, "the SLA supervisor ended abnormally");
    }
    for platform in platforms {
        if let Err(e) = platform.await {
            tracing::warn!(error = %e, "a chat platform's task ended abnormally");
        }
    }
    if let Err(e) = worker.await {
        tracing::warn!(error = %e, "the outbox worker ended abnormally");
    }
    served
}

/// Binds `config.server.listen` and [`run`]s.
pub async fn serve(
    app: App,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.listen in kefu.yaml) — is another program using the port?",
                config.server.listen
            )
        })?;
    run(app, config, listener, shutdown).await
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the store answers (the knowledge base is loaded before the server starts).
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let probe = ConversationKey::new("kefu", "readyz");
    match shared.app.engine.conversation(&probe).await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: the database does not answer ({e})\n"),
            )
                .into_response()
        }
    }
}

/// The period `/metrics` reports the service figures over.
pub const REPORT_WINDOW_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// The Prometheus metrics.
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut gauges = crate::metrics::Gauges::default();
    match kefu_core::HandoffQueue::waiting(&shared.app.db.queue(), None).await {
        Ok(waiting) => {
            for request in waiting {
                *gauges.waiting.entry(request.skill_group).or_default() += 1;
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the queue"),
    }
    match shared.app.outbox.counts().await {
        Ok(counts) => {
            gauges.outbox_pending = counts.pending;
            gauges.outbox_dead = counts.dead;
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbox"),
    }
    if let Some(web) = &shared.web {
        gauges.web_pages = Some(web.watched() as u64);
        gauges.web_rejections = web.refusals().by_name();
    }
    if let Some(webhook) = &shared.webhook {
        gauges.webhook_rejections = webhook.rejections().by_name();
    }
    if let Some(telegram) = &shared.telegram {
        for (cause, n) in telegram.rejections().by_name() {
            gauges.channel_rejections.push(("telegram", cause, n));
        }
    }
    if let Some(discord) = &shared.discord {
        for (cause, n) in discord.rejections().by_name() {
            gauges.channel_rejections.push(("discord", cause, n));
        }
    }
    if let Some(wechat) = &shared.wechat {
        for (cause, n) in wechat.rejections().by_name() {
            gauges.channel_rejections.push(("wechat", cause, n));
        }
    }
    if let Some(wecom) = &shared.wecom {
        for (cause, n) in wecom.rejections().by_name() {
            gauges.channel_rejections.push(("wecom", cause, n));
        }
    }
    let mut text = shared.app.metrics.render(&gauges);
    if let Some(console) = &shared.console {
        text.push_str(&format!(
            "# HELP kefu_console_pages_open Console pages following live changes on this process.\n\
             # TYPE kefu_console_pages_open gauge\nkefu_console_pages_open {}\n",
            console.watching()
        ));
    }
    // The service report over the last 7 days (the dashboard's default period).
    let until = kefu_core::conversation::now_millis();
    match shared
        .app
        .db
        .report(until.saturating_sub(REPORT_WINDOW_MS), until)
        .await
    {
        Ok(report) => text.push_str(&report.prometheus()),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot compute the service report"),
    }
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_webhook::signing;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_server_answers_webhooks_reports_health_and_metrics_and_stops_gracefully() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "storage:\n  url: sqlite://{}/kefu.db\nchannels:\n  webhook:\n    secret: s3cret\n",
            dir.path().display()
        );
        let config = Config::parse(std::path::Path::new("kefu.yaml"), &yaml).unwrap();
        let app = App::from_config(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            run(app, &config, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        let http = reqwest::Client::new();
        let get = |path: &str| http.get(format!("{base}{path}")).send();
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);

        // A webhook message, signed with `secret`.
        let post = |body: &'static str, secret: &'static [u8]| {
            let now = signing::unix_now();
            http.post(format!("{base}/v1/webhook"))
                .header(signing::TIMESTAMP_HEADER, now.to_string())
                .header(
                    signing::SIGNATURE_HEADER,
                    signing::sign(secret, now, body.as_bytes()),
                )
                .body(body)
                .send()
        };
        let body = r#"{"id":"m1","conversation":"c1","text":"退款要多久"}"#;
        let answer = post(body, b"s3cret").await.unwrap();
        assert_eq!(answer.status(), 200);
        let text = answer.text().await.unwrap();
        assert!(text.contains("退款"), "{text}");
        assert_eq!(post(body, b"forged").await.unwrap().status(), 401);
        let human = r#"{"id":"m2","conversation":"c1","text":"转人工"}"#;
        assert_eq!(post(human, b"s3cret").await.unwrap().status(), 200);

        let metrics = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains("kefu_handoffs_total{reason=\"requested\",skill_group=\"general\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("kefu_queue_waiting{skill_group=\"general\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("kefu_turns_total{channel=\"webhook\",decision=\"answer\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("kefu_turn_seconds_count 2"), "{metrics}");
        assert!(
            metrics.contains("kefu_webhook_rejections_total{cause=\"signature_mismatch\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("kefu_outbox_dead 0"), "{metrics}");

        // A customer's web chat page is open (its event stream): stopping does not wait for it.
        let page = get("/chat").await.unwrap();
        assert_eq!(page.status(), 200);
        let cookie = page.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let mut stream = http
            .get(format!("{base}/chat/events"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        let metrics = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(metrics.contains("kefu_web_pages_open 1"), "{metrics}");
        assert_eq!(
            get("/").await.unwrap().url().path(),
            "/chat",
            "/ leads to the chat"
        );

        stop.send(()).unwrap();
        while let Ok(Some(_)) = stream.chunk().await {}
        server.await.unwrap().unwrap();
        assert!(get("/healthz").await.is_err(), "no longer listening");
    }
}
