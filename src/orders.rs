//! `kefu orders`: the shop's own order tables, for shops without an order system of their own.

use crate::config::Config;
use anyhow::Context;
use clap::Args;
use kefu_orders_file::{read_orders, ImportOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kefu orders import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The orders: `.csv`, `.json` (an array) or `.jsonl` (one order per line); see
    /// docs/orders-import.md.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Check the file and report its problems without importing anything.
    #[arg(long)]
    check: bool,
}

/// Validates the whole file, then imports every order in one transaction, or none.
pub fn import(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let records = match read_orders(&args.file, &ImportOptions::default()) {
        Ok(records) => records,
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!(
                "{} problem{} found; nothing was imported. Fix the rows above and run the import again.",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let keys: usize = records.iter().map(|r| r.card_keys.len()).sum();
    if args.check {
        out!(
            "{}: {} orders with {keys} card keys, all valid (nothing imported: --check)",
            args.file.display(),
            records.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        let db = config.storage.open().await?;
        let summary = db.orders().import(&records).await?;
        db.close().await;
        anyhow::Ok((summary, db.target().to_string()))
    })?;
    let (summary, target) = summary;
    out!(
        "imported {} orders ({} new, {} replaced) with {} card keys into {target}",
        summary.inserted + summary.replaced,
        summary.inserted,
        summary.replaced,
        summary.card_keys
    );
    Ok(ExitCode::SUCCESS)
}
