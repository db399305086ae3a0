//! `kefu report`: the service report of a period — conversations and how many the bot handled
//! alone, hand-offs, how long customers waited for a person, resolution, first-contact
//! resolution, satisfaction, tickets — overall, by skill group and by agent. The figures and
//! their definitions are [`kefu_sql::report`]'s (docs/report.md).

use crate::config::Config;
use clap::Args;
use kefu_core::conversation::now_millis;
use kefu_sql::{Report, Slice, Spread};
use std::process::ExitCode;

const MINUTE_MS: u64 = 60 * 1000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

/// What `--since` and `--until` accept, for messages.
const FORMS: &str =
    "use a duration back from now (7d, 24h, 30m) or a date (2026-11-01, from midnight UTC)";

/// What no figure looks like.
const NONE: &str = "—";

/// Arguments of `kefu report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The period's start: a duration back from now (`7d`, `24h`, `30m`) or a date
    /// (`2026-11-01`, from midnight UTC).
    #[arg(long, default_value = "7d", value_name = "WHEN")]
    since: String,
    /// The period's end (excluded), in the same forms; the figures are as things stood then
    /// (default: now).
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Print the report as one JSON object (times in ms, ratios from 0 to 1, null for no data).
    #[arg(long)]
    json: bool,
}

/// `kefu report`: prints the service report of the period.
pub fn report(config: &Config, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let now = now_millis();
    let since = parse_when("--since", &args.since, now)?;
    let until = match &args.until {
        Some(until) => parse_when("--until", until, now)?,
        None => now,
    };
    if since >= until {
        anyhow::bail!(
            "the period is empty: its start ({}) is not before its end ({}); --since must come before --until",
            utc(since),
            utc(until)
        );
    }
    let report = crate::with_database(config, async |db| Ok(db.report(since, until).await?))?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// A time given as `7d`, `24h`, `30m` (back from `now`) or `2026-11-01` (midnight UTC), in ms
/// since the epoch.
fn parse_when(flag: &str, text: &str, now: u64) -> anyhow::Result<u64> {
    let text = text.trim();
    let bad = || anyhow::anyhow!("{flag} `{text}` is not a time kefu understands: {FORMS}");
    if let Some(unit) = text.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let count: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
        let unit_ms = match unit {
            'd' => DAY_MS,
            'h' => HOUR_MS,
            'm' => MINUTE_MS,
            _ => return Err(bad()),
        };
        return count
            .checked_mul(unit_ms)
            .and_then(|back| now.checked_sub(back))
            .ok_or_else(|| anyhow::anyhow!("{flag} `{text}` reaches back before 1970"));
    }
    let mut parts = text.splitn(3, '-');
    let (Some(year), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(year, 4) && digits(month, 2) && digits(day, 2)) {
        return Err(bad());
    }
    let (year, month, day): (i64, u32, u32) = (
        year.parse().map_err(|_| bad())?,
        month.parse().map_err(|_| bad())?,
        day.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(anyhow::anyhow!(
            "{flag} `{text}` is not a date in the calendar: {FORMS}"
        ));
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days)
        .map(|days| days * DAY_MS)
        .map_err(|_| anyhow::anyhow!("{flag} `{text}` is before 1970"))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-01 08:30 UTC`.
fn utc(ms: u64) -> String {
    let days = (ms / DAY_MS) as i64;
    let (y, m, d) = kefu_core::tickets::civil_from_days(days);
    let minutes = (ms % DAY_MS) / MINUTE_MS;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// A duration for people: `45s`, `12m 05s`, `2h 10m`, `3d 04h`; `—` for none.
fn duration(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return NONE.to_string();
    };
    let s = ms / 1000;
    match s {
        0..=9 => format!("{:.1}s", ms as f64 / 1000.0),
        10..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| NONE.to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn score(average: Option<f64>) -> String {
    average.map_or_else(|| NONE.to_string(), |a| format!("{a:.2}"))
}

/// `p50 4m 00s · p90 10m 00s (4)`.
fn spread(spread: &Spread) -> String {
    format!(
        "p50 {} · p90 {}  ({} measured)",
        duration(spread.p50_ms),
        duration(spread.p90_ms),
        spread.count
    )
}

/// The report for people: the headline figures, then a table by skill group and one by
/// agent.
fn table(report: &Report) -> String {
    let mut lines = vec![
        format!(
            "Service report {} – {}",
            utc(report.since),
            utc(report.until)
        ),
        String::new(),
    ];
    let reasons = if report.handoff_reasons.is_empty() {
        String::new()
    } else {
        let by: Vec<String> = report
            .handoff_reasons
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        format!("  ({})", by.join(", "))
    };
    let rows = [
        ("conversations", report.conversations.to_string()),
        (
            "contained by the bot",
            format!("{}  ({})", report.contained, percent(report.containment())),
        ),
        ("hand-offs", format!("{}{reasons}", report.handoffs)),
        ("transfers", report.transfers.to_string()),
        ("first human reply", spread(&report.first_reply)),
        ("queue wait", spread(&report.queue_wait)),
        ("resolution", spread(&report.resolution)),
        ("first-contact resolution", percent(report.fcr)),
        (
            "CSAT average (1-5)",
            format!(
                "{}  ({} ratings)",
                score(report.csat_average),
                report.ratings
            ),
        ),
        (
            "survey response rate",
            format!(
                "{}  ({} surveys)",
                percent(report.response_rate),
                report.surveys
            ),
        ),
        ("tickets opened", report.tickets_opened.to_string()),
        ("tickets overdue", report.tickets_overdue.to_string()),
    ];
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    for (name, value) in rows {
        lines.push(format!("{name:<width$}  {value}"));
    }
    for (title, column, slices) in [
        ("By skill group", "skill group", &report.groups),
        ("By agent", "agent", &report.agents),
    ] {
        lines.push(String::new());
        if slices.is_empty() {
            lines.push(format!("{title}: {NONE}"));
            continue;
        }
        lines.push(format!("{title}:"));
        lines.extend(slice_table(column, slices));
    }
    lines.join("\n")
}

/// A table of slices: one row each, columns aligned.
fn slice_table(column: &str, slices: &std::collections::BTreeMap<String, Slice>) -> Vec<String> {
    let header = [
        column,
        "hand-offs",
        "wait p50",
        "reply p50",
        "reply p90",
        "resolution p50",
        "FCR",
        "CSAT",
        "ratings",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for (name, s) in slices {
        cells.push(vec![
            name.clone(),
            s.handoffs.to_string(),
            duration(s.queue_wait.p50_ms),
            duration(s.first_reply.p50_ms),
            duration(s.first_reply.p90_ms),
            duration(s.resolution.p50_ms),
            percent(s.fcr),
            score(s.csat_average),
            s.ratings.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    cells
        .iter()
        .map(|row| {
            let padded: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| {
                    let pad = width - cell.chars().count();
                    format!("{cell}{}", " ".repeat(pad))
                })
                .collect();
            format!("  {}", padded.join("  ").trim_end())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_793_491_200_000 + 12 * HOUR_MS;

    #[test]
    fn times_are_durations_back_from_now_or_dates() {
        assert_eq!(parse_when("--since", "7d", NOW).unwrap(), NOW - 7 * DAY_MS);
        assert_eq!(parse_when("--since", "24h", NOW).unwrap(), NOW - DAY_MS);
        assert_eq!(
            parse_when("--since", " 30m ", NOW).unwrap(),
            NOW - 30 * MINUTE_MS
        );
        assert_eq!(
            parse_when("--since", "2026-11-01", NOW).unwrap(),
            1_793_491_200_000
        );
        assert_eq!(parse_when("--since", "1970-01-01", NOW).unwrap(), 0);
        assert_eq!(
            parse_when("--since", "2028-02-29", NOW).unwrap(),
            1_835_395_200_000
        );
        for bad in [
            "bogus",
            "7",
            "7w",
            "d",
            "-7d",
            "2026-13-01",
            "2026-02-30",
            "2026-1-1",
            "",
        ] {
            let e = parse_when("--since", bad, NOW).unwrap_err().to_string();
            assert!(e.starts_with("--since `"), "{bad}: {e}");
            assert!(e.contains("7d") && e.contains("2026-11-01"), "{bad}: {e}");
        }
        assert!(parse_when("--since", "1969-12-31", NOW).is_err());
        assert!(parse_when("--since", "99999999d", NOW).is_err());
    }

    #[test]
    fn dates_round_trip() {
        for days in [-1, 0, 59, 365, 20_393, 20_758, 100_000] {
            let (y, m, d) = kefu_core::tickets::civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(
            utc(1_793_491_200_000 + 8 * HOUR_MS + 30 * MINUTE_MS),
            "2026-11-01 08:30 UTC"
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(None), "—");
        assert_eq!(duration(Some(1_500)), "1.5s");
        assert_eq!(duration(Some(45_000)), "45s");
        assert_eq!(duration(Some(12 * MINUTE_MS + 5_000)), "12m 05s");
        assert_eq!(duration(Some(2 * HOUR_MS + 10 * MINUTE_MS)), "2h 10m");
        assert_eq!(duration(Some(3 * DAY_MS + 4 * HOUR_MS)), "3d 04h");
        assert_eq!(percent(Some(1.0 / 3.0)), "33.3%");
        assert_eq!(percent(None), "—");
    }
}
