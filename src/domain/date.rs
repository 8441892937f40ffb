//! Calendar dates and the instants they stand for. A signal may end on a calendar day (the day
//! its subject leaves an age range); the law's terms run in years. Both are turned into
//! [`UnixMillis`] here, once, so that everything past this module compares instants.
//!
//! A day starts at 00:00 in Europe/Amsterdam: the day a Dutch organisation means. The offset is
//! computed from the EU summer-time rule (Directive 2000/84/EC: from 01:00 UTC on the last
//! Sunday of March to 01:00 UTC on the last Sunday of October), which has held in the
//! Netherlands since 1996, rather than from a time-zone database: midnight never falls in a
//! changeover, so the rule needs only the date.

use std::fmt;

use time::{Date, Month, OffsetDateTime};

use super::ids::UnixMillis;

/// A day of the Gregorian calendar, as written `YYYY-MM-DD`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CalendarDate(Date);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("must be a date written YYYY-MM-DD")]
    Format,
    #[error("is not a day of the calendar")]
    NoSuchDay,
}

impl CalendarDate {
    /// Parses exactly `YYYY-MM-DD` (four-digit year, two-digit month and day).
    pub fn parse(input: &str) -> Result<CalendarDate, DateError> {
        let bytes = input.as_bytes();
        let shaped = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shaped {
            return Err(DateError::Format);
        }
        let number = |range: std::ops::Range<usize>| -> u16 {
            input[range].parse().expect("checked to be digits")
        };
        let month = Month::try_from(number(5..7) as u8).map_err(|_| DateError::NoSuchDay)?;
        let year = i32::from(number(0..4));
        Date::from_calendar_date(year, month, number(8..10) as u8)
            .map(CalendarDate)
            .map_err(|_| DateError::NoSuchDay)
    }

    /// The instant this day starts in Europe/Amsterdam.
    pub fn start_in_amsterdam(self) -> UnixMillis {
        let year = self.0.year();
        let summer =
            last_sunday(year, Month::March) < self.0 && self.0 <= last_sunday(year, Month::October);
        let offset_hours: i64 = if summer { 2 } else { 1 };
        let utc_midnight = self.0.midnight().assume_utc().unix_timestamp();
        UnixMillis((utc_midnight - offset_hours * 3600) * 1000)
    }
}

impl fmt::Display for CalendarDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }
}

impl fmt::Debug for CalendarDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CalendarDate({self})")
    }
}

fn last_sunday(year: i32, month: Month) -> Date {
    let last = Date::from_calendar_date(year, month, month.length(year))
        .expect("the last day of a month exists");
    last - time::Duration::days(i64::from(last.weekday().number_days_from_sunday()))
}

impl UnixMillis {
    /// The moment as a wall clock in Europe/Amsterdam, for people reading a report:
    /// `2026-11-28 20:15:03 CET` (CEST in summer time, from 01:00 UTC on the last Sunday of
    /// March to 01:00 UTC on the last Sunday of October, as in the whole EU).
    pub fn amsterdam(self) -> String {
        let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
        else {
            return self.rfc3339();
        };
        let year = at.year();
        let switch = |month| {
            last_sunday(year, month)
                .with_hms(1, 0, 0)
                .expect("01:00 exists")
                .assume_utc()
        };
        let summer = switch(Month::March) <= at && at < switch(Month::October);
        let (hours, zone) = if summer { (2, "CEST") } else { (1, "CET") };
        let local = at.to_offset(time::UtcOffset::from_hms(hours, 0, 0).expect("a valid offset"));
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {zone}",
            local.year(),
            u8::from(local.month()),
            local.day(),
            local.hour(),
            local.minute(),
            local.second()
        )
    }

    /// The same moment `years` calendar years later (UTC); 29 February becomes 28 February in
    /// a year without it, so that "at most `years` years" holds. Beyond what a calendar date
    /// can hold, the far end of time.
    pub fn plus_years(self, years: i32) -> UnixMillis {
        let beyond = if years >= 0 {
            UnixMillis(i64::MAX)
        } else {
            UnixMillis(i64::MIN)
        };
        let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
        else {
            return beyond;
        };
        let date = at.date();
        let Some(target) = date.year().checked_add(years) else {
            return beyond;
        };
        let moved = date
            .replace_year(target)
            .or_else(|_| Date::from_calendar_date(target, Month::February, 28));
        match moved {
            Ok(date) => {
                let later = at.replace_date(date).unix_timestamp_nanos() / 1_000_000;
                i64::try_from(later).map_or(beyond, UnixMillis)
            }
            Err(_) => beyond,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> CalendarDate {
        CalendarDate::parse(s).unwrap()
    }

    fn rfc3339(t: UnixMillis) -> String {
        t.rfc3339()
    }

    #[test]
    fn amsterdam_time_follows_summer_time() {
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        let at = |month: u8, day: u8, hour: u8, minute: u8, second: u8| {
            let t = Date::from_calendar_date(2026, Month::try_from(month).unwrap(), day)
                .unwrap()
                .with_hms(hour, minute, second)
                .unwrap()
                .assume_utc();
            UnixMillis(t.unix_timestamp() * 1000).amsterdam()
        };
        assert_eq!(at(11, 28, 19, 15, 3), "2026-11-28 20:15:03 CET");
        assert_eq!(at(7, 1, 10, 0, 0), "2026-07-01 12:00:00 CEST");
        assert_eq!(at(3, 29, 0, 59, 59), "2026-03-29 01:59:59 CET");
        assert_eq!(at(3, 29, 1, 0, 0), "2026-03-29 03:00:00 CEST");
        assert_eq!(at(10, 25, 0, 59, 59), "2026-10-25 02:59:59 CEST");
        assert_eq!(at(10, 25, 1, 0, 0), "2026-10-25 02:00:00 CET");
    }

    #[test]
    fn only_real_days_written_yyyy_mm_dd_parse() {
        assert_eq!(date("2031-04-17").to_string(), "2031-04-17");
        assert_eq!(date("2028-02-29").to_string(), "2028-02-29");
        for bad in [
            "",
            "2031-4-17",
            "17-04-2031",
            "2031/04/17",
            "2031-04-17T00:00",
            " 2031-04-17",
            "+031-04-17",
            "２０３１-04-17",
        ] {
            assert_eq!(CalendarDate::parse(bad), Err(DateError::Format), "{bad:?}");
        }
        for impossible in ["2031-02-29", "2031-13-01", "2031-00-10", "2031-04-31"] {
            assert_eq!(
                CalendarDate::parse(impossible),
                Err(DateError::NoSuchDay),
                "{impossible:?}"
            );
        }
    }

    #[test]
    fn a_day_starts_at_midnight_in_amsterdam_summer_or_winter() {
        // Winter (CET, UTC+1) and summer (CEST, UTC+2).
        assert_eq!(
            rfc3339(date("2031-01-15").start_in_amsterdam()),
            "2031-01-14T23:00:00.000Z"
        );
        assert_eq!(
            rfc3339(date("2031-07-15").start_in_amsterdam()),
            "2031-07-14T22:00:00.000Z"
        );
        // 2031: summer time from Sunday 30 March to Sunday 26 October. Both changeover days
        // start in the time of the night before.
        assert_eq!(
            rfc3339(date("2031-03-30").start_in_amsterdam()),
            "2031-03-29T23:00:00.000Z"
        );
        assert_eq!(
            rfc3339(date("2031-03-31").start_in_amsterdam()),
            "2031-03-30T22:00:00.000Z"
        );
        assert_eq!(
            rfc3339(date("2031-10-26").start_in_amsterdam()),
            "2031-10-25T22:00:00.000Z"
        );
        assert_eq!(
            rfc3339(date("2031-10-27").start_in_amsterdam()),
            "2031-10-26T23:00:00.000Z"
        );
    }

    #[test]
    fn years_are_calendar_years() {
        let start = date("2026-11-28").start_in_amsterdam();
        assert_eq!(rfc3339(start.plus_years(5)), "2031-11-27T23:00:00.000Z");
        let leap = date("2028-03-01")
            .start_in_amsterdam()
            .plus_millis(-3_600_000);
        assert_eq!(rfc3339(leap), "2028-02-29T22:00:00.000Z");
        assert_eq!(rfc3339(leap.plus_years(5)), "2033-02-28T22:00:00.000Z");
        assert_eq!(UnixMillis(i64::MAX - 1).plus_years(5), UnixMillis(i64::MAX));
    }
}
