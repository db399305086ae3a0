//! `kefu serve`: the bot as a long-running service (see `kefu_app::serve`).

use anyhow::Context;
use clap::Args;
use kefu_app::config::Config;
use std::process::ExitCode;

/// Arguments of `kefu serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address and port to listen on (default: server.listen in kefu.yaml, 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
}

/// Runs the server until Ctrl-C or SIGTERM; a second signal exits at once.
pub fn serve(config: &Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    if let Some(listen) = args.listen {
        listen.parse::<std::net::SocketAddr>().map_err(|_| {
            anyhow::anyhow!("--listen {listen:?}: give an address and port such as 127.0.0.1:8080")
        })?;
        config.server.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The webhook's secret is read now, so a missing one is reported before anything starts.
    if let Some(webhook) = &config.channels.webhook {
        webhook.secret(&config.orders.file)?;
    }
    // So are mistakes in the console's canned replies.
    if config.console.enabled {
        kefu_app::console::load_canned(config.console.canned_replies.as_deref())?;
    }
    runtime.block_on(async move {
        eprintln!("loading the knowledge base…");
        let app = kefu_app::App::from_config(&config).await?;
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} — is another program using the port? (--listen or server.listen in kefu.yaml)",
                    config.server.listen
                )
            })?;
        let at = listener.local_addr()?;
        println!("kefu is serving on http://{at}");
        if config.channels.web.enabled {
            println!("  web chat: open http://{at}/chat in a browser");
        }
        if config.console.enabled {
            println!("  agents' console: http://{at}/console (accounts: kefu agents add NAME --role admin)");
        }
        println!("  health:  http://{at}/healthz  readiness: http://{at}/readyz  metrics: http://{at}/metrics");
        if config.channels.webhook.is_some() {
            println!("  webhook: POST http://{at}/v1/webhook (docs/webhook.md)");
        }
        println!("press Ctrl-C to stop");
        kefu_app::serve::run(app, &config, listener, stop_signal()).await?;
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on the first Ctrl-C or SIGTERM; after it, a second one exits the process at once.
async fn stop_signal() {
    first_signal().await;
    eprintln!("stopping: finishing the messages in progress (press Ctrl-C again to quit at once)");
    tokio::spawn(async {
        first_signal().await;
        eprintln!("quitting at once");
        std::process::exit(130);
    });
}

async fn first_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(term) => { term.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
