//! Logging: one line per event on stderr, prefixed `healthd: ` (and `warning: ` for things that
//! were ignored or went wrong). Writes never panic: a closed or broken stderr loses the line, it
//! does not take the server down.

use std::fmt;
use std::io::Write;

/// Writes one line; used through the `info!` and `warning!` macros.
pub fn line(level: &str, args: fmt::Arguments<'_>) {
    let mut line = Vec::with_capacity(128);
    let _ = write!(line, "healthd: {level}{args}");
    // One line per record, whatever the message holds.
    for b in line.iter_mut() {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    line.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&line);
}

macro_rules! info {
    ($($t:tt)*) => { $crate::log::line("", format_args!($($t)*)) };
}

macro_rules! warning {
    ($($t:tt)*) => { $crate::log::line("warning: ", format_args!($($t)*)) };
}

pub(crate) use {info, warning};
