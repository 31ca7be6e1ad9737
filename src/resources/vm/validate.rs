//! Plan-time checks of a `lab_vm` configuration; each error names its attribute.

use std::path::Path;

use crate::backends::domain_xml::DomainType;
use crate::protocol::{AttrPath, Diagnostic, Diagnostics};

use super::LabVmState;
use super::config::{key_line, parse_timeouts};

pub(super) fn validate_config(c: &LabVmState) -> Diagnostics {
    let mut d = Diagnostics::new();
    let mut check = |attr: &str, summary: &str, result: Result<(), String>| {
        if let Err(why) = result {
            d.push(Diagnostic::attr_error(AttrPath::root(attr), summary, why));
        }
    };
    if let Some(n) = c.name.known() {
        check("name", "Invalid VM name", validate_name(n));
    }
    for attr in ["base_image", "kernel", "initrd", "overlay_dir"] {
        let value = match attr {
            "base_image" => &c.base_image,
            "kernel" => &c.kernel,
            "initrd" => &c.initrd,
            _ => &c.overlay_dir,
        };
        if let Some(p) = value.known() {
            check(
                attr,
                "Path must be absolute",
                if Path::new(p).is_absolute() { Ok(()) } else { Err(format!("`{p}` is not an absolute path")) },
            );
        }
    }
    if let Some(m) = c.memory_mb.known() {
        check("memory_mb", "Too little memory", if *m >= 128 { Ok(()) } else { Err(format!("{m} MiB: at least 128")) });
    }
    if let Some(v) = c.vcpus.known() {
        check("vcpus", "Invalid vcpus", if (1..=256).contains(v) { Ok(()) } else { Err(format!("{v}: 1 to 256")) });
    }
    if let Some(g) = c.disk_size_gb.known() {
        check(
            "disk_size_gb",
            "Invalid disk size",
            if (1..=65536).contains(g) { Ok(()) } else { Err(format!("{g} GiB: 1 to 65536")) },
        );
    }
    if let Some(w) = c.wait_for.known() {
        check(
            "wait_for",
            "Invalid wait_for",
            match w.as_str() {
                "ssh" | "ip" | "none" => Ok(()),
                _ => Err(format!("`{w}`: use \"ssh\", \"ip\" or \"none\"")),
            },
        );
    }
    if let Some(t) = c.domain_type.known() {
        check(
            "domain_type",
            "Invalid domain_type",
            match DomainType::parse(t) {
                Some(_) => Ok(()),
                None => Err(format!("`{t}`: use \"kvm\" or \"qemu\" (TCG emulation, slow)")),
            },
        );
    }
    if let Some(h) = c.hostname.known() {
        check("hostname", "Invalid hostname", validate_hostname(h));
    }
    if let Some(u) = c.user.known() {
        check("user", "Invalid user", validate_user(u));
    }
    if let Some(n) = c.network.known() {
        let ok = !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        check(
            "network",
            "Invalid network name",
            if ok { Ok(()) } else { Err(format!("`{n}`: letters, digits, '-', '_', '.'")) },
        );
    }
    if c.kernel.is_null() {
        for attr in ["initrd", "cmdline"] {
            let set = if attr == "initrd" { !c.initrd.is_null() } else { !c.cmdline.is_null() };
            check(
                attr,
                "Needs a kernel",
                if set {
                    Err(format!("`{attr}` is only used with direct kernel boot: set `kernel` too"))
                } else {
                    Ok(())
                },
            );
        }
    }
    if let Some(keys) = c.ssh_authorized_keys.known() {
        for (i, k) in keys.iter().enumerate() {
            if k.known().map(|k| key_line(k)).is_some_and(|line| line.trim().is_empty() || line.contains('\n')) {
                d.push(Diagnostic::attr_error(
                    AttrPath::root("ssh_authorized_keys").index(i as i64),
                    "Invalid SSH key",
                    "each entry is one non-empty authorized_keys line (one trailing newline, as `file()` of a \
                     .pub file gives, is fine)",
                ));
            }
        }
    }
    if let Err(bad) = parse_timeouts(c) {
        d.extend(bad);
    }
    d
}

pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(format!("`{name}` must match [a-z0-9][a-z0-9-]{{0,62}}")) }
}

pub(super) fn validate_hostname(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok { Ok(()) } else { Err(format!("`{name}` is not a host name: 1-63 letters, digits and '-'")) }
}

pub(super) fn validate_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && user.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && user.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(format!("`{user}` must match [a-z_][a-z0-9_-]{{0,31}}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::vm::test_support::*;

    #[test]
    fn valid_config_passes() {
        assert!(validate_config(&config()).is_empty(), "{:?}", validate_config(&config()));
    }

    #[test]
    fn each_bad_value_names_its_attribute() {
        let mut c = config();
        c.name = Attr::Known("Bad_Name".into());
        c.base_image = Attr::Known("images/base.qcow2".into());
        c.memory_mb = Attr::Known(64);
        c.wait_for = Attr::Known("ping".into());
        c.domain_type = Attr::Known("xen".into());
        c.cmdline = Attr::Known("quiet".into());
        c.ssh_authorized_keys = Attr::Known(vec![
            Attr::Known("ssh-ed25519 AAA\n".into()),
            Attr::Known("a\nb".into()),
            Attr::Unknown,
            Attr::Known("\n".into()),
            Attr::Known("ssh-ed25519 AAA\r\n".into()),
        ]);
        c.timeouts = Some(Timeouts { create: Attr::Known("soon".into()), delete: Attr::Null });
        let d = validate_config(&c);
        assert_eq!(
            paths(&d),
            vec![
                "name",
                "base_image",
                "memory_mb",
                "wait_for",
                "domain_type",
                "cmdline",
                "ssh_authorized_keys[1]",
                "ssh_authorized_keys[3]",
                "timeouts.create"
            ]
        );
    }

    #[test]
    fn unknown_values_are_not_validated() {
        let mut c = config();
        c.name = Attr::Unknown;
        c.memory_mb = Attr::Unknown;
        assert!(validate_config(&c).is_empty());
    }

    #[test]
    fn names() {
        for ok in ["a", "vm-1", "0abc", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", "a b", &"a".repeat(64), "x<y"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
