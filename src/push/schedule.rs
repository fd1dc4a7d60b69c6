//! When to try a delivery again, and what an answer means.
//!
//! The first attempt is always immediate; a [`RetrySchedule`] lists the
//! waits before each retry. Standard Webhooks' default is "immediately,
//! 5 seconds, 5 minutes, 30 minutes, 2 hours, 5 hours, 10 hours, 14 hours,
//! 20 hours, 24 hours": the immediate attempt and nine retries, ten
//! attempts in all. An operator's `--webhook-retry-schedule 0,1,2` lists
//! retries only: three retries after the first attempt, 0, 1 and 2
//! seconds after the failure before each.
//!
//! Pure functions: the current time and the random number behind the
//! jitter are arguments, so every answer is reproducible.
//!
//! ```
//! use rtwire::push::schedule::{Outcome, RetrySchedule};
//! use std::time::Duration;
//!
//! let schedule: RetrySchedule = "0,1,2".parse()?;
//! assert_eq!(schedule.attempts(), 4);
//! assert_eq!(Outcome::from_status(503), Outcome::Failure);
//! // After the second failure: the second retry, 1 s ± 10%.
//! let wait = schedule.next_retry(2, None, 0).unwrap();
//! assert_eq!(wait, Duration::from_millis(900));
//! // Unless the receiver said to wait longer.
//! let wait = schedule.next_retry(2, Some(Duration::from_secs(30)), 0).unwrap();
//! assert_eq!(wait, Duration::from_secs(30));
//! // After the fourth failure there is no retry left.
//! assert_eq!(schedule.next_retry(4, None, 0), None);
//! # Ok::<(), rtwire::push::schedule::ScheduleError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

/// The waits before Standard Webhooks' nine retries (after an immediate
/// first attempt), in seconds.
const STANDARD_RETRIES: [u64; 9] = [
    5,
    5 * MINUTE,
    30 * MINUTE,
    2 * HOUR,
    5 * HOUR,
    10 * HOUR,
    14 * HOUR,
    20 * HOUR,
    24 * HOUR,
];

/// The most retries an operator's schedule may list.
pub const MAX_RETRIES: usize = 32;

/// The longest wait an operator's schedule may hold: 7 days.
pub const MAX_STEP: Duration = Duration::from_secs(7 * 24 * HOUR);

/// The longest wait a `Retry-After` can ask for: 24 hours, the longest
/// step of the standard schedule. A receiver asking for more gets its
/// retry after 24 hours (or the schedule's own wait, if that is longer).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * HOUR);

/// The jitter, in thousandths either way: ±10%, so that endpoints that
/// failed together do not all retry in the same instant.
pub const JITTER_PER_MILLE: u64 = 100;

/// Why an operator's schedule was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleError {
    /// Nothing between the commas, or no entries at all.
    Empty,
    /// An entry is not a whole number of seconds.
    NotSeconds(String),
    /// An entry is over [`MAX_STEP`].
    TooLong(String),
    /// More than [`MAX_RETRIES`] entries.
    TooMany,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::Empty => {
                f.write_str("a retry schedule is seconds separated by commas, e.g. 0,5,300")
            }
            ScheduleError::NotSeconds(s) => write!(f, "retry delay {s:?} is not whole seconds"),
            ScheduleError::TooLong(s) => write!(f, "retry delay {s} is over 7 days"),
            ScheduleError::TooMany => {
                write!(f, "a retry schedule has at most {MAX_RETRIES} delays")
            }
        }
    }
}

impl std::error::Error for ScheduleError {}

/// The waits before each retry of a delivery (the first attempt is
/// immediate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    retries: Vec<Duration>,
}

impl Default for RetrySchedule {
    fn default() -> RetrySchedule {
        RetrySchedule::standard()
    }
}

impl RetrySchedule {
    /// Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 14 h, 20 h, 24 h after an immediate first attempt.
    pub fn standard() -> RetrySchedule {
        RetrySchedule {
            retries: STANDARD_RETRIES
                .iter()
                .map(|&s| Duration::from_secs(s))
                .collect(),
        }
    }

    /// A schedule of these waits (each at most [`MAX_STEP`], at most
    /// [`MAX_RETRIES`] of them); empty means no retries.
    pub fn from_delays(retries: Vec<Duration>) -> Result<RetrySchedule, ScheduleError> {
        if retries.len() > MAX_RETRIES {
            return Err(ScheduleError::TooMany);
        }
        if let Some(long) = retries.iter().find(|d| **d > MAX_STEP) {
            return Err(ScheduleError::TooLong(format!("{}s", long.as_secs())));
        }
        Ok(RetrySchedule { retries })
    }

    /// Parses an operator's list of whole seconds, e.g. `0,1,2` (spaces
    /// around entries allowed).
    pub fn parse(text: &str) -> Result<RetrySchedule, ScheduleError> {
        if text.len() > MAX_RETRIES * 8 {
            return Err(ScheduleError::TooMany);
        }
        let retries = text
            .split(',')
            .map(|entry| parse_step(entry.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        RetrySchedule::from_delays(retries)
    }

    /// The waits before each retry, without jitter.
    pub fn retries(&self) -> &[Duration] {
        &self.retries
    }

    /// How many attempts a delivery gets in all: the first and the retries.
    pub fn attempts(&self) -> usize {
        self.retries.len() + 1
    }

    /// How long to wait after the `failed`-th failed attempt (1 for the
    /// first) before the next one; `None` when the schedule is used up.
    ///
    /// The wait is the schedule's, jittered by ±10% with `random` (any
    /// `u64`; pass `rand::random()` in production, a constant in tests),
    /// or `retry_after` if the receiver asked for longer (capped at
    /// [`MAX_RETRY_AFTER`]): Standard Webhooks asks senders to honour
    /// `Retry-After`, never to retry sooner than the schedule.
    pub fn next_retry(
        &self,
        failed: usize,
        retry_after: Option<Duration>,
        random: u64,
    ) -> Option<Duration> {
        let step = *self.retries.get(failed.checked_sub(1)?)?;
        let scheduled = jitter(step, random);
        let asked = retry_after.map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER));
        Some(scheduled.max(asked))
    }
}

impl FromStr for RetrySchedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<RetrySchedule, ScheduleError> {
        RetrySchedule::parse(text)
    }
}

fn parse_step(entry: &str) -> Result<Duration, ScheduleError> {
    if entry.is_empty() {
        return Err(ScheduleError::Empty);
    }
    if !entry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleError::NotSeconds(entry.chars().take(32).collect()));
    }
    match entry.parse::<u64>() {
        Ok(secs) if Duration::from_secs(secs) <= MAX_STEP => Ok(Duration::from_secs(secs)),
        _ => Err(ScheduleError::TooLong(entry.chars().take(32).collect())),
    }
}

/// `delay` moved by up to ±[`JITTER_PER_MILLE`] thousandths, chosen by
/// `random`: `random % 201` picks 900‰ to 1100‰ (0 gives 90%, 100 gives
/// exactly `delay`, 200 gives 110%). Zero stays zero.
pub fn jitter(delay: Duration, random: u64) -> Duration {
    let per_mille = 1000 - JITTER_PER_MILLE + random % (2 * JITTER_PER_MILLE + 1);
    let nanos = delay.as_nanos() * u128::from(per_mille) / 1000;
    // At most 110% of a Duration: saturate rather than wrap.
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// What one attempt's answer means for the delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: delivered. Standard Webhooks: only a 2xx
    /// counts as delivered.
    Success,
    /// `410 Gone`: the receiver wants no more. Standard Webhooks: the
    /// endpoint is disabled; WebSub: the subscription ends.
    Gone,
    /// Anything else, including 3xx (redirects are not followed) and
    /// 1xx: retried on the schedule.
    Failure,
}

impl Outcome {
    /// The outcome of a response with this status.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Success,
            410 => Outcome::Gone,
            _ => Outcome::Failure,
        }
    }
}

/// How long a `Retry-After` value asks to wait, at `now_unix` (Unix
/// seconds): delta-seconds (`120`) or an IMF-fixdate HTTP-date (`Wed, 21
/// Oct 2015 07:28:00 GMT`, RFC 9110 §10.2.3 and §5.6.7); a date in the past
/// is zero. `None` for anything else (the obsolete RFC 850 and asctime date
/// forms are not read: the schedule applies). Not capped: [`RetrySchedule::next_retry`] caps it.
pub fn parse_retry_after(value: &str, now_unix: u64) -> Option<Duration> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturated: a hundred-digit value means "a very long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_secs(at.saturating_sub(now_unix)))
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, as Unix seconds
/// (`None` for an invalid date, or one before 1970). The day name must
/// be one, but is not checked against the date: the date decides.
pub fn parse_http_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    if !DAY_NAMES.contains(&text.get(0..3)?) || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' {
        return None;
    }
    let day = digits(&b[5..7])?;
    let month = MONTHS
        .iter()
        .position(|m| *m == text.get(8..11).unwrap_or(""))? as u64
        + 1;
    let year = digits(&b[12..16])?;
    if b[19] != b':' || b[22] != b':' {
        return None;
    }
    let (hour, minute, second) = (
        digits(&b[17..19])?,
        digits(&b[20..22])?,
        digits(&b[23..25])?,
    );
    // Second 60: a leap second, which Unix time folds into the next.
    if year < 1970
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

fn digits(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (year at least 1970): whole years,
/// then whole months of the year. At most 8000 years: a short loop.
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let years: u64 = (1970..year)
        .map(|y| if is_leap(y) { 366 } else { 365 })
        .sum();
    let months: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    years + months + day - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_standard_schedule() {
        let s = RetrySchedule::standard();
        assert_eq!(s.attempts(), 10);
        let want = [
            S(5),
            S(300),
            S(1800),
            S(7200),
            S(18000),
            S(36000),
            S(50400),
            S(72000),
            S(86400),
        ];
        assert_eq!(s.retries(), want);
        // random = 100 is the middle of the jitter range: no change.
        for (failed, wait) in want.iter().enumerate() {
            assert_eq!(s.next_retry(failed + 1, None, 100), Some(*wait));
        }
        assert_eq!(s.next_retry(10, None, 100), None);
        assert_eq!(s.next_retry(0, None, 100), None);
        assert_eq!(RetrySchedule::default(), s);
    }

    #[test]
    fn jitter_is_within_ten_percent_and_deterministic() {
        let d = S(300);
        assert_eq!(jitter(d, 0), S(270));
        assert_eq!(jitter(d, 100), S(300));
        assert_eq!(jitter(d, 200), S(330));
        assert_eq!(jitter(d, 201), S(270), "wraps around");
        assert_eq!(jitter(Duration::ZERO, 7), Duration::ZERO);
        for r in [1, 99, 12345, u64::MAX] {
            let j = jitter(d, r);
            assert!(j >= S(270) && j <= S(330), "{r}: {j:?}");
            assert_eq!(j, jitter(d, r));
        }
        assert_eq!(jitter(Duration::MAX, 200), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn operator_schedules() {
        let s: RetrySchedule = "0,1,2".parse().unwrap();
        assert_eq!(s.retries(), [S(0), S(1), S(2)]);
        assert_eq!(s.attempts(), 4);
        assert_eq!(
            RetrySchedule::parse(" 5 , 60 ").unwrap().retries(),
            [S(5), S(60)]
        );
        assert_eq!(
            RetrySchedule::parse("604800").unwrap().retries(),
            [MAX_STEP]
        );
        assert_eq!(RetrySchedule::parse(""), Err(ScheduleError::Empty));
        assert_eq!(RetrySchedule::parse("1,,2"), Err(ScheduleError::Empty));
        assert_eq!(RetrySchedule::parse("1,"), Err(ScheduleError::Empty));
        assert_eq!(
            RetrySchedule::parse("1.5"),
            Err(ScheduleError::NotSeconds("1.5".into()))
        );
        assert_eq!(
            RetrySchedule::parse("-1"),
            Err(ScheduleError::NotSeconds("-1".into()))
        );
        assert_eq!(
            RetrySchedule::parse("5s"),
            Err(ScheduleError::NotSeconds("5s".into()))
        );
        assert_eq!(
            RetrySchedule::parse("604801"),
            Err(ScheduleError::TooLong("604801".into()))
        );
        assert!(matches!(
            RetrySchedule::parse("99999999999999999999999"),
            Err(ScheduleError::TooLong(_))
        ));
        assert_eq!(
            RetrySchedule::parse(&vec!["1"; 33].join(",")),
            Err(ScheduleError::TooMany)
        );
        assert_eq!(
            RetrySchedule::parse(&vec!["1"; 32].join(","))
                .unwrap()
                .attempts(),
            33
        );
        assert_eq!(
            RetrySchedule::from_delays(vec![])
                .unwrap()
                .next_retry(1, None, 0),
            None
        );
    }

    #[test]
    fn retry_after_is_the_later_and_capped() {
        let s = RetrySchedule::parse("10").unwrap();
        assert_eq!(
            s.next_retry(1, Some(S(5)), 100),
            Some(S(10)),
            "the schedule is later"
        );
        assert_eq!(
            s.next_retry(1, Some(S(60)), 100),
            Some(S(60)),
            "Retry-After is later"
        );
        assert_eq!(
            s.next_retry(1, Some(S(10 * 86400)), 100),
            Some(MAX_RETRY_AFTER),
            "capped"
        );
        assert_eq!(
            s.next_retry(2, Some(S(60)), 100),
            None,
            "no retries left, whatever it asks"
        );
        let long = RetrySchedule::parse("172800").unwrap();
        assert_eq!(
            long.next_retry(1, Some(S(10 * 86400)), 100),
            Some(S(172800))
        );
    }

    #[test]
    fn retry_after_values() {
        let now = 1445412480; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(S(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(S(0)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(S(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(S(0))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:05 GMT", now),
            Some(S(125))
        );
        assert_eq!(
            parse_retry_after("Tue, 20 Oct 2015 07:28:00 GMT", now),
            Some(S(0)),
            "past"
        );
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 23:59:59 GMT"),
            Some(951868799)
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253402300799)
        );
        for bad in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nox 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Mon, 29 Feb 1900 00:00:00 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 19a4 08:49:37 GMT",
            "Sun, 06 Nov 1994 08-49-37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            "Sun, 06 Nov 1994 08:49:+7 GMT",
            "Sun, 06 Nov 1994 08:49:é GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn outcomes() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(Outcome::from_status(status), Outcome::Success);
        }
        assert_eq!(Outcome::from_status(410), Outcome::Gone);
        for status in [
            100, 199, 300, 301, 302, 304, 307, 308, 400, 404, 409, 429, 500, 503, 999,
        ] {
            assert_eq!(Outcome::from_status(status), Outcome::Failure, "{status}");
        }
    }
}
