//! `lab_terminal`'s plan-time validation.

use std::net::IpAddr;

use super::{RESERVED_LABELS, TerminalState};
use crate::protocol::{AttrPath, Diagnostic, Diagnostics};

// --- validation ---

pub(super) fn validate_config(config: &TerminalState) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let mut check = |name: &str, result: Result<(), String>, summary: &str| {
        if let Err(why) = result {
            diags.push(Diagnostic::attr_error(AttrPath::root(name), summary, why));
        }
    };
    if let Some(v) = config.name.known() {
        check("name", validate_name(v), "Invalid terminal name");
    }
    if let Some(v) = config.target_host.known() {
        check("target_host", validate_target_host(v), "Invalid target_host");
    }
    if let Some(v) = config.target_port.known() {
        check("target_port", port(*v).map(|_| ()), "Invalid target_port");
    }
    if let Some(v) = config.ssh_user.known() {
        check("ssh_user", validate_ssh_user(v), "Invalid ssh_user");
    }
    if let Some(v) = config.ssh_private_key.known() {
        check("ssh_private_key", validate_private_key(v), "Invalid ssh_private_key");
    }
    if let Some(v) = config.image.known() {
        check("image", validate_image(v), "Invalid image");
    }
    if let Some(v) = config.network.known() {
        check("network", validate_network(v), "Invalid network");
    }
    if let Some(v) = config.gateway.known() {
        check("gateway", validate_network(v), "Invalid gateway");
    }
    if let Some(v) = config.hostname.known() {
        check("hostname", crate::validate::domain(v), "Invalid hostname");
    }
    if let Some(v) = config.traefik_entrypoint.known() {
        check("traefik_entrypoint", validate_token(v), "Invalid traefik_entrypoint");
    }
    if let Some(v) = config.traefik_cert_resolver.known() {
        check("traefik_cert_resolver", validate_token(v), "Invalid traefik_cert_resolver");
    }
    if let Some(v) = config.max_clients.known()
        && !(1..=10_000).contains(v)
    {
        check("max_clients", Err(format!("{v}: must be between 1 and 10000")), "Invalid max_clients");
    }
    if let Some(labels) = config.labels.known() {
        let traefik = config.traefik.known() != Some(&false);
        for key in labels.keys() {
            if let Err(why) = validate_user_label(key, traefik) {
                diags.push(Diagnostic::attr_error(AttrPath::root("labels").key(key), "Reserved label", why));
            }
        }
    }
    if let Some(publish) = config.publish.known() {
        let path = AttrPath::root("publish");
        if let Some(ip) = publish.host_ip.known()
            && ip.parse::<IpAddr>().is_err()
        {
            diags.push(Diagnostic::attr_error(
                path.clone().attr("host_ip"),
                "Invalid host_ip",
                format!("`{ip}` is not an IP address"),
            ));
        }
        if let Some(p) = publish.host_port.known()
            && let Err(why) = port(*p)
        {
            diags.push(Diagnostic::attr_error(path.attr("host_port"), "Invalid host_port", why));
        }
    }
    if let Some(cred) = config.credential.known() {
        let path = AttrPath::root("credential");
        if let Some(u) = cred.username.known()
            && (u.is_empty() || u.contains(':') || u.chars().any(char::is_control))
        {
            diags.push(Diagnostic::attr_error(
                path.clone().attr("username"),
                "Invalid username",
                "must be non-empty, without `:` or control characters",
            ));
        }
        if let Some(p) = cred.password.known()
            && (p.is_empty() || p.chars().any(char::is_control))
        {
            diags.push(Diagnostic::attr_error(
                path.attr("password"),
                "Invalid password",
                "must be non-empty, without control characters",
            ));
        }
    }
    if let Err(bad) = config.timeouts() {
        diags.extend(bad);
    }
    diags
}

/// Container (and Traefik router) name: DNS-label-like so it is safe in labels and rules.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { Ok(()) } else { Err(format!("`{name}`: use 1-63 characters [a-z0-9-], not starting or ending with '-'")) }
}

/// A hostname or an IP address; never something ssh could take for an option.
pub fn validate_target_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        });
    if ok { Ok(()) } else { Err(format!("`{host}` is neither an IP address nor a host name")) }
}

/// POSIX-portable user names, as `useradd` accepts them.
pub fn validate_ssh_user(user: &str) -> Result<(), String> {
    let mut bytes = user.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok && user.len() <= 32 {
        Ok(())
    } else {
        Err(format!("`{user}`: use [a-z_][a-z0-9_-]*, at most 32 characters"))
    }
}

pub(super) fn validate_private_key(key: &str) -> Result<(), String> {
    let key = key.trim();
    if key.starts_with("-----BEGIN ") && key.contains("PRIVATE KEY-----") && key.ends_with("-----") {
        Ok(())
    } else {
        // Never echo the value: it is a secret even when malformed.
        Err("expected a PEM private key (`-----BEGIN OPENSSH PRIVATE KEY-----` ...)".into())
    }
}

pub fn validate_image(image: &str) -> Result<(), String> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && !image.starts_with('-')
        && image.bytes().all(|b| b.is_ascii_alphanumeric() || b"./:_-@".contains(&b));
    if ok { Ok(()) } else { Err(format!("`{image}` is not an image reference like `registry/name:tag`")) }
}

pub(super) fn validate_network(net: &str) -> Result<(), String> {
    let ok = net.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && net.len() <= 128
        && net.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok { Ok(()) } else { Err(format!("`{net}` is not a Docker network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")) }
}

/// Traefik entrypoint / resolver names go into label values: keep them to plain tokens.
pub(super) fn validate_token(v: &str) -> Result<(), String> {
    let ok = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if ok { Ok(()) } else { Err(format!("`{v}`: use [A-Za-z0-9_-], at most 64 characters")) }
}

pub(super) fn validate_user_label(key: &str, traefik: bool) -> Result<(), String> {
    if RESERVED_LABELS.contains(&key) {
        return Err(format!("`{key}` is set by the provider"));
    }
    if traefik && key.starts_with("traefik.") {
        return Err(format!("`{key}`: traefik.* labels are set by the provider while `traefik = true`"));
    }
    if key.is_empty() { Err("empty label key".into()) } else { Ok(()) }
}

pub(super) fn port(n: i64) -> Result<u16, String> {
    u16::try_from(n).ok().filter(|p| *p != 0).ok_or_else(|| format!("{n}: must be a port between 1 and 65535"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::lifecycle::Timeouts;
    use crate::protocol::Attr;
    use crate::resources::terminal::tests::config;
    use crate::resources::terminal::{Credential, Publish};

    #[test]
    fn validation_names_the_attribute() {
        let mut c = config();
        c.name = Attr::Known("Bad_Name".into());
        c.target_host = Attr::Known("-oProxyCommand=x".into());
        c.ssh_user = Attr::Known("root;rm".into());
        c.ssh_private_key = Attr::Known("not a key".into());
        c.labels = Attr::Known(BTreeMap::from([
            ("lab.managed".into(), Attr::Known("no".into())),
            ("traefik.enable".into(), Attr::Unknown),
        ]));
        c.publish = Attr::Known(Publish { host_ip: Attr::Known("localhost".into()), host_port: Attr::Known(70000) });
        c.credential =
            Attr::Known(Credential { username: Attr::Known("a:b".into()), password: Attr::Known("p".into()) });
        c.timeouts = Some(Timeouts { create: Attr::Known("soon".into()), delete: Attr::Null });
        let diags = validate_config(&c);
        let paths: Vec<String> = diags.0.iter().map(|d| d.attribute.as_ref().unwrap().to_string()).collect();
        assert_eq!(
            paths,
            vec![
                "name",
                "target_host",
                "ssh_user",
                "ssh_private_key",
                "labels[\"lab.managed\"]",
                "labels[\"traefik.enable\"]",
                "publish.host_ip",
                "publish.host_port",
                "credential.username",
                "timeouts.create"
            ]
        );
        // The key is never echoed back.
        assert!(!diags.0.iter().any(|d| d.detail.contains("not a key")));
        assert!(validate_config(&config()).is_empty());
    }
}
