//! Warnings about ignored names: unknown `HEALTHD_*` variables, and names one edit away from a
//! known one (`DYN_SYSTEM_PROT`), which would otherwise leave a default silently in force.

use std::collections::BTreeMap;

use super::SETTINGS;

/// Warnings for ignored names: any unknown `HEALTHD_*` variable, and a `DYN_SYSTEM_*` variable that
/// is one edit away from a known one (Dynamo ignores unknown names silently; a typo then leaves the
/// default in force, which is the hardest mistake to see).
pub(super) fn unknown_name_warnings(env: &BTreeMap<String, String>) -> Vec<String> {
    let names: Vec<(&str, Vec<char>)> = SETTINGS
        .iter()
        .map(|s| s.var)
        .chain(EXTRA_KNOWN.iter().copied())
        .map(|k| (k, k.chars().collect()))
        .collect();
    let mut out = Vec::new();
    for name in env.keys() {
        if names.iter().any(|(k, _)| k == name) {
            continue;
        }
        let chars: Vec<char> = name.chars().collect();
        let near = names
            .iter()
            .find(|(_, k)| one_edit_apart(k, &chars))
            .map(|(k, _)| *k);
        if let Some(near) = near {
            out.push(format!(
                "ignoring {name}: unknown variable; did you mean {near}?"
            ));
        } else if name.starts_with("HEALTHD_") {
            out.push(format!(
                "ignoring {name}: unknown variable; see healthd --help"
            ));
        }
    }
    out
}

/// Variables read elsewhere (not serve settings) that must not draw an "unknown" warning.
const EXTRA_KNOWN: &[&str] = &[];

/// Whether `a` and `b` are exactly one edit apart: one character changed, inserted or removed, or
/// two neighbours swapped (`PROT` is one edit from `PORT`). Linear and allocation-free: it runs
/// for every variable in the environment against every setting at each start, and a full
/// edit-distance table there cost milliseconds of start-up.
pub fn one_edit_apart(a: &[char], b: &[char]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let Some(i) = short.iter().zip(long).position(|(x, y)| x != y) else {
        // Equal up to the shorter length: one apart only when one character longer.
        return long.len() != short.len();
    };
    if short.len() == long.len() {
        let changed = short[i + 1..] == long[i + 1..];
        let swapped = i + 1 < short.len()
            && short[i] == long[i + 1]
            && short[i + 1] == long[i]
            && short[i + 2..] == long[i + 2..];
        changed || swapped
    } else {
        short[i..] == long[i + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::env;
    use super::*;

    #[test]
    fn one_edit() {
        let apart = |a: &str, b: &str| {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            (one_edit_apart(&a, &b), one_edit_apart(&b, &a))
        };
        for (a, b) in [
            ("PORT", "PROT"),
            ("PORT", "PORX"),
            ("PORT", "XORT"),
            ("PORT", "PORTS"),
            ("PORT", "SPORT"),
            ("PORT", "POT"),
            ("PORT", "PORé"),
            ("", "A"),
            ("AB", "BA"),
        ] {
            assert_eq!(apart(a, b), (true, true), "{a} {b}");
        }
        for (a, b) in [
            ("PORT", "PORT"),
            ("PORT", "TROP"),
            ("PORT", "OPTR"),
            ("PORT", "PXRX"),
            ("PORT", "PO"),
            ("PORT", "XPORTX"),
            ("PORT", "POTRS"),
            ("", ""),
            ("ABC", "CBA"),
        ] {
            assert_eq!(apart(a, b), (false, false), "{a} {b}");
        }
    }

    #[test]
    fn typo_warnings() {
        let w = unknown_name_warnings(&env(&[
            ("DYN_SYSTEM_PROT", "1"),
            ("DYN_SYSTEM_OTHER_THING", "1"),
            ("HEALTHD_X", ""),
        ]));
        assert_eq!(
            w,
            vec![
                "ignoring DYN_SYSTEM_PROT: unknown variable; did you mean DYN_SYSTEM_PORT?"
                    .to_string(),
                "ignoring HEALTHD_X: unknown variable; see healthd --help".to_string(),
            ]
        );
    }
}
