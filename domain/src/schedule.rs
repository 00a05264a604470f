//! Cron schedules evaluated in an IANA time zone, and Herald's daylight-saving policy.
//!
//! croner 2.2 parses the pattern and answers "does this field match"; the search for the next
//! occurrence is done here because croner's own search gets daylight saving wrong in two ways:
//! from inside a repeated (fall-back) hour it returns the hour's *first* pass, an instant before
//! the one asked about, so a time can fire twice or the schedule can run backwards; and it gives up
//! on gaps longer than an hour (Pacific/Apia skipped 30 December 2011 entirely).
//!
//! The rule implemented (`api.md` section 2): every local date-time that matches the pattern is
//! mapped to one instant. A local time that occurs once is that instant; one that occurs twice
//! (clocks go back) is its first occurrence; one that does not exist (clocks go forward) is the
//! first instant after the gap. Times inside one gap therefore collapse into a single firing.
//! Occurrences are whole seconds.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use croner::Cron;

/// How far ahead an occurrence is looked for. The Gregorian calendar repeats every 400 years, so
/// a pattern with no match in that window has none at all.
const SEARCH_YEARS: i32 = 400;

/// Skipped candidates allowed in one search. Candidates are skipped only inside a repeated hour
/// (second pass of a fall-back), so even an every-second pattern stays far below this.
const MAX_SKIPPED_CANDIDATES: usize = 100_000;

/// The longest gap a time zone has had (Pacific/Apia, Pacific/Kwajalein: one whole day), with room.
const MAX_GAP_MINUTES: usize = 48 * 60;

/// The message for a cron whose field count is wrong.
const FIELD_COUNT: &str =
    "must have 5 fields (minute hour day-of-month month day-of-week), or 6 with leading seconds";

/// A validated cron pattern bound to a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    source: String,
    cron: Cron,
    tz: Tz,
}

impl CronSchedule {
    /// Parses a 5-field cron (`minute hour day-of-month month day-of-week`) or a 6-field one with
    /// leading seconds, evaluated in `tz` (an IANA zone name; UTC when `None`).
    ///
    /// Day-of-month and day-of-week combine as in Vixie cron: when both are restricted a day
    /// matching either fires. Names (`MON`, `JAN`), `L`, `W`, `#` and `?` are accepted where cron
    /// allows them; `@daily`-style nicknames are not. A pattern that can never fire (`0 0 30 2 *`)
    /// is refused. Errors are messages that complete a field name ("must have 5 fields ...").
    pub fn parse(cron: &str, tz: Option<&str>) -> Result<Self, String> {
        let tz = match tz {
            None => Tz::UTC,
            Some(name) => parse_timezone(name)
                .ok_or_else(|| "must be an IANA time zone, e.g. America/New_York".to_string())?,
        };
        let fields: Vec<&str> = cron.split_whitespace().collect();
        if !(5..=6).contains(&fields.len()) {
            return Err(FIELD_COUNT.to_string());
        }
        check_fields(&fields)?;
        let source = fields.join(" ");
        let cron = Cron::new(&source)
            .with_seconds_optional()
            .parse()
            .map_err(|err| format!("is not a valid cron expression: {}", describe(&err)))?;
        let schedule = Self { source, cron, tz };
        if !schedule.fires_in_a_calendar_cycle() {
            return Err("never fires: no date matches it (for example 30 February)".to_string());
        }
        Ok(schedule)
    }

    /// The pattern as parsed, with runs of whitespace collapsed to one space.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The zone the pattern is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first occurrence strictly after `after`, or `None` if there is none within 400 years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let whole = after.with_nanosecond(0)?;
        self.next_at_or_after(whole.checked_add_signed(Duration::seconds(1))?)
    }

    /// The first occurrence at or after `at`, or `None` if there is none within 400 years.
    pub fn next_at_or_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = ceil_to_second(at)?;
        // A local time in the gap just before `at` resolves to `at` itself, so the search starts
        // at the local time one second before `at`, plus that second.
        let just_before = self.local(at.checked_sub_signed(Duration::seconds(1))?);
        let mut from = self
            .local(at)
            .min(just_before.checked_add_signed(Duration::seconds(1))?);
        let until = add_years(from.date(), SEARCH_YEARS);
        for _ in 0..MAX_SKIPPED_CANDIDATES {
            let candidate = self.next_local_match(from, until)?;
            let instant = self.resolve(candidate)?;
            if instant >= at {
                return Some(instant);
            }
            // Only the second pass of a repeated hour gets here: its instants already fired.
            from = candidate.checked_add_signed(Duration::seconds(1))?;
        }
        None
    }

    /// Whether a local date-time matches every field of the pattern (no time zone involved).
    pub fn matches_local(&self, local: NaiveDateTime) -> bool {
        let p = &self.cron.pattern;
        let ok = |r: Result<bool, croner::errors::CronError>| r.unwrap_or(false);
        ok(p.second_match(local.second()))
            && ok(p.minute_match(local.minute()))
            && ok(p.hour_match(local.hour()))
            && ok(p.month_match(local.month()))
            && ok(p.day_match(local.year(), local.month(), local.day()))
    }

    fn local(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        instant.with_timezone(&self.tz).naive_local()
    }

    /// The 28-year solar cycle covers every combination of weekday, month length and leap day
    /// from 1901 to 2099, so a pattern with no match from 2001 to 2028 never matches.
    fn fires_in_a_calendar_cycle(&self) -> bool {
        let start = NaiveDate::from_ymd_opt(2001, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
        let until = NaiveDate::from_ymd_opt(2029, 1, 1);
        match (start, until) {
            (Some(start), Some(until)) => self.next_local_match(start, until).is_some(),
            _ => false,
        }
    }

    /// The first local date-time at or after `from` (whole seconds) that matches the pattern,
    /// looking at dates before `until`.
    fn next_local_match(&self, from: NaiveDateTime, until: NaiveDate) -> Option<NaiveDateTime> {
        let p = &self.cron.pattern;
        let mut date = from.date();
        let mut start = from.time().with_nanosecond(0)?;
        while date < until {
            if !p.month_match(date.month()).unwrap_or(false) {
                date = first_of_next_month(date)?;
                start = NaiveTime::MIN;
                continue;
            }
            if p.day_match(date.year(), date.month(), date.day())
                .unwrap_or(false)
            {
                if let Some(time) = self.first_time_at_or_after(start) {
                    return Some(date.and_time(time));
                }
            }
            date = date.succ_opt()?;
            start = NaiveTime::MIN;
        }
        None
    }

    /// The first time of day at or after `from` whose hour, minute and second match.
    fn first_time_at_or_after(&self, from: NaiveTime) -> Option<NaiveTime> {
        let p = &self.cron.pattern;
        let (mut h, mut m, mut s) = (from.hour(), from.minute(), from.second());
        loop {
            let hour = p.next_hour_match(h).ok()??;
            if hour != h {
                (h, m, s) = (hour, 0, 0);
            }
            let Some(minute) = p.next_minute_match(m).ok()? else {
                (h, m, s) = (h + 1, 0, 0);
                if h > 23 {
                    return None;
                }
                continue;
            };
            if minute != m {
                (m, s) = (minute, 0);
            }
            match p.next_second_match(s).ok()? {
                Some(second) => return NaiveTime::from_hms_opt(h, m, second),
                None if m < 59 => (m, s) = (m + 1, 0),
                None if h < 23 => (h, m, s) = (h + 1, 0, 0),
                None => return None,
            }
        }
    }

    /// The instant a matching local date-time fires at, by the policy in the module doc.
    fn resolve(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        resolve_local(self.tz, local)
    }
}

/// The instant a local date-time in `tz` stands for, by the daylight-saving policy of `api.md`
/// section 2: a time that occurs twice is its first occurrence, and a time in a gap is the first
/// instant after the gap.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => end_of_gap(tz, local),
    }
}

/// The first instant after the gap that `local` falls in.
fn end_of_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let exists = |t: &NaiveDateTime| !matches!(tz.from_local_datetime(t), LocalResult::None);
    let mut missing = local;
    for _ in 0..MAX_GAP_MINUTES {
        let probe = missing.checked_add_signed(Duration::minutes(1))?;
        if exists(&probe) {
            // Transitions are whole seconds but not always whole minutes (old local mean
            // time offsets), so narrow the last minute down to the second.
            let mut present = probe;
            while (present - missing).num_seconds() > 1 {
                let mid = missing + Duration::seconds((present - missing).num_seconds() / 2);
                if exists(&mid) {
                    present = mid;
                } else {
                    missing = mid;
                }
            }
            return tz
                .from_local_datetime(&present)
                .earliest()
                .map(|t| t.with_timezone(&Utc));
        }
        missing = probe;
    }
    None
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.tz == other.tz
    }
}

/// Parses an IANA time zone name exactly as the tz database spells it (`America/New_York`).
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

#[derive(Clone, Copy, PartialEq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// Words allowed in this field. croner replaces names anywhere in the pattern (a month name
    /// in the weekday field becomes a weekday number), so they are checked per field first.
    fn allows_word(self, word: &str) -> bool {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        match self {
            Field::DayOfMonth => word == "l" || word == "w",
            Field::Month => MONTHS.contains(&word),
            Field::DayOfWeek => word == "l" || WEEKDAYS.contains(&word),
            Field::Second | Field::Minute | Field::Hour => false,
        }
    }

    fn allows_symbol(self, c: char) -> bool {
        match c {
            '*' | '/' | ',' | '-' => true,
            '?' => matches!(self, Field::DayOfMonth | Field::DayOfWeek),
            '#' => self == Field::DayOfWeek,
            _ => false,
        }
    }
}

/// Refuses characters and list items that croner would otherwise accept or reinterpret.
fn check_fields(fields: &[&str]) -> Result<(), String> {
    const FIVE: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];
    let kinds = if fields.len() == 6 {
        std::iter::once(Field::Second)
            .chain(FIVE)
            .collect::<Vec<_>>()
    } else {
        FIVE.to_vec()
    };
    for (field, kind) in fields.iter().zip(kinds) {
        let invalid = |what: String| {
            Err(format!(
                "is not a valid cron expression: {what} in the {} field",
                kind.name()
            ))
        };
        if field.split(',').any(str::is_empty) {
            return invalid("an empty list item".to_string());
        }
        let lower = field.to_ascii_lowercase();
        let mut rest = lower.as_str();
        while let Some(c) = rest.chars().next() {
            if c.is_ascii_alphabetic() {
                let end = rest
                    .find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                if !kind.allows_word(word) {
                    return invalid(format!("unexpected {word:?}"));
                }
                rest = &rest[end..];
            } else {
                if !c.is_ascii_digit() && !kind.allows_symbol(c) {
                    return invalid(format!("unexpected {c:?}"));
                }
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Ok(())
}

/// croner's error text, reworded to follow "is not a valid cron expression: ".
fn describe(err: &croner::errors::CronError) -> String {
    let text = err.to_string();
    let text = text
        .strip_prefix("Component error: ")
        .or_else(|| text.strip_prefix("Invalid pattern: "))
        .unwrap_or(&text)
        .trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unrecognised pattern".to_string(),
    }
}

fn ceil_to_second(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if at.nanosecond() == 0 {
        Some(at)
    } else {
        at.with_nanosecond(0)?
            .checked_add_signed(Duration::seconds(1))
    }
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

fn add_years(date: NaiveDate, years: i32) -> NaiveDate {
    date.year()
        .checked_add(years)
        .and_then(|year| NaiveDate::from_ymd_opt(year, 1, 1))
        .unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn schedule(cron: &str, tz: &str) -> CronSchedule {
        CronSchedule::parse(cron, Some(tz)).expect("test cron")
    }

    fn next_n(s: &CronSchedule, after: &str, n: usize) -> Vec<DateTime<Utc>> {
        let mut at = utc(after);
        let mut out = Vec::new();
        for _ in 0..n {
            at = s.next_after(at).expect("an occurrence");
            out.push(at);
        }
        out
    }

    #[test]
    fn weekly_cron_from_the_seed_fires_on_mondays_at_nine_utc() {
        let s = CronSchedule::parse("0 9 * * 1", None).unwrap();
        assert_eq!(
            next_n(&s, "2026-04-29T12:00:00Z", 2),
            [utc("2026-05-04T09:00:00Z"), utc("2026-05-11T09:00:00Z")]
        );
    }

    #[test]
    fn evaluates_in_the_campaign_time_zone() {
        let s = schedule("0 9 * * *", "America/New_York");
        assert_eq!(
            next_n(&s, "2026-05-01T00:00:00Z", 1),
            [utc("2026-05-01T13:00:00Z")]
        );
    }

    #[test]
    fn six_fields_mean_leading_seconds() {
        let s = CronSchedule::parse("30 0 9 * * *", None).unwrap();
        assert_eq!(
            next_n(&s, "2026-05-01T00:00:00Z", 1),
            [utc("2026-05-01T09:00:30Z")]
        );
    }

    #[test]
    fn next_after_is_strict_and_next_at_or_after_is_not() {
        let s = CronSchedule::parse("0 9 * * *", None).unwrap();
        let nine = utc("2026-05-01T09:00:00Z");
        assert_eq!(s.next_at_or_after(nine), Some(nine));
        assert_eq!(s.next_after(nine), Some(utc("2026-05-02T09:00:00Z")));
        assert_eq!(
            s.next_at_or_after(utc("2026-05-01T08:59:59.5Z")),
            Some(nine)
        );
        assert_eq!(
            s.next_after(utc("2026-05-01T09:00:00.5Z")),
            Some(utc("2026-05-02T09:00:00Z"))
        );
    }

    #[test]
    fn new_york_spring_forward_fires_at_the_end_of_the_gap() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist.
        let s = schedule("30 2 * * *", "America/New_York");
        assert_eq!(
            next_n(&s, "2026-03-07T12:00:00Z", 3),
            [
                utc("2026-03-08T07:00:00Z"),
                utc("2026-03-09T06:30:00Z"),
                utc("2026-03-10T06:30:00Z"),
            ]
        );
    }

    #[test]
    fn new_york_fall_back_fires_once_at_the_first_pass() {
        // 2026-11-01: 02:00 EDT goes back to 01:00 EST, so 01:30 happens at 05:30Z and 06:30Z.
        let s = schedule("30 1 * * *", "America/New_York");
        assert_eq!(
            next_n(&s, "2026-10-31T12:00:00Z", 2),
            [utc("2026-11-01T05:30:00Z"), utc("2026-11-02T06:30:00Z")]
        );
    }

    #[test]
    fn asking_from_inside_the_repeated_hour_does_not_go_back_or_fire_twice() {
        let s = schedule("30 1 * * *", "America/New_York");
        // 06:10Z is 01:10 EST, the second pass. croner 2.2 answers 05:30Z here, before the
        // question; the occurrence of that local time has already fired.
        assert_eq!(
            s.next_after(utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
        assert_eq!(
            s.next_at_or_after(utc("2026-11-01T06:30:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn every_half_hour_skips_the_second_pass_of_the_repeated_hour() {
        let s = schedule("*/30 * * * *", "America/New_York");
        assert_eq!(
            next_n(&s, "2026-11-01T04:50:00Z", 4),
            [
                utc("2026-11-01T05:00:00Z"),
                utc("2026-11-01T05:30:00Z"),
                utc("2026-11-01T07:00:00Z"),
                utc("2026-11-01T07:30:00Z"),
            ]
        );
    }

    #[test]
    fn times_inside_one_gap_collapse_into_one_firing() {
        let s = schedule("*/15 * * * *", "America/New_York");
        assert_eq!(
            next_n(&s, "2026-03-08T06:40:00Z", 3),
            [
                utc("2026-03-08T06:45:00Z"),
                utc("2026-03-08T07:00:00Z"),
                utc("2026-03-08T07:15:00Z"),
            ]
        );
    }

    #[test]
    fn the_end_of_a_gap_is_found_from_exactly_that_instant() {
        let s = schedule("30 2 * * *", "America/New_York");
        let end_of_gap = utc("2026-03-08T07:00:00Z");
        assert_eq!(s.next_at_or_after(end_of_gap), Some(end_of_gap));
        assert_eq!(s.next_after(end_of_gap), Some(utc("2026-03-09T06:30:00Z")));
    }

    #[test]
    fn london_spring_forward_and_fall_back() {
        // 2026-03-29: 01:00 GMT jumps to 02:00 BST.
        let s = schedule("30 1 * * *", "Europe/London");
        assert_eq!(
            next_n(&s, "2026-03-28T12:00:00Z", 2),
            [utc("2026-03-29T01:00:00Z"), utc("2026-03-30T00:30:00Z")]
        );
        // 2026-10-25: 02:00 BST goes back to 01:00 GMT; 01:30 happens at 00:30Z and 01:30Z.
        assert_eq!(
            next_n(&s, "2026-10-24T12:00:00Z", 2),
            [utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
        );
    }

    #[test]
    fn lord_howe_half_hour_shifts() {
        // 2026-10-04: 02:00 (+10:30) jumps to 02:30 (+11:00), so 02:15 does not exist.
        let s = schedule("15 2 * * *", "Australia/Lord_Howe");
        assert_eq!(
            next_n(&s, "2026-10-03T00:00:00Z", 2),
            [utc("2026-10-03T15:30:00Z"), utc("2026-10-04T15:15:00Z")]
        );
        // 2026-04-05: 02:00 (+11:00) goes back to 01:30 (+10:30); 01:45 happens twice.
        let s = schedule("45 1 * * *", "Australia/Lord_Howe");
        assert_eq!(
            next_n(&s, "2026-04-04T00:00:00Z", 2),
            [utc("2026-04-04T14:45:00Z"), utc("2026-04-05T15:15:00Z")]
        );
    }

    #[test]
    fn a_skipped_calendar_day_fires_once_when_the_day_after_begins() {
        // Samoa skipped 30 December 2011: 23:59:59 on the 29th (-10) was followed by 00:00 on
        // the 31st (+14). croner 2.2 gives up here (it looks one hour past a gap).
        let s = schedule("0 9 * * *", "Pacific/Apia");
        assert_eq!(
            next_n(&s, "2011-12-28T12:00:00Z", 4),
            [
                utc("2011-12-28T19:00:00Z"),
                utc("2011-12-29T19:00:00Z"),
                utc("2011-12-30T10:00:00Z"),
                utc("2011-12-30T19:00:00Z"),
            ]
        );
    }

    #[test]
    fn leap_day_patterns_wait_for_the_next_leap_year() {
        let s = CronSchedule::parse("0 0 29 2 *", None).unwrap();
        assert_eq!(
            s.next_after(utc("2024-03-01T00:00:00Z")),
            Some(utc("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_like_vixie_cron() {
        // The 13th, or any Friday.
        let s = CronSchedule::parse("0 0 13 * 5", None).unwrap();
        assert_eq!(
            next_n(&s, "2026-05-01T12:00:00Z", 3),
            [
                utc("2026-05-08T00:00:00Z"),
                utc("2026-05-13T00:00:00Z"),
                utc("2026-05-15T00:00:00Z"),
            ]
        );
    }

    #[test]
    fn names_and_special_characters_are_accepted_where_cron_allows_them() {
        for cron in [
            "0 9 * * MON-FRI",
            "0 9 * JAN,jul *",
            "0 9 L * *",
            "0 9 15W * *",
            "0 9 * * 5#2",
            "0 9 * * FRI#L",
            "0 9 ? * 1",
            "*/5 * * * *",
            "0 0 9 * * 1",
        ] {
            assert!(CronSchedule::parse(cron, None).is_ok(), "{cron}");
        }
    }

    #[test]
    fn refuses_wrong_field_counts_nicknames_and_garbage() {
        let cases = [
            ("", FIELD_COUNT),
            ("0 9 * *", FIELD_COUNT),
            ("0 0 9 * * 1 2026", FIELD_COUNT),
            ("@daily", FIELD_COUNT),
            (
                "0 9 * * jun",
                "is not a valid cron expression: unexpected \"jun\" in the day-of-week field",
            ),
            (
                "0,, 9 * * *",
                "is not a valid cron expression: an empty list item in the minute field",
            ),
            (
                "L 9 * * *",
                "is not a valid cron expression: unexpected \"l\" in the minute field",
            ),
            (
                "0 24 * * *",
                "is not a valid cron expression: number out of bounds",
            ),
            (
                "*/0 * * * *",
                "is not a valid cron expression: step cannot be zero",
            ),
            (
                "0 0 30 2 *",
                "never fires: no date matches it (for example 30 February)",
            ),
            (
                "0 0 31 4,6,9,11 *",
                "never fires: no date matches it (for example 30 February)",
            ),
        ];
        for (cron, message) in cases {
            assert_eq!(
                CronSchedule::parse(cron, None).map(|s| s.source),
                Err(message.to_string()),
                "{cron:?}"
            );
        }
    }

    #[test]
    fn refuses_unknown_time_zones() {
        for tz in ["Mars/Olympus", "america/new_york", "", "EST+5"] {
            assert_eq!(
                CronSchedule::parse("0 9 * * *", Some(tz)).map(|s| s.source),
                Err("must be an IANA time zone, e.g. America/New_York".to_string())
            );
        }
    }

    /// Zones with every kind of transition: none, one-hour, half-hour, a skipped day.
    const ZONES: [&str; 8] = [
        "UTC",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "Pacific/Chatham",
        "America/Santiago",
        "Pacific/Apia",
    ];

    fn field(max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (2..=max / 2).prop_map(|step| format!("*/{step}")),
            (0..=max).prop_map(|v| v.to_string()),
            (0..=max, 0..=max).prop_map(|(a, b)| format!("{},{}", a.min(b), a.max(b))),
            (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        ]
    }

    fn cron() -> impl Strategy<Value = String> {
        let dow = prop_oneof![Just("*"), Just("1-5"), Just("0"), Just("6")];
        (field(59), field(23), dow).prop_map(|(m, h, d)| format!("{m} {h} * * {d}"))
    }

    /// Instants where the zone's offset changes during `year`, to the hour.
    fn transitions(tz: Tz, year: i32) -> Vec<DateTime<Utc>> {
        use chrono::Offset;
        let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let mut t = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();
        let mut found = Vec::new();
        while t.year() == year {
            let next = t + Duration::hours(1);
            if offset(t) != offset(next) {
                found.push(next);
            }
            t = next;
        }
        found
    }

    /// Mostly instants within a day and a half of a daylight-saving change (where the rules
    /// matter), sometimes anywhere from 2011 to 2031.
    fn instant_in(zone: &'static str) -> impl Strategy<Value = DateTime<Utc>> {
        let tz: Tz = zone.parse().unwrap();
        prop_oneof![
            1 => (1_293_840_000i64..1_924_992_000)
                .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
            3 => (2011..=2030i32, 0..4usize, -36 * 60..36 * 60i64).prop_map(
                move |(year, pick, minutes)| {
                    let found = transitions(tz, year);
                    let base = match found.len() {
                        0 => Utc.with_ymd_and_hms(year, 6, 1, 0, 0, 0).unwrap(),
                        n => found[pick % n],
                    };
                    base + Duration::minutes(minutes)
                }
            ),
        ]
    }

    fn case() -> impl Strategy<Value = (String, &'static str, DateTime<Utc>)> {
        (cron(), proptest::sample::select(&ZONES[..]))
            .prop_flat_map(|(cron, zone)| (Just(cron), Just(zone), instant_in(zone)))
    }

    /// Independent definition of the occurrence set, by scanning instants minute by minute.
    fn is_occurrence_by_scan(s: &CronSchedule, u: DateTime<Utc>) -> bool {
        let local = s.local(u);
        let earliest = s.tz.from_local_datetime(&local).earliest();
        if s.matches_local(local) && earliest.map(|t| t.with_timezone(&Utc)) == Some(u) {
            return true;
        }
        // `u` ends a gap: some skipped local minute before it matches.
        let previous = s.local(u - Duration::minutes(1));
        let mut skipped = previous + Duration::minutes(1);
        while skipped < local {
            if s.matches_local(skipped) {
                return true;
            }
            skipped += Duration::minutes(1);
        }
        false
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn next_after_agrees_with_a_minute_by_minute_scan((cron, zone, after) in case()) {
            let s = schedule(&cron, zone);
            let found = s.next_after(after).expect("these patterns fire at least weekly");
            prop_assert!(found > after);
            let mut u = after.with_second(0).unwrap() + Duration::minutes(1);
            while u < found {
                prop_assert!(!is_occurrence_by_scan(&s, u), "{} skipped {}", cron, u);
                u += Duration::minutes(1);
            }
            prop_assert!(is_occurrence_by_scan(&s, found), "{} returned {}", cron, found);
        }

        #[test]
        fn occurrences_increase_and_match_local_time_except_after_a_gap(
            (cron, zone, after) in case()
        ) {
            let s = schedule(&cron, zone);
            let mut at = after;
            for _ in 0..40 {
                let next = s.next_after(at).expect("an occurrence");
                prop_assert!(next > at);
                let local = s.local(next);
                let just_after_a_gap =
                    s.local(next - Duration::seconds(1)) + Duration::seconds(1) < local;
                prop_assert!(
                    s.matches_local(local) || just_after_a_gap,
                    "{} fired at {} ({} local)", cron, next, local
                );
                prop_assert_eq!(s.next_at_or_after(next), Some(next));
                at = next;
            }
        }
    }
}
