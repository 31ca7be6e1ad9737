//! Validators shared by the provider and the resources. Each takes a value and says what is wrong
//! with it (`Err(why)`, never echoing a secret); `check` attaches that to the attribute it came
//! from, so every such diagnostic reads the same: "Invalid <attribute>".

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::protocol::{AttrPath, Diagnostic, Diagnostics};

/// Records `result`'s error, if any, as "Invalid <path>" on `path`; the value when it is valid.
pub fn check<T>(diags: &mut Diagnostics, path: AttrPath, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(why) => {
            diags.push(invalid(path, why));
            None
        }
    }
}

/// The diagnostic `check` records: `why` a value at `path` is not accepted.
pub fn invalid(path: AttrPath, why: impl Into<String>) -> Diagnostic {
    let summary = format!("Invalid {path}");
    Diagnostic::attr_error(path, summary, why)
}

/// A value the provider needs at apply time is not there (the plan should have made it known).
pub fn missing(path: AttrPath) -> Diagnostic {
    let detail = format!("`{path}` must be known at apply time; this is a bug in the provider's plan.");
    Diagnostic::attr_error(path.clone(), format!("`{path}` is not known"), detail)
}

/// Names of things the provider makes (VMs, containers): DNS-label-like, so they are safe in
/// file names, labels and routing rules: 1-63 characters `[a-z0-9-]`, not starting or ending
/// with '-'.
pub fn name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { Ok(()) } else { Err(format!("`{name}`: use 1-63 characters [a-z0-9-], not starting or ending with '-'")) }
}

/// libvirt storage pool and volume names as the provider accepts them: 1-128 characters
/// `[A-Za-z0-9._-]`, not starting with `-` or `.` (libvirt itself only forbids `/`).
pub fn pool_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}`: use 1-128 characters [A-Za-z0-9._-], not starting with '-' or '.'"))
    }
}

/// POSIX-portable user names, as `useradd` accepts them.
pub fn user(user: &str) -> Result<(), String> {
    let mut bytes = user.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok && user.len() <= 32 {
        Ok(())
    } else {
        Err(format!("`{user}`: use [a-z_][a-z0-9_-]*, at most 32 characters"))
    }
}

/// One label of a host name: 1-63 letters, digits and '-', not starting with '-' (so no command
/// takes it for an option).
fn is_host_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
}

/// A host to connect to: an IP address or a host name; never something ssh could take for an option.
pub fn host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !host.is_empty() && host.len() <= 253 && host.split('.').all(is_host_label);
    if ok { Ok(()) } else { Err(format!("`{host}` is neither an IP address nor a host name")) }
}

/// A machine's own (single-label) host name.
pub fn hostname(name: &str) -> Result<(), String> {
    if is_host_label(name) { Ok(()) } else { Err(format!("`{name}` is not a host name: 1-63 letters, digits and '-'")) }
}

/// A TCP or UDP port, 1 to 65535.
pub fn port(n: i64) -> Result<u16, String> {
    u16::try_from(n).ok().filter(|p| *p != 0).ok_or_else(|| format!("must be a port between 1 and 65535, got {n}"))
}

/// `host:port` (an IPv6 address in brackets: `[2001:db8::1]:53`).
pub fn host_port(text: &str) -> Result<(), String> {
    let bad = || Err(format!("`{text}` must be `host:port`, e.g. `ns1.example.edu:53`"));
    let Some((host_part, port_part)) = text.rsplit_once(':') else { return bad() };
    let host_part = host_part.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host_part);
    match (host(host_part), port_part.parse::<i64>().map_err(|_| ()).and_then(|p| port(p).map_err(|_| ()))) {
        (Ok(()), Ok(_)) => Ok(()),
        _ => bad(),
    }
}

/// A strictly positive duration in humantime's syntax (`"90s"`, `"5m"`, `"1h30m"`, `"2days"`);
/// the error says what is wrong and shows the syntax.
pub fn duration(text: &str) -> Result<Duration, String> {
    use humantime::DurationError as Why;
    let example = "use e.g. \"90s\", \"5m\" or \"1h30m\"";
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err(format!("`{text}` is zero")),
        Ok(d) => Ok(d),
        // The parser's other reasons are byte offsets ("expected number at 0"): the example says more.
        Err(Why::UnknownUnit { unit, .. }) => Err(format!("`{text}`: `{unit}` is not a unit of time; {example}")),
        Err(Why::NumberOverflow) => Err(format!("`{text}` is too long a time")),
        Err(Why::Empty) => Err(format!("the duration is empty; {example}")),
        Err(_) => Err(format!("`{text}` is not a duration; {example}")),
    }
}

/// A container image reference (`registry/name:tag`, `name@sha256:...`), never an option.
pub fn image(image: &str) -> Result<(), String> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && !image.starts_with('-')
        && image.bytes().all(|b| b.is_ascii_alphanumeric() || b"./:_-@".contains(&b));
    if ok { Ok(()) } else { Err(format!("`{image}` is not an image reference like `registry/name:tag`")) }
}

/// A path on the host that does not depend on the provider's working directory.
pub fn absolute_path(path: &str) -> Result<(), String> {
    if Path::new(path).is_absolute() { Ok(()) } else { Err(format!("`{path}` is not an absolute path")) }
}

/// libvirt's hypervisor drivers and remote transports, as in `driver[+transport]://...`.
const LIBVIRT_DRIVERS: [&str; 13] =
    ["qemu", "lxc", "xen", "libxl", "test", "bhyve", "ch", "vbox", "vz", "openvz", "esx", "vpx", "hyperv"];
const LIBVIRT_TRANSPORTS: [&str; 7] = ["unix", "ssh", "libssh", "libssh2", "tcp", "tls", "ext"];

/// A libvirt connection URI (`qemu:///system`, `qemu+ssh://root@host/system`, `qemu+unix:///system?socket=..`):
/// a known scheme, and nothing that could end a word on a command line (whitespace, quotes,
/// backslashes, control characters).
pub fn libvirt_uri(uri: &str) -> Result<(), String> {
    if let Some(c) = uri.chars().find(|c| c.is_whitespace() || c.is_control() || "'\"`\\".contains(*c)) {
        return Err(format!(
            "{uri:?} contains {c:?}: whitespace, quotes, backslashes and control characters are not allowed"
        ));
    }
    let Some((scheme, _)) = uri.split_once("://") else {
        return Err(format!("`{uri}` is not a libvirt URI like `qemu:///system`"));
    };
    let (driver, transport) = scheme.split_once('+').map_or((scheme, None), |(d, t)| (d, Some(t)));
    if !LIBVIRT_DRIVERS.contains(&driver) {
        return Err(format!("`{uri}`: unknown libvirt driver `{driver}` (e.g. `qemu`, `lxc`, `xen`, `test`)"));
    }
    if let Some(t) = transport
        && !LIBVIRT_TRANSPORTS.contains(&t)
    {
        return Err(format!("`{uri}`: unknown libvirt transport `{t}` (use one of {})", LIBVIRT_TRANSPORTS.join(", ")));
    }
    Ok(())
}

/// A lowercase DNS name: labels of `[a-z0-9-]`, 1-63 chars, not starting or ending with `-`.
pub fn domain(domain: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{domain}` is not a valid DNS domain: {why}"));
    if domain.is_empty() || domain.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each label must be 1 to 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return bad("only lowercase letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_validation() {
        assert!(domain("lab.example.edu").is_ok());
        assert!(domain("lab.localhost").is_ok());
        for bad in ["", "Lab.example", "a..b", "-a.b", "a_b.c", "a.b-"] {
            assert!(domain(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "vm-1", "0abc", &"a".repeat(63)] {
            assert!(name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "a b", &"a".repeat(64), "x<y"] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pool_names() {
        for ok in ["default", "lab-vms", "Images_2.d", &"p".repeat(128)] {
            assert!(pool_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".hidden", "a/b", "a b", "x'y", &"p".repeat(129)] {
            assert!(pool_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn users_hosts_and_ports() {
        assert!(user("student").is_ok() && user("_svc-1").is_ok());
        for bad in ["", "Root", "1st", "root;rm", &"a".repeat(33)] {
            assert!(user(bad).is_err(), "{bad}");
        }
        assert!(host("10.0.0.5").is_ok() && host("::1").is_ok() && host("vm-1.lab").is_ok());
        for bad in ["", "-oProxyCommand=x", "a..b", "a b", "a;b"] {
            assert!(host(bad).is_err(), "{bad}");
        }
        assert!(hostname("vm-1").is_ok() && hostname("a.b").is_err() && hostname("-a").is_err());
        assert_eq!(port(22), Ok(22));
        assert!(port(0).is_err() && port(65536).is_err() && port(-1).is_err());
        for ok in ["ns1.example.edu:53", "127.0.0.1:5353", "[::1]:53"] {
            assert!(host_port(ok).is_ok(), "{ok}");
        }
        for bad in ["ns1", ":53", "ns1:", "ns1:dns", "ns1:0", "a b:53"] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_positive_humantime() {
        assert_eq!(duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(duration("0s").unwrap_err().contains("is zero"));
        assert_eq!(duration("soon").unwrap_err(), r#"`soon` is not a duration; use e.g. "90s", "5m" or "1h30m""#);
        assert!(duration("4 parsecs").unwrap_err().starts_with("`4 parsecs`: `parsecs` is not a unit of time;"));
        assert!(duration("").unwrap_err().starts_with("the duration is empty"));
    }

    #[test]
    fn check_words_every_summary_the_same() {
        let mut diags = Diagnostics::new();
        assert_eq!(check(&mut diags, AttrPath::root("target_port"), port(22)), Some(22));
        assert_eq!(check(&mut diags, AttrPath::root("timeouts").attr("create"), duration("soon")), None);
        assert_eq!(diags.0.len(), 1);
        assert_eq!(diags.0[0].summary, "Invalid timeouts.create");
        assert_eq!(diags.0[0].attribute.as_ref().map(|p| p.to_string()).as_deref(), Some("timeouts.create"));
        assert_eq!(missing(AttrPath::root("name")).summary, "`name` is not known");
    }

    #[test]
    fn libvirt_uris() {
        for ok in [
            "qemu:///system",
            "qemu:///session",
            "qemu+ssh://root@host/system",
            "qemu+unix:///system?socket=/run/labtest/libvirt/libvirt-sock",
            "test:///default",
        ] {
            assert!(libvirt_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/var/run/libvirt/libvirt-sock",
            "qemu:///system' ; rm -rf ~ ; '",
            "qemu:///system $(id)",
            "qemu:///sys\ntem",
            "http://host/system",
            "qemu+telnet://host/system",
            "qemu:///system\\",
        ] {
            assert!(libvirt_uri(bad).is_err(), "{bad:?}");
        }
    }
}
