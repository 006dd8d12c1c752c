//! The `Date` header, formatted once per second (IMF-fixdate, RFC 9110), without a time crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A cached `Date` value, re-rendered only when the second changes.
pub struct DateCache {
    secs: u64,
    text: [u8; 29],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut d = DateCache {
            secs: u64::MAX,
            text: [b' '; 29],
        };
        d.refresh();
        d
    }
}

impl DateCache {
    /// Updates the value if the wall-clock second changed; cheap enough to call per batch.
    pub fn refresh(&mut self) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs {
            self.secs = secs;
            self.text = format(secs);
        }
    }

    pub fn get(&self) -> &[u8] {
        &self.text
    }
}

/// `(year, month, day, hour, minute, second)` in UTC for seconds since the epoch.
pub fn civil(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2026-12-03T14:02:11Z` (RFC 3339, UTC) for seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the epoch.
pub fn format(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let (year, month, day, h, m, s) = civil(secs);
    let mut out = [b' '; 29];
    let two = |out: &mut [u8], at: usize, v: u64| {
        out[at] = b'0' + (v / 10 % 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    };
    out[0..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3] = b',';
    two(&mut out, 5, day as u64);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let y = year.clamp(0, 9999) as u64;
    two(&mut out, 12, y / 100);
    two(&mut out, 14, y % 100);
    two(&mut out, 17, h);
    out[19] = b':';
    two(&mut out, 20, m);
    out[22] = b':';
    two(&mut out, 23, s);
    out[26..29].copy_from_slice(b"GMT");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        for (secs, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_795_437_296, "Mon, 23 Nov 2026 12:34:56 GMT"),
        ] {
            assert_eq!(std::str::from_utf8(&super::format(secs)).unwrap(), want);
        }
        assert_eq!(super::rfc3339(1_795_437_296), "2026-11-23T12:34:56Z");
    }
}
