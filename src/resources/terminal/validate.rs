//! `lab_terminal`'s plan-time validation.

use std::net::IpAddr;

use super::{DEFAULT_IMAGE, RESERVED_LABELS, TerminalState};
use crate::protocol::{Attr, AttrPath, Diagnostic, Diagnostics};
use crate::validate::{self, check, invalid};

/// Whether `image` is upstream's `tsl0922/ttyd` (any tag or digest, with or without Docker Hub's
/// registry): ttyd on Ubuntu with tini, no tmux, no ssh client.
pub(super) fn is_upstream_image(image: &str) -> bool {
    let repo = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]
        .iter()
        .find_map(|registry| image.strip_prefix(registry))
        .unwrap_or(image);
    let name = repo.split(['@', ':']).next().unwrap_or(repo);
    name == "tsl0922/ttyd"
}

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
    // Unset means the default (true, and the upstream image).
    let image = match &config.image {
        Attr::Null => Some(DEFAULT_IMAGE),
        other => other.known().map(String::as_str),
    };
    if config.persistent.known() != Some(&false)
        && let Some(image) = image.filter(|i| is_upstream_image(i))
    {
        diags.push(Diagnostic::attr_error(
            root("persistent"),
            "The upstream ttyd image cannot keep sessions",
            format!(
                "`persistent` (default true) keeps the student's terminal in a tmux session inside the container, \
                 and `{image}` has no tmux (nor an ssh client). Use an image that adds `tmux` and `openssh-client` \
                 (see the lab_terminal docs), or set `persistent = false` for a fresh ssh login per connection."
            ),
        ));
    }
    if let Some(v) = config.network.known() {
        check(&mut diags, root("network"), validate_network(v));
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
    use crate::resources::terminal::tests::config;
    use crate::resources::terminal::{Credential, Publish};

    #[test]
    fn persistent_refuses_the_upstream_image_unless_turned_off() {
        for image in ["tsl0922/ttyd:1.7.7", "docker.io/tsl0922/ttyd", "tsl0922/ttyd@sha256:ab"] {
            assert!(is_upstream_image(image), "{image}");
        }
        for image in ["lab/ttyd-ssh:2", "registry.example.edu/tsl0922/ttyd:1.7.7", "tsl0922/ttyd-ssh"] {
            assert!(!is_upstream_image(image), "{image}");
        }
        let mut c = config();
        c.image = Attr::Null; // the default
        c.persistent = Attr::Null;
        let diags = validate_config(&c);
        assert_eq!(diags.0.len(), 1, "{diags:?}");
        assert_eq!(diags.0[0].attribute, Some(AttrPath::root("persistent")));
        assert!(diags.0[0].detail.contains("persistent = false"), "{}", diags.0[0].detail);
        c.persistent = Attr::Known(false);
        assert!(validate_config(&c).is_empty());
        c.persistent = Attr::Known(true);
        c.image = Attr::Known("lab/ttyd-ssh:2".into());
        assert!(validate_config(&c).is_empty());
    }

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
