//! Support hours: when people answer hand-offs. Outside them the bot does not leave a customer
//! waiting in a queue nobody watches; it says when people are back and opens a ticket.

use std::fmt;

/// The days of the week, Monday first, as written in configuration.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// When people answer, in the shop's local time: some days of the week, from one time of day
/// to another. A closing time before the opening time runs past midnight (`20:00-02:00`);
/// `24:00` is midnight at the end of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportHours {
    /// Monday first: whether a shift starts on that day.
    pub days: [bool; 7],
    /// Minutes after local midnight when the shift starts.
    pub open: u16,
    /// Minutes after local midnight when it ends (1440 = midnight).
    pub close: u16,
}

/// Why support hours could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursError(pub String);

impl fmt::Display for HoursError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HoursError {}

impl fmt::Display for SupportHours {
    /// As configured: `09:00-18:00` (every day) or `mon,tue,wed 09:00-18:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days != [true; 7] {
            let days: Vec<&str> = DAYS
                .iter()
                .zip(self.days)
                .filter(|(_, on)| *on)
                .map(|(d, _)| *d)
                .collect();
            write!(f, "{} ", days.join(","))?;
        }
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.open), hm(self.close))
    }
}

impl SupportHours {
    /// Every day, all day.
    pub const ALWAYS: SupportHours = SupportHours {
        days: [true; 7],
        open: 0,
        close: 1440,
    };

    /// Reads `09:00-24:00` (every day) or `mon-fri 09:00-18:00` / `sat,sun 10:00-16:00`.
    pub fn parse(spec: &str) -> Result<SupportHours, HoursError> {
        let spec = spec.trim();
        let bad = |why: &str| {
            HoursError(format!(
                "`{spec}` is not support hours: {why} — write e.g. `09:00-24:00` or `mon-fri 09:00-18:00`"
            ))
        };
        let (days, times) = match spec.rsplit_once(char::is_whitespace) {
            Some((days, times)) => (Some(days.trim()), times),
            None => (None, spec),
        };
        let (open, close) = times
            .split_once('-')
            .ok_or_else(|| bad("the times need a `-` between them"))?;
        let minute = |t: &str| -> Result<u16, HoursError> {
            let (h, m) = t
                .trim()
                .split_once(':')
                .ok_or_else(|| bad("times are HH:MM"))?;
            let (h, m): (u16, u16) = (
                h.parse().map_err(|_| bad("times are HH:MM"))?,
                m.parse().map_err(|_| bad("times are HH:MM"))?,
            );
            if m > 59 || h > 24 || (h == 24 && m > 0) {
                return Err(bad("hours go from 00:00 to 24:00"));
            }
            Ok(h * 60 + m)
        };
        let (open, close) = (minute(open)?, minute(close)?);
        if open == close {
            return Err(bad("opening and closing are the same time"));
        }
        let days = match days {
            None => [true; 7],
            Some(days) => parse_days(days).map_err(|why| bad(&why))?,
        };
        Ok(SupportHours { days, open, close })
    }

    /// Whether people answer at `at` (ms since the epoch) in a shop `utc_offset_minutes` from
    /// UTC.
    pub fn is_open(&self, at: u64, utc_offset_minutes: i32) -> bool {
        let (day, minute) = local(at, utc_offset_minutes);
        if self.open < self.close {
            self.days[day] && (self.open..self.close).contains(&minute)
        } else {
            // Past midnight: the evening part on a shift's day, the morning part the day after.
            let yesterday = (day + 6) % 7;
            (self.days[day] && minute >= self.open) || (self.days[yesterday] && minute < self.close)
        }
    }

    /// When people are next in (ms since the epoch): `at` itself if they are now.
    pub fn next_open(&self, at: u64, utc_offset_minutes: i32) -> u64 {
        if self.is_open(at, utc_offset_minutes) {
            return at;
        }
        let (_, minute) = local(at, utc_offset_minutes);
        let start_of_minute = at - at % 60_000;
        // The next opening is at most a week away; step to each day's opening time.
        let mut candidate =
            start_of_minute + u64::from((self.open + 1440 - minute) % 1440) * 60_000;
        for _ in 0..8 {
            if self.is_open(candidate, utc_offset_minutes) {
                return candidate;
            }
            candidate += 1440 * 60_000;
        }
        candidate
    }
}

/// `mon-fri`, `sat,sun`, `mon,wed-fri`.
fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let index = |d: &str| {
        DAYS.iter()
            .position(|n| n.eq_ignore_ascii_case(d.trim()))
            .ok_or_else(|| format!("`{d}` is not a day (mon, tue, wed, thu, fri, sat, sun)"))
    };
    let mut days = [false; 7];
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (index(from)?, index(to)?);
                let mut d = from;
                loop {
                    days[d] = true;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[index(part)?] = true,
        }
    }
    Ok(days)
}

/// The local day of the week (0 = Monday) and minute of the day.
fn local(at: u64, utc_offset_minutes: i32) -> (usize, u16) {
    let minutes = (at / 60_000) as i64 + i64::from(utc_offset_minutes);
    let days = minutes.div_euclid(1440);
    // 1970-01-01 was a Thursday (3 with Monday as 0).
    let day = (days + 3).rem_euclid(7) as usize;
    (day, minutes.rem_euclid(1440) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 (a Wednesday) at `hh:mm` UTC, in ms.
    fn wed(hh: u64, mm: u64) -> u64 {
        1_796_169_600_000 + (hh * 60 + mm) * 60_000
    }

    #[test]
    fn hours_are_shown_as_configured() {
        for spec in [
            "09:00-24:00",
            "mon,tue,wed,thu,fri 09:00-18:00",
            "sat,sun 20:00-02:00",
        ] {
            assert_eq!(SupportHours::parse(spec).unwrap().to_string(), spec);
        }
        assert_eq!(
            SupportHours::parse("mon-fri 09:00-18:00")
                .unwrap()
                .to_string(),
            "mon,tue,wed,thu,fri 09:00-18:00"
        );
    }

    #[test]
    fn hours_are_read_from_configuration() {
        let h = SupportHours::parse("09:00-24:00").unwrap();
        assert_eq!((h.open, h.close, h.days), (540, 1440, [true; 7]));
        let h = SupportHours::parse("mon-fri 09:30-18:00").unwrap();
        assert_eq!(h.days, [true, true, true, true, true, false, false]);
        let h = SupportHours::parse("sat,sun 10:00-16:00").unwrap();
        assert_eq!(h.days, [false, false, false, false, false, true, true]);
        let h = SupportHours::parse("fri-mon 20:00-02:00").unwrap();
        assert_eq!(h.days, [true, false, false, false, true, true, true]);
        for bad in [
            "9-5",
            "25:00-26:00",
            "mon-xyz 09:00-10:00",
            "09:00-09:00",
            "",
        ] {
            let err = SupportHours::parse(bad).unwrap_err().to_string();
            assert!(err.contains("e.g."), "{bad}: {err}");
        }
    }

    #[test]
    fn open_and_next_open_follow_the_shops_clock() {
        assert_eq!(local(wed(0, 0), 0), (2, 0));
        // 09:00-24:00 in China (UTC+8): 00:30 UTC is 08:30 there.
        let h = SupportHours::parse("09:00-24:00").unwrap();
        assert!(!h.is_open(wed(0, 30), 480));
        assert!(h.is_open(wed(1, 0), 480));
        assert!(h.is_open(wed(15, 59), 480));
        assert!(!h.is_open(wed(16, 0), 480));
        assert_eq!(h.next_open(wed(0, 30), 480), wed(1, 0));
        assert_eq!(h.next_open(wed(16, 10), 480), wed(1, 0) + 86_400_000);
        assert_eq!(h.next_open(wed(2, 0), 480), wed(2, 0));
        // Weekdays only: Friday evening waits for Monday.
        let h = SupportHours::parse("mon-fri 09:00-18:00").unwrap();
        let fri_evening = wed(19, 0) + 2 * 86_400_000;
        assert_eq!(
            h.next_open(fri_evening, 0),
            wed(9, 0) + 5 * 86_400_000,
            "Monday 09:00"
        );
        // Past midnight belongs to the evening before.
        let h = SupportHours::parse("wed 20:00-02:00").unwrap();
        assert!(h.is_open(wed(21, 0), 0));
        assert!(h.is_open(wed(1, 0) + 86_400_000, 0));
        assert!(!h.is_open(wed(1, 0), 0));
        assert!(SupportHours::ALWAYS.is_open(wed(3, 0), 0));
    }
}
