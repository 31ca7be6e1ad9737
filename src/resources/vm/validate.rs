//! Plan-time checks of a `lab_vm` configuration; each error names its attribute.

use crate::backends::domain_xml::DomainType;
use crate::protocol::{AttrPath, Diagnostics};
use crate::validate as rules;

use super::LabVmState;
use super::config::{key_line, parse_timeouts};

pub(super) fn validate_config(c: &LabVmState) -> Diagnostics {
    let mut d = Diagnostics::new();
    let mut check = |attr: &str, result: Result<(), String>| {
        rules::check(&mut d, AttrPath::root(attr), result);
    };
    if let Some(n) = c.name.known() {
        check("name", rules::name(n));
    }
    for (attr, value) in
        [("base_image", &c.base_image), ("kernel", &c.kernel), ("initrd", &c.initrd), ("overlay_dir", &c.overlay_dir)]
    {
        if let Some(p) = value.known() {
            check(attr, rules::absolute_path(p));
        }
    }
    if let Some(m) = c.memory_mb.known() {
        check("memory_mb", if *m >= 128 { Ok(()) } else { Err(format!("must be at least 128 MiB, got {m}")) });
    }
    if let Some(v) = c.vcpus.known() {
        let why = || format!("must be between 1 and 256 virtual CPUs, got {v}");
        check("vcpus", if (1..=256).contains(v) { Ok(()) } else { Err(why()) });
    }
    if let Some(g) = c.disk_size_gb.known() {
        let why = || format!("must be between 1 and 65536 GiB, got {g}");
        check("disk_size_gb", if (1..=65536).contains(g) { Ok(()) } else { Err(why()) });
    }
    if let Some(w) = c.wait_for.known() {
        check(
            "wait_for",
            match w.as_str() {
                "ssh" | "ip" | "none" => Ok(()),
                _ => Err(format!("`{w}`: use \"ssh\", \"ip\" or \"none\"")),
            },
        );
    }
    if let Some(t) = c.domain_type.known() {
        check(
            "domain_type",
            match DomainType::parse(t) {
                Some(_) => Ok(()),
                None => Err(format!("`{t}`: use \"kvm\" or \"qemu\" (TCG emulation, slow)")),
            },
        );
    }
    if let Some(h) = c.hostname.known() {
        check("hostname", rules::hostname(h));
    }
    if let Some(u) = c.user.known() {
        check("user", rules::user(u));
    }
    if let Some(n) = c.network.known() {
        let ok = !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        check("network", if ok { Ok(()) } else { Err(format!("`{n}`: letters, digits, '-', '_', '.'")) });
    }
    if c.kernel.is_null() {
        for (attr, value) in [("initrd", &c.initrd), ("cmdline", &c.cmdline)] {
            if !value.is_null() {
                check(attr, Err(format!("`{attr}` is only used with direct kernel boot: set `kernel` too")));
            }
        }
    }
    if let Some(keys) = c.ssh_authorized_keys.known() {
        for (i, k) in keys.iter().enumerate() {
            if k.known().map(|k| key_line(k)).is_some_and(|line| line.trim().is_empty() || line.contains('\n')) {
                d.push(rules::invalid(
                    AttrPath::root("ssh_authorized_keys").index(i as i64),
                    "each entry is one non-empty authorized_keys line (one trailing newline, as `file()` of a \
                     .pub file gives, is fine)",
                ));
            }
        }
    }
    super::media::validate(c, &mut d);
    if let Err(bad) = parse_timeouts(c) {
        d.extend(bad);
    }
    d
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
}
