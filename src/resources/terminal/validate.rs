//! `lab_terminal`'s plan-time validation.

use std::net::IpAddr;

use super::{RESERVED_LABELS, TerminalState};
use crate::protocol::{AttrPath, Diagnostic, Diagnostics};
use crate::validate::{self, check, invalid};

pub(super) fn validate_config(config: &TerminalState) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let root = AttrPath::root;
    if let Some(v) = config.name.known() {
        check(&mut diags, root("name"), validate::name(v));
    }
    if let Some(v) = config.target_host.known() {
        check(&mut diags, root("target_host"), validate::host(v));
    }
    if let Some(v) = config.target_port.known() {
        check(&mut diags, root("target_port"), validate::port(*v).map(|_| ()));
    }
    if let Some(v) = config.ssh_user.known() {
        check(&mut diags, root("ssh_user"), validate::user(v));
    }
    if let Some(v) = config.ssh_private_key.known() {
        check(&mut diags, root("ssh_private_key"), validate_private_key(v));
    }
    if let Some(v) = config.image.known() {
        check(&mut diags, root("image"), validate::image(v));
    }
    if let Some(v) = config.network.known() {
        check(&mut diags, root("network"), validate_network(v));
    }
    if let Some(v) = config.lab_network.known() {
        check(&mut diags, root("lab_network"), validate_network(v));
    }
    if let Some(v) = config.gateway.known() {
        check(&mut diags, root("gateway"), validate_network(v));
    }
    if let Some(v) = config.hostname.known() {
        check(&mut diags, root("hostname"), validate::domain(v));
    }
    if let Some(v) = config.traefik_entrypoint.known() {
        check(&mut diags, root("traefik_entrypoint"), validate_token(v));
    }
    if let Some(v) = config.traefik_cert_resolver.known() {
        check(&mut diags, root("traefik_cert_resolver"), validate_token(v));
    }
    if let Some(v) = config.max_clients.known()
        && !(1..=10_000).contains(v)
    {
        diags.push(invalid(root("max_clients"), format!("must be between 1 and 10000, got {v}")));
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
        if let Some(ip) = publish.host_ip.known() {
            let ok = ip.parse::<IpAddr>().map(|_| ()).map_err(|_| format!("`{ip}` is not an IP address"));
            check(&mut diags, root("publish").attr("host_ip"), ok);
        }
        if let Some(p) = publish.host_port.known() {
            check(&mut diags, root("publish").attr("host_port"), validate::port(*p).map(|_| ()));
        }
    }
    if let Some(cred) = config.credential.known() {
        if let Some(u) = cred.username.known()
            && (u.is_empty() || u.contains(':') || u.chars().any(char::is_control))
        {
            diags.push(invalid(
                root("credential").attr("username"),
                "must be non-empty, without `:` or control characters",
            ));
        }
        if let Some(p) = cred.password.known()
            && (p.is_empty() || p.chars().any(char::is_control))
        {
            diags.push(invalid(root("credential").attr("password"), "must be non-empty, without control characters"));
        }
    }
    if let Err(bad) = config.timeouts() {
        diags.extend(bad);
    }
    diags
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
