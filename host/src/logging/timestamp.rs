//! The timestamp at the start of every line: RFC 3339 in UTC with
//! microseconds, `2026-12-01T23:34:03.036644Z`, as `tracing-subscriber`
//! writes it, so lines look the same as before the writer thread.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `time` to `out`.
pub(crate) fn write(out: &mut String, time: SystemTime) {
    let (seconds, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => (since.as_secs() as i64, since.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            match before.subsec_nanos() {
                0 => (-(before.as_secs() as i64), 0),
                nanos => (-(before.as_secs() as i64) - 1, 1_000_000_000 - nanos),
            }
        }
    };
    // Lines come in bursts within one second: the date and time up to the
    // second are formatted once per second.
    LAST_SECOND.with_borrow_mut(|(second, prefix)| {
        if *second != Some(seconds) {
            prefix.clear();
            up_to_the_second(prefix, seconds);
            *second = Some(seconds);
        }
        out.push_str(prefix);
    });
    let micros = nanos / 1_000;
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.push('.');
    out.extend(digits.iter().map(|&digit| char::from(digit)));
    out.push('Z');
}

thread_local! {
    /// The last second written, and its text.
    static LAST_SECOND: RefCell<(Option<i64>, String)> = const { RefCell::new((None, String::new())) };
}

/// `2026-12-01T23:34:03` for `seconds` since the epoch.
fn up_to_the_second(out: &mut String, seconds: i64) {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = if year > 9999 {
        write!(out, "+{year}")
    } else if year < 0 {
        write!(out, "{year:05}")
    } else {
        write!(out, "{year:04}")
    };
    let _ = write!(
        out,
        "-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    );
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: i64, nanos: u32) -> String {
        let time = if seconds >= 0 {
            UNIX_EPOCH + Duration::new(seconds as u64, nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
                + Duration::from_nanos(u64::from(nanos))
        };
        let mut out = String::new();
        write(&mut out, time);
        out
    }

    #[test]
    fn dates_and_times_are_those_of_utc() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_796_168_043, 36_644_999), "2026-12-01T23:34:03.036644Z");
        // A leap day, the last second of a leap year, a century that is
        // not a leap year and one that is.
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(
            at(1_735_689_599, 999_999_999),
            "2024-12-31T23:59:59.999999Z"
        );
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(-1, 500_000_000), "1969-12-31T23:59:59.500000Z");
    }

    #[test]
    fn every_day_of_four_centuries_matches_tracing_subscriber() {
        use tracing_subscriber::fmt::time::FormatTime as _;
        // tracing-subscriber's own clock cannot be given a time, so compare
        // against its formatting of "now" and the day arithmetic against a
        // plain day-by-day walk.
        let (mut year, mut month, mut day) = (1970i64, 1u32, 1u32);
        for days in 0..146_097i64 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
        let mut theirs = String::new();
        let before = SystemTime::now();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut tracing_subscriber::fmt::format::Writer::new(
                &mut theirs,
            ))
            .unwrap();
        let mut ours = String::new();
        write(&mut ours, before);
        // The same up to the second (the two clocks were read apart).
        assert_eq!(ours.len(), theirs.len(), "{ours} {theirs}");
        assert_eq!(ours[..17], theirs[..17], "{ours} {theirs}");
    }
}
