//! What a terminal container looks like: ttyd's argv, the labels, the container spec and the URL;
//! and, side by side, the import-time parser that reads a state back from them.
//!
//! A persistent terminal (`persistent = true`) runs every browser connection as a tmux client of
//! one session inside the container, so the session outlives the connection: ttyd runs
//! `tmux new-session -A -s TMUX_SESSION`, whose one window runs the ssh command in a reconnect loop.
//! The session name and the socket are a contract other tools rely on: the instructor's read-only
//! view attaches with `tmux -S TMUX_SOCKET attach-session -r -t TMUX_SESSION` (see `tmux_argv`), and
//! the activity read (`ready::read_activity`) asks the same server.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::validate::validate_user_label;
use super::{
    Credential, DEFAULT_ENTRYPOINT, DEFAULT_IMAGE, DEFAULT_SSH_USER, KEY_PATH, LABEL_GATEWAY_REF, LABEL_HOSTNAME,
    LABEL_KEY_SHA256, LABEL_LAB_NETWORK, LABEL_NETWORK, LABEL_TARGET, LABEL_TERMINAL, LABEL_TRAEFIK, LABEL_WATCH,
    Publish, TTYD_PORT, TerminalState, watch,
};
use crate::backends::docker::{ContainerInfo, ContainerSpec, PortPublish};
use crate::lifecycle::MANAGED_LABEL;
use crate::protocol::{Attr, AttrPath, Diagnostics};
use crate::resources::gateway::route::{ENTRYPOINT_HTTP, ENTRYPOINT_HTTPS, GatewayRoute, LABEL_GATEWAY};
use crate::validate::{invalid, missing, port};

// --- what the container looks like ---

/// The tmux session every browser of a persistent terminal attaches to. Contract: do not rename
/// (the instructor's view and the activity read find the session by it).
pub const TMUX_SESSION: &str = "lab";
/// tmux's server socket in the container: a fixed path rather than tmux's per-uid default, so that
/// `docker exec` (as any user that can read it) and a second ttyd find the server. Contract, as
/// `TMUX_SESSION`.
pub const TMUX_SOCKET: &str = "/tmp/lab-tmux.sock";
/// Server options, set on every attach (idempotent): a long scrollback (tmux's history is what
/// survives a reconnect), no status bar (students expect a plain terminal), a short escape delay
/// (vim's Esc).
const TMUX_OPTIONS: [(&str, &str); 3] = [("history-limit", "10000"), ("status", "off"), ("escape-time", "10")];
/// The command the tmux window runs: the ssh command given as its arguments (`"$@"`, so no user
/// value is ever parsed by a shell), again whenever it ends, after a visible message and a backoff
/// of 1 s doubling to 8 s (back to 1 s after a connection that lasted 30 s).
pub const RECONNECT_LOOP: &str = r#"delay=1
while :; do
  started=$(date +%s)
  "$@"
  status=$?
  [ $(( $(date +%s) - started )) -lt 30 ] || delay=1
  printf '
[lab] The connection to the VM ended (ssh exit %s). Reconnecting in %s s...
' "$status" "$delay"
  sleep "$delay"
  [ "$delay" -ge 8 ] || delay=$((delay * 2))
done"#;
/// What `RECONNECT_LOOP` needs from the image besides `sh`: checked at create.
pub const PERSISTENT_NEEDS: [&str; 3] = ["tmux", "sleep", "date"];

/// `tmux -S TMUX_SOCKET <args>`: how anything in the container talks to the session's server.
/// `-u`: UTF-8 whatever the locale says (ttyd's terminal is UTF-8).
pub fn tmux_argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["tmux", "-u", "-S", TMUX_SOCKET];
    argv.extend_from_slice(args);
    argv
}

/// ttyd's command for a persistent terminal, up to the ssh command: start the server without a
/// config file (an image's ~/.tmux.conf must not change the contract), set the options, then
/// attach to the session, creating it with the reconnect loop if it does not exist.
fn tmux_session_command() -> Vec<String> {
    let mut args = vec!["-f", "/dev/null", "start-server", ";"];
    for (option, value) in TMUX_OPTIONS {
        args.extend(["set-option", "-g", option, value, ";"]);
    }
    args.extend(["new-session", "-A", "-s", TMUX_SESSION, "--", "sh", "-c", RECONNECT_LOOP, "lab-reconnect"]);
    tmux_argv(&args).into_iter().map(String::from).collect()
}

/// The resolved, validated settings a container is built from (no secrets except the credential,
/// which ttyd only takes on its command line).
#[derive(Clone, PartialEq)]
pub struct TerminalSettings {
    pub name: String,
    pub target_host: String,
    pub target_port: u16,
    pub ssh_user: String,
    pub image: String,
    pub network: Option<String>,
    /// A lab network's Docker network, joined besides `network` (or the gateway's).
    pub lab_network: Option<String>,
    pub hostname: Option<String>,
    /// `gateway` as configured; `route` is what that gateway says, resolved before use.
    pub gateway_ref: Option<String>,
    pub route: Option<GatewayRoute>,
    pub traefik: bool,
    pub traefik_entrypoint: String,
    pub traefik_tls: bool,
    pub traefik_cert_resolver: Option<String>,
    pub publish: Option<(String, Option<u16>)>,
    pub credential: Option<(String, String)>,
    pub writable: bool,
    pub max_clients: Option<i64>,
    pub persistent: bool,
    pub watch_takeover: bool,
    pub labels: BTreeMap<String, String>,
}

impl TerminalSettings {
    pub fn from_state(s: &TerminalState) -> Result<Self, Diagnostics> {
        let string = |a: &Attr<String>, name: &str| {
            a.known().cloned().ok_or_else(|| Diagnostics::from(missing(AttrPath::root(name))))
        };
        let publish = match s.publish.known() {
            None => None,
            Some(p) => {
                let host_port = match p.host_port.known() {
                    Some(n) => Some(port(*n).map_err(|why| invalid(AttrPath::root("publish").attr("host_port"), why))?),
                    None => None,
                };
                Some((p.host_ip.known().cloned().unwrap_or_else(|| "127.0.0.1".into()), host_port))
            }
        };
        let credential = match s.credential.known() {
            None => None,
            Some(c) => Some((string(&c.username, "credential")?, string(&c.password, "credential")?)),
        };
        Ok(TerminalSettings {
            name: string(&s.name, "name")?,
            target_host: string(&s.target_host, "target_host")?,
            target_port: port(s.target_port.known().copied().unwrap_or(22))
                .map_err(|why| invalid(AttrPath::root("target_port"), why))?,
            ssh_user: s.ssh_user.known().cloned().unwrap_or_else(|| DEFAULT_SSH_USER.into()),
            image: s.image.known().cloned().unwrap_or_else(|| DEFAULT_IMAGE.into()),
            network: s.network.known().cloned(),
            lab_network: s.lab_network.known().cloned(),
            hostname: s.hostname.known().cloned(),
            gateway_ref: s.gateway.known().cloned(),
            route: None,
            traefik: s.traefik.known().copied().unwrap_or(true),
            traefik_entrypoint: s.traefik_entrypoint.known().cloned().unwrap_or_else(|| DEFAULT_ENTRYPOINT.into()),
            traefik_tls: s.traefik_tls.known().copied().unwrap_or(true),
            traefik_cert_resolver: s.traefik_cert_resolver.known().cloned(),
            publish,
            credential,
            writable: s.writable.known().copied().unwrap_or(true),
            max_clients: s.max_clients.known().copied(),
            persistent: s.persistent.known().copied().unwrap_or(true),
            watch_takeover: s.watch_takeover.known().copied().unwrap_or(false),
            labels: match s.labels.known() {
                None => BTreeMap::new(),
                Some(map) => map
                    .iter()
                    .map(|(k, v)| {
                        v.known()
                            .map(|v| (k.clone(), v.clone()))
                            .ok_or_else(|| Diagnostics::from(missing(AttrPath::root("labels"))))
                    })
                    .collect::<Result<_, _>>()?,
            },
        })
    }

    /// ttyd's arguments, then (persistent) the tmux session, then the ssh command it runs. Every
    /// user value is one argv element (no shell), validated above; `--` keeps the host from being
    /// read as an ssh option.
    pub fn command(&self) -> Vec<String> {
        let mut cmd: Vec<String> = vec!["--port".into(), TTYD_PORT.to_string()];
        if self.writable {
            cmd.push("--writable".into());
        }
        if let Some(n) = self.max_clients {
            cmd.extend(["--max-clients".into(), n.to_string()]);
        }
        if let Some((user, password)) = &self.credential {
            cmd.extend(["--credential".into(), format!("{user}:{password}")]);
        }
        cmd.extend(["--client-option".into(), format!("titleFixed={}@{}", self.ssh_user, self.target_host)]);
        if self.persistent {
            cmd.extend(tmux_session_command());
        }
        cmd.extend(
            [
                "ssh",
                "-i",
                KEY_PATH,
                "-o",
                "IdentitiesOnly=yes",
                // Fresh VMs have fresh host keys nobody could have pinned; see the docs.
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ServerAliveInterval=30",
            ]
            .map(String::from),
        );
        cmd.extend(["-p".into(), self.target_port.to_string(), "-l".into(), self.ssh_user.clone()]);
        cmd.extend(["--".into(), self.target_host.clone()]);
        cmd
    }

    /// The ssh of `command` as a readiness probe run inside the container (`docker exec`): a
    /// login with the uploaded key that runs `true`, never prompting, bounded by a timeout.
    pub fn ssh_probe_command(&self) -> Vec<String> {
        let cmd = self.command();
        let ssh_at = cmd.iter().position(|a| a == "ssh").unwrap_or(cmd.len());
        let mut probe: Vec<String> = cmd[ssh_at..].to_vec();
        let host_at = probe.iter().position(|a| a == "--").unwrap_or(probe.len());
        probe.splice(host_at..host_at, ["-o", "BatchMode=yes", "-o", "ConnectTimeout=3"].map(String::from));
        probe.push("true".into());
        probe
    }

    /// Ownership labels, Traefik routing labels and the user's labels.
    pub fn labels(&self, key_sha256: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(MANAGED_LABEL.into(), "true".into());
        labels.insert(LABEL_TERMINAL.into(), self.name.clone());
        labels.insert(LABEL_TARGET.into(), format!("{}:{}", self.target_host, self.target_port));
        labels.insert(LABEL_KEY_SHA256.into(), key_sha256.into());
        labels.insert(LABEL_TRAEFIK.into(), self.traefik.to_string());
        if let Some(h) = &self.hostname {
            labels.insert(LABEL_HOSTNAME.into(), h.clone());
        }
        if let Some(n) = &self.network {
            labels.insert(LABEL_NETWORK.into(), n.clone());
        }
        if let Some(n) = &self.lab_network {
            labels.insert(LABEL_LAB_NETWORK.into(), n.clone());
        }
        if let (Some(route), Some(host)) = (&self.route, &self.hostname) {
            self.gateway_labels(route, host, &mut labels);
            return labels;
        }
        if self.traefik
            && let Some(host) = &self.hostname
        {
            let router = format!("traefik.http.routers.{}", self.name);
            labels.insert("traefik.enable".into(), "true".into());
            // `host` is a validated DNS name: no backtick can break out of the rule.
            labels.insert(format!("{router}.rule"), format!("Host(`{host}`)"));
            labels.insert(format!("{router}.entrypoints"), self.traefik_entrypoint.clone());
            labels.insert(format!("{router}.service"), self.name.clone());
            if self.traefik_tls {
                labels.insert(format!("{router}.tls"), "true".into());
                if let Some(resolver) = &self.traefik_cert_resolver {
                    labels.insert(format!("{router}.tls.certresolver"), resolver.clone());
                }
            }
            labels
                .insert(format!("traefik.http.services.{}.loadbalancer.server.port", self.name), TTYD_PORT.to_string());
            if let Some(net) = &self.network {
                labels.insert("traefik.docker.network".into(), net.clone());
            }
        }
        labels
    }

    /// A router per gateway entrypoint (`<name>` on HTTP, `<name>-tls` on HTTPS), both to ttyd.
    fn gateway_labels(&self, route: &GatewayRoute, host: &str, labels: &mut BTreeMap<String, String>) {
        labels.insert(LABEL_GATEWAY.into(), route.name.clone());
        if let Some(reference) = &self.gateway_ref {
            labels.insert(LABEL_GATEWAY_REF.into(), reference.clone());
        }
        labels.insert("traefik.enable".into(), "true".into());
        labels.insert("traefik.docker.network".into(), route.network.clone());
        let mut router = |name: String, entrypoint: &str, tls: bool| {
            let prefix = format!("traefik.http.routers.{name}");
            // `host` is a validated DNS name: no backtick can break out of the rule.
            labels.insert(format!("{prefix}.rule"), format!("Host(`{host}`)"));
            labels.insert(format!("{prefix}.entrypoints"), entrypoint.into());
            labels.insert(format!("{prefix}.service"), self.name.clone());
            if tls {
                labels.insert(format!("{prefix}.tls"), "true".into());
            }
        };
        if route.http {
            router(self.name.clone(), ENTRYPOINT_HTTP, false);
        }
        if route.https {
            router(format!("{}-tls", self.name), ENTRYPOINT_HTTPS, true);
        }
        labels.insert(format!("traefik.http.services.{}.loadbalancer.server.port", self.name), TTYD_PORT.to_string());
        if let Some(middleware) = self.watch_middleware() {
            watch::labels(&self.name, host, route, middleware, labels);
            labels.insert(LABEL_WATCH.into(), "true".into());
        }
    }

    /// The instructor middleware the watch view sits behind: a persistent terminal routed by a
    /// gateway with an instructor has one.
    fn watch_middleware(&self) -> Option<&str> {
        let route = self.route.as_ref().filter(|_| self.persistent && self.hostname.is_some())?;
        route.instructor_middleware.as_deref()
    }

    pub fn container_spec(&self, key_sha256: &str) -> ContainerSpec {
        ContainerSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            entrypoint: Some(match self.watch_middleware() {
                Some(_) => watch::entrypoint(self.watch_takeover),
                None => vec!["ttyd".into()],
            }),
            cmd: self.command(),
            labels: self.labels(key_sha256),
            hostname: Some(self.name.clone()),
            network: self.route.as_ref().map(|r| r.network.clone()).or_else(|| self.network.clone()),
            extra_networks: self.lab_network.iter().cloned().collect(),
            publish: self
                .publish
                .iter()
                .map(|(ip, port)| PortPublish { container_port: TTYD_PORT, host_ip: ip.clone(), host_port: *port })
                .collect(),
            expose: vec![TTYD_PORT],
            restart_unless_stopped: true,
            mounts: Vec::new(),
        }
    }

    /// `https://hostname` when routed, else the published address, else the container's own.
    pub fn url(&self, info: &ContainerInfo) -> Option<String> {
        if let (Some(route), Some(host)) = (&self.route, &self.hostname) {
            return Some(route.url(host));
        }
        if let Some(host) = &self.hostname {
            let scheme = if self.traefik && !self.traefik_tls { "http" } else { "https" };
            return Some(format!("{scheme}://{host}"));
        }
        ttyd_address(info).map(|(ip, port)| match ip {
            IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
            IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        })
    }
}

/// Where this machine can reach ttyd: the published port (wildcard binds via loopback), else the
/// container's address on its first network.
pub fn ttyd_address(info: &ContainerInfo) -> Option<(IpAddr, u16)> {
    if let Some(p) = info.published.iter().find(|p| p.container_port == TTYD_PORT && p.host_port.is_some()) {
        return Some((info.published_at(&p.host_ip), p.host_port.unwrap_or(TTYD_PORT)));
    }
    info.network_address().map(|ip| (ip, TTYD_PORT))
}

/// Labels the user set: everything except the provider's (and Traefik's when it manages them) and
/// those inherited unchanged from the image that the user did not set. Keeps `Null` when the user
/// set none and the container has none.
pub(super) fn user_labels(
    container: &BTreeMap<String, String>,
    image: &BTreeMap<String, String>,
    current: Attr<BTreeMap<String, Attr<String>>>,
) -> Attr<BTreeMap<String, Attr<String>>> {
    let traefik = container.get(LABEL_TRAEFIK).map(String::as_str) != Some("false");
    let configured = current.known().cloned().unwrap_or_default();
    let labels: BTreeMap<String, Attr<String>> = container
        .iter()
        .filter(|(k, _)| validate_user_label(k, traefik).is_ok())
        .filter(|(k, v)| configured.contains_key(*k) || image.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Attr::Known(v.clone())))
        .collect();
    if labels.is_empty() && current.is_null() { Attr::Null } else { Attr::Known(labels) }
}

/// Rebuild a state from a container this provider made (import). The key stays null: it is
/// never read back; the plan matches the configured key against the digest label.
pub(super) fn state_from_container(info: &ContainerInfo, image_labels: &BTreeMap<String, String>) -> TerminalState {
    let label = |k: &str| info.labels.get(k).cloned();
    let cmd = &info.cmd;
    let arg_after = |flag: &str| cmd.iter().position(|a| a == flag).and_then(|i| cmd.get(i + 1)).cloned();
    let ssh_at = cmd.iter().position(|a| a == "ssh").unwrap_or(cmd.len());
    let (ttyd_args, ssh_args) = cmd.split_at(ssh_at);
    let ssh_after = |flag: &str| ssh_args.iter().position(|a| a == flag).and_then(|i| ssh_args.get(i + 1)).cloned();
    let traefik = label(LABEL_TRAEFIK).as_deref() != Some("false");
    let router = format!("traefik.http.routers.{}", info.name);
    let credential = arg_after("--credential").and_then(|c| {
        c.split_once(':').map(|(u, p)| Credential { username: Attr::Known(u.into()), password: Attr::Known(p.into()) })
    });
    let publish = info
        .requested_publish
        .iter()
        .find(|p| p.container_port == TTYD_PORT)
        .map(|p| Publish { host_ip: Attr::Known(p.host_ip.clone()), host_port: p.host_port.map(i64::from).into() });
    let settings_labels = user_labels(&info.labels, image_labels, Attr::Null);
    // Behind a gateway the routers follow its entrypoints, and `traefik_*` keep their defaults.
    let routed = label(LABEL_GATEWAY_REF).is_some();
    let mut state = TerminalState {
        id: Attr::Known(info.id.clone()),
        name: Attr::Known(info.name.clone()),
        host: Attr::Null,
        target_host: ssh_args.last().cloned().into(),
        target_port: ssh_after("-p").and_then(|p| p.parse().ok()).into(),
        ssh_user: ssh_after("-l").into(),
        ssh_private_key: Attr::Null,
        image: Attr::Known(info.image.clone()),
        pull_image: Attr::Known(false),
        network: label(LABEL_NETWORK).into(),
        lab_network: label(LABEL_LAB_NETWORK).into(),
        hostname: label(LABEL_HOSTNAME).into(),
        gateway: label(LABEL_GATEWAY_REF).into(),
        traefik: Attr::Known(traefik),
        traefik_entrypoint: Attr::Known(
            label(&format!("{router}.entrypoints")).filter(|_| !routed).unwrap_or_else(|| DEFAULT_ENTRYPOINT.into()),
        ),
        traefik_tls: Attr::Known(routed || !traefik || label(&format!("{router}.tls")).as_deref() == Some("true")),
        traefik_cert_resolver: label(&format!("{router}.tls.certresolver")).filter(|_| !routed).into(),
        publish: publish.into(),
        credential: credential.into(),
        writable: Attr::Known(ttyd_args.iter().any(|a| a == "--writable")),
        persistent: Attr::Known(ttyd_args.iter().any(|a| a == "tmux")),
        watch_takeover: Attr::Known(watch::read_back(&info.entrypoint).unwrap_or(false)),
        max_clients: arg_after("--max-clients").and_then(|n| n.parse().ok()).into(),
        labels: settings_labels,
        running: Attr::Known(info.running),
        timeouts: None,
        url: Attr::Null,
        watch_url: Attr::Null,
        ready: Attr::Known(info.running),
        last_activity_at: Attr::Null,
        clients: Attr::Null,
    };
    if let Ok(settings) = TerminalSettings::from_state(&state) {
        state.url = settings.url(info).map_or(Attr::Null, Attr::Known);
    }
    state.watch_url = super::watch_url(info, &state.url);
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::terminal::key_digest;
    use crate::resources::terminal::tests::{KEY, config};

    #[test]
    fn ssh_probe_logs_in_with_the_same_ssh_and_runs_true() {
        let s = TerminalSettings::from_state(&super::super::tests::config()).unwrap();
        let probe = s.ssh_probe_command();
        assert_eq!(&probe[..3], &["ssh", "-i", KEY_PATH]);
        let n = probe.len();
        assert_eq!(&probe[n - 7..], &["-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "--", "10.10.10.20", "true"]);
    }

    #[test]
    fn command_runs_ssh_with_the_uploaded_key_and_no_secret() {
        let s = TerminalSettings::from_state(&config()).unwrap();
        let cmd = s.command();
        assert_eq!(&cmd[..3], &["--port", "7681", "--writable"]);
        let ssh = cmd.iter().position(|a| a == "ssh").unwrap();
        assert_eq!(&cmd[ssh..ssh + 3], &["ssh", "-i", KEY_PATH]);
        assert_eq!(&cmd[cmd.len() - 6..], &["-p", "22", "-l", "student", "--", "10.10.10.20"]);
        assert!(!cmd.iter().any(|a| a.contains("PRIVATE KEY") || a.contains("AAAA")));
        assert!(!cmd.contains(&"--credential".to_string()));
    }

    #[test]
    fn persistent_command_attaches_to_the_contract_session_and_loops_ssh() {
        let s = TerminalSettings::from_state(&config()).unwrap();
        assert!(s.persistent, "persistent by default");
        let cmd = s.command();
        let tmux = cmd.iter().position(|a| a == "tmux").unwrap();
        let ssh = cmd.iter().position(|a| a == "ssh").unwrap();
        assert_eq!(&cmd[tmux..tmux + 4], &["tmux", "-u", "-S", TMUX_SOCKET]);
        let session = &cmd[tmux..ssh];
        let new = session.iter().position(|a| a == "new-session").unwrap();
        assert_eq!(&session[new..new + 4], &["new-session", "-A", "-s", TMUX_SESSION]);
        // The loop is a constant; the ssh command follows it as its arguments.
        assert_eq!(&session[session.len() - 4..], &["sh", "-c", RECONNECT_LOOP, "lab-reconnect"]);
        assert!(!session.iter().any(|a| a.contains("10.10.10.20") || a.contains("student")));
        assert_eq!(&cmd[cmd.len() - 2..], &["--", "10.10.10.20"]);

        let mut c = config();
        c.persistent = Attr::Known(false);
        let cmd = TerminalSettings::from_state(&c).unwrap().command();
        assert!(!cmd.iter().any(|a| a == "tmux"));
    }

    #[test]
    fn command_options() {
        let mut c = config();
        c.writable = Attr::Known(false);
        c.max_clients = Attr::Known(2);
        c.credential =
            Attr::Known(Credential { username: Attr::Known("ann".into()), password: Attr::Known("s3cret".into()) });
        let cmd = TerminalSettings::from_state(&c).unwrap().command();
        assert!(!cmd.contains(&"--writable".to_string()));
        let at = |flag: &str| cmd.iter().position(|a| a == flag).map(|i| cmd[i + 1].clone());
        assert_eq!(at("--max-clients").as_deref(), Some("2"));
        assert_eq!(at("--credential").as_deref(), Some("ann:s3cret"));
    }

    #[test]
    fn labels_own_route_and_never_carry_the_key() {
        let s = TerminalSettings::from_state(&config()).unwrap();
        let labels = s.labels(&key_digest(KEY));
        assert_eq!(labels["lab.managed"], "true");
        assert_eq!(labels["lab.terminal"], "lab-abc123");
        assert_eq!(labels["lab.session"], "abc123");
        assert_eq!(labels["traefik.http.routers.lab-abc123.rule"], "Host(`lab-abc123.lab.example.edu`)");
        assert_eq!(labels["traefik.http.routers.lab-abc123.entrypoints"], "websecure");
        assert_eq!(labels["traefik.http.routers.lab-abc123.tls"], "true");
        assert_eq!(labels["traefik.http.services.lab-abc123.loadbalancer.server.port"], "7681");
        assert_eq!(labels["traefik.docker.network"], "traefik");
        assert_eq!(labels[LABEL_KEY_SHA256].len(), 64);
        assert!(!labels.values().any(|v| v.contains("PRIVATE") || v.contains("AAAA")));
        // Without traefik: only ownership labels.
        let mut c = config();
        c.traefik = Attr::Known(false);
        let labels = TerminalSettings::from_state(&c).unwrap().labels("x");
        assert!(!labels.keys().any(|k| k.starts_with("traefik.")));
    }

    #[test]
    fn url_prefers_routed_hostname_then_published_port() {
        let info = ContainerInfo {
            published: vec![PortPublish { container_port: 7681, host_ip: "0.0.0.0".into(), host_port: Some(8001) }],
            networks: BTreeMap::from([("bridge".into(), Some("10.20.0.5".parse().unwrap()))]),
            ..Default::default()
        };
        let mut s = TerminalSettings::from_state(&config()).unwrap();
        assert_eq!(s.url(&info).unwrap(), "https://lab-abc123.lab.example.edu");
        s.hostname = None;
        assert_eq!(s.url(&info).unwrap(), "http://127.0.0.1:8001");
        let unpublished = ContainerInfo { published: vec![], ..info };
        assert_eq!(s.url(&unpublished).unwrap(), "http://10.20.0.5:7681");
    }

    #[test]
    fn import_rebuilds_state_from_container() {
        let s = TerminalSettings::from_state(&config()).unwrap();
        let info = ContainerInfo {
            id: "c0ffee".into(),
            name: "lab-abc123".into(),
            image: "lab/ttyd-ssh:1".into(),
            running: true,
            labels: s.labels(&key_digest(KEY)),
            cmd: s.command(),
            ..Default::default()
        };
        let mut with_image_label = info.clone();
        with_image_label.labels.insert("image.stamp".into(), "1".into());
        let state = state_from_container(&with_image_label, &BTreeMap::from([("image.stamp".into(), "1".into())]));
        let back = TerminalSettings::from_state(&state).unwrap();
        assert!(back == s, "imported settings differ");
        assert_eq!(state.persistent, Attr::Known(true));
        assert_eq!(state.ssh_private_key, Attr::Null);
        assert_eq!(state.url, Attr::Known("https://lab-abc123.lab.example.edu".into()));
    }
}
