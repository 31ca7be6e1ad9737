//! Logging to stderr as go-hclog JSON lines: Terraform's plugin client reads them and re-logs
//! them at the right level under `TF_LOG` / `TF_LOG_PROVIDER`. Messages never carry attribute
//! values or secrets: only type names, RPC names, counts and error summaries.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" | "json" => Some(Level::Trace),
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// Lowest level written. Terraform passes its environment to the plugin, so the user's
/// `TF_LOG_PROVIDER`/`TF_LOG` tell us what would be shown anyway; below that we stay silent.
fn threshold() -> Level {
    static THRESHOLD: OnceLock<Level> = OnceLock::new();
    *THRESHOLD.get_or_init(|| {
        ["TF_LOG_PROVIDER_LAB", "TF_LOG_PROVIDER", "TF_LOG"]
            .iter()
            .find_map(|k| std::env::var(k).ok().and_then(|v| Level::parse(&v)))
            .unwrap_or(Level::Info)
    })
}

/// One hclog JSON line. hclog's timestamp layout has exactly six fractional digits.
pub fn format_line(level: Level, message: &str, now: time::OffsetDateTime) -> String {
    let ts_format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    let timestamp = now.to_offset(time::UtcOffset::UTC).format(ts_format).unwrap_or_default();
    serde_json::json!({
        "@level": level.as_str(),
        "@message": message,
        "@module": "lab",
        "@timestamp": timestamp,
    })
    .to_string()
}

pub fn log(level: Level, message: &str) {
    if level < threshold() {
        return;
    }
    let line = format_line(level, message, time::OffsetDateTime::now_utc());
    // A closed stderr must not take the provider down.
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

pub fn trace(message: &str) {
    log(Level::Trace, message)
}
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
pub fn info(message: &str) {
    log(Level::Info, message)
}
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
pub fn error(message: &str) {
    log(Level::Error, message)
}

/// Panics are logged as one error line, without a backtrace (even with `RUST_BACKTRACE=1`).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        error(&format!("panic{location}: {}", panic_message(info.payload())));
    }));
}

/// The text of a panic payload (`panic!("...")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hclog_line_shape() {
        let now = time::macros::datetime!(2026-11-22 21:05:01.5 UTC);
        let line = format_line(Level::Debug, "planning \"lab_vm\"", now);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["@level"], "debug");
        assert_eq!(v["@message"], "planning \"lab_vm\"");
        assert_eq!(v["@module"], "lab");
        assert_eq!(v["@timestamp"], "2026-11-22T21:05:01.500000Z");
    }

    #[test]
    fn levels_parse_like_tf_log() {
        assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
        assert_eq!(Level::parse("trace"), Some(Level::Trace));
        assert_eq!(Level::parse("off"), None);
    }
}
