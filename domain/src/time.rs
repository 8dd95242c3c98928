//! Instants as the contract renders them: RFC 3339, UTC, millisecond precision.
//!
//! The domain has no clock of its own (see [`crate::ports::Clock`]); this is only the value type,
//! kept free of date libraries because the one format we need is small and must be byte-identical
//! on every cloud.

use std::fmt;

/// Milliseconds since the Unix epoch, UTC.
///
/// ```
/// use paracell_domain::Timestamp;
/// let t = Timestamp::from_unix_millis(1_795_000_000_123);
/// assert_eq!(t.to_string(), "2026-11-18T11:06:40.123Z");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// An instant from milliseconds since the Unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// This instant moved by `millis` (saturating).
    pub const fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }
}

impl Timestamp {
    /// The RFC 3339 text (`2026-01-01T00:00:00.000Z`) in a stack buffer: formatting through
    /// `core::fmt` costs several times more, and this runs twice per accepted transaction.
    fn rfc3339(self) -> [u8; 24] {
        let millis = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let secs_of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + u8::try_from(value.rem_euclid(10)).unwrap_or(0);
                value /= 10;
            }
        };
        put(0, 4, year.clamp(0, 9999));
        put(5, 2, i64::from(month));
        put(8, 2, i64::from(day));
        put(11, 2, secs_of_day / 3600);
        put(14, 2, secs_of_day % 3600 / 60);
        put(17, 2, secs_of_day % 60);
        put(20, 3, millis);
        out
    }
}

impl Timestamp {
    /// Appends the RFC 3339 text to `out` (ASCII, so this cannot fail).
    pub fn push_rfc3339(self, out: &mut String) {
        out.extend(self.rfc3339().iter().map(|b| char::from(*b)));
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(24);
        self.push_rfc3339(&mut text);
        f.write_str(&text)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(24);
        self.push_rfc3339(&mut text);
        serializer.serialize_str(&text)
    }
}

impl Timestamp {
    /// Parses exactly the form this type renders (`YYYY-MM-DDTHH:MM:SS.mmmZ`), so that a stored
    /// instant reads back to the same value. Anything else is `None`.
    ///
    /// ```
    /// use paracell_domain::Timestamp;
    /// let t = Timestamp::from_unix_millis(1_767_225_600_123);
    /// assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
    /// assert_eq!(Timestamp::parse_rfc3339("2026-02-30T00:00:00.000Z"), None);
    /// assert_eq!(Timestamp::parse_rfc3339("2026-01-01T00:00:00Z"), None);
    /// ```
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
            return None;
        }
        if b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
            return None;
        }
        let number = |from: usize, to: usize| -> Option<i64> {
            b[from..to].iter().try_fold(0i64, |acc, &d| {
                d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
            })
        };
        let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
        let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
        let millis = number(20, 23)?;
        if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let month = u32::try_from(month).ok()?;
        let day = u32::try_from(day).ok()?;
        let days = days_from_civil(year, month, day);
        // Reject impossible dates (30 February) by rendering the day back.
        if civil_from_days(days) != (year, month, day) {
            return None;
        }
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
        Some(Self(secs * 1000 + millis))
    }
}

/// A proleptic Gregorian date to days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_renders() {
        for millis in [0, 951_782_400_000, 4_102_444_799_999, 1_767_225_600_001] {
            let t = Timestamp::from_unix_millis(millis);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t), "{t}");
        }
        for bad in [
            "2026-13-01T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01 00:00:00.000Z",
            "2026-01-01T00:00:00.000+00:00",
            "+026-01-01T00:00:00.000Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn renders_known_instants() {
        assert_eq!(
            Timestamp::from_unix_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(4_102_444_799_999).to_string(),
            "2099-12-31T23:59:59.999Z"
        );
    }
}
