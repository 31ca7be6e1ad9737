//! `lab_gateway`: the edge of one classroom host. A Traefik v3 container that routes each
//! session hostname to its terminal: Traefik's Docker provider (socket mounted read-only),
//! constrained to the terminals labelled with this gateway's name, on a Docker network the
//! gateway owns and its terminals join. Entrypoints are published where the deployment needs
//! them: `127.0.0.1:8080` for a local classroom, `:80` behind a tunnel, `:443` with a certificate.
//!
//! Container config is immutable in Docker, so most arguments replace the gateway (and, through
//! `lab_terminal.gateway`, its terminals); `running`, the certificate and `timeouts` update in place.

pub mod container;
pub mod route;

use std::time::Duration;

use async_trait::async_trait;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use self::container::{GatewaySettings, LABEL_TLS_SHA256, Listen, TlsListen, network_labels, read_back, tls_digest};
use self::route::{GatewayRoute, LABEL_ROLE, ROLE_GATEWAY, probe_address};
use crate::backends::docker::{ContainerInfo, DockerClient, DockerError};
use crate::lifecycle::{Rollback, Timeouts, host_and_id, shell_command};
use crate::protocol::diag::error_chain;
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, DiagResultExt, Diagnostic, Diagnostics, Nesting, OpContext, PlanRequest, Planned,
    Resource, Schema, log,
};
use crate::resources::docker_client::{self, DockerConnection, Poll};
use crate::settings::ProviderHandle;
use crate::validate::{invalid, missing, port};

const TYPE_NAME: &str = "lab_gateway";
const DEFAULT_IMAGE: &str = "traefik:v3.7.15";
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
const DEFAULT_HOST_IP: &str = "127.0.0.1";
const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Any Host will do for "Traefik answers": none is routed, so the answer is its 404.
const PROBE_HOST: &str = "gateway-probe.invalid";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpEntrypoint {
    pub host_ip: Attr<String>,
    pub host_port: Attr<i64>,
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpsEntrypoint {
    pub host_ip: Attr<String>,
    pub host_port: Attr<i64>,
    pub certificate_pem: Attr<String>,
    pub private_key_pem: Attr<String>,
}

impl std::fmt::Debug for HttpsEntrypoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsEntrypoint")
            .field("host_ip", &self.host_ip)
            .field("host_port", &self.host_port)
            .field("private_key_pem", &"<sensitive>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayState {
    pub id: Attr<String>,
    pub name: Attr<String>,
    pub host: Attr<String>,
    pub image: Attr<String>,
    pub pull_image: Attr<bool>,
    pub docker_socket: Attr<String>,
    pub http: Attr<HttpEntrypoint>,
    pub https: Attr<HttpsEntrypoint>,
    pub url_scheme: Attr<String>,
    pub url_port: Attr<i64>,
    pub network: Attr<String>,
    pub running: Attr<bool>,
    pub ready: Attr<bool>,
    pub timeouts: Option<Timeouts>,
}

pub struct GatewayResource {
    docker: DockerConnection,
}

impl GatewayResource {
    pub fn new(provider: ProviderHandle) -> Self {
        GatewayResource { docker: DockerConnection::new(provider) }
    }

    /// The Docker client of the gateway's `host`.
    fn docker(&self, host: &Attr<String>) -> Result<&DockerClient, Diagnostics> {
        self.docker.get(host, TYPE_NAME)
    }

    /// Whether the network named after the gateway exists with this gateway's labels.
    async fn own_network(&self, state: &GatewayState) -> Result<bool, Diagnostics> {
        let Some(name) = state.name.known() else { return Ok(false) };
        let network = self.docker(&state.host)?.inspect_network(name).await.or_diag("Reading the gateway network")?;
        Ok(network.is_some_and(|n| n.labels == network_labels(name)))
    }

    /// Only part of the gateway is left: its container is gone or was never started (the TLS
    /// files go in before the start), or its network is gone.
    async fn remains_only(&self, state: &GatewayState) -> Result<bool, Diagnostics> {
        let Some(id) = state.id.known().or(state.name.known()) else { return Ok(false) };
        let container = self.docker(&state.host)?.inspect_container(id).await.or_diag("Reading the gateway")?;
        Ok(container.is_none_or(|c| c.never_started()) || !self.own_network(state).await?)
    }
}

#[async_trait]
impl Resource for GatewayResource {
    type State = GatewayState;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema { version: 0, block: schema_block() }
    }

    async fn validate(&self, config: &GatewayState) -> Diagnostics {
        validate_config(config)
    }

    async fn plan(&self, req: PlanRequest<GatewayState>) -> Result<Planned<GatewayState>, Diagnostics> {
        validate_config(&req.config).into_result()?;
        let mut planned = Planned::new(req.planned);
        self.docker.check_host(&planned.state.host)?;
        let state = &mut planned.state;
        if state.http.is_null() && state.https.is_null() {
            return Err(Diagnostic::attr_error(
                AttrPath::root("http"),
                "A gateway needs an entrypoint",
                "Set `http` (e.g. `{ host_ip = \"127.0.0.1\", host_port = 8080 }`), `https`, or both.",
            )
            .into());
        }
        if state.docker_socket.is_null() || state.docker_socket.is_unknown() && req.config.docker_socket.is_null() {
            state.docker_socket = Attr::Known(default_socket(self.docker.host(&state.host)?.as_deref()));
        }
        if req.config.url_scheme.is_null() {
            state.url_scheme = match (&state.https, &state.http) {
                (Attr::Known(_), _) => Attr::Known("https".into()),
                (Attr::Null, Attr::Known(_)) => Attr::Known("http".into()),
                _ => Attr::Unknown,
            };
        }
        if req.config.url_port.is_null() {
            state.url_port = default_url_port(state);
        }
        state.network = state.name.clone();
        let Some(prior) = req.prior else { return Ok(planned) };
        // What a create cut short or an out-of-band removal left (see `read`) is replaced, not
        // started in place.
        if prior.running.known() == Some(&false)
            && planned.state.running.known() == Some(&true)
            && self.remains_only(&prior).await?
        {
            planned.requires_replace.push(AttrPath::root("running"));
        }

        // Where the entrypoints listen is container config (replace); the certificate is a file
        // Traefik watches (update in place).
        let listen = |https: &Attr<HttpsEntrypoint>| match https {
            Attr::Known(h) => Attr::Known((h.host_ip.clone(), h.host_port.clone())),
            Attr::Null => Attr::Null,
            Attr::Unknown => Attr::Unknown,
        };
        if listen(&prior.https) != listen(&planned.state.https) {
            planned.requires_replace.push(AttrPath::root("https"));
        }
        // An imported gateway has no TLS material in state: its digest label says whether the
        // configured one is inside.
        if let (Attr::Known(before), Attr::Known(after)) = (&prior.https, &planned.state.https)
            && before.private_key_pem.is_null()
            && let (Some(cert), Some(key), Some(id)) =
                (after.certificate_pem.known(), after.private_key_pem.known(), prior.id.known())
        {
            let info = self.docker(&prior.host)?.inspect_container(id).await.or_diag("Reading the gateway")?;
            if info.is_none_or(|i| i.labels.get(LABEL_TLS_SHA256) != Some(&tls_digest(cert, key))) {
                planned.requires_replace.push(AttrPath::root("https"));
            }
        }
        Ok(planned)
    }

    async fn create(&self, planned: GatewayState, ctx: &OpContext) -> Result<GatewayState, Diagnostics> {
        let docker = self.docker(&planned.host)?;
        let settings = settings_from_state(&planned)?;
        let (create_timeout, _) = timeouts(&planned)?;
        docker
            .ensure_image(&settings.image, planned.pull_image.known() == Some(&true))
            .await
            .or_diag("Preparing the gateway image")?;

        let image = docker.image_config(&settings.image).await.or_diag("Preparing the gateway image")?;

        let mut rollback = Rollback::new();
        let result = async {
            let network = settings.network().to_string();
            match docker.inspect_network(&network).await.or_diag("Reading the gateway network")? {
                None => {
                    docker
                        .create_network(&network, &settings.network_labels())
                        .await
                        .or_diag("Creating the gateway network")?;
                    let (undo, name) = (docker.clone(), network.clone());
                    rollback.push_with_manual(
                        format!("network {network}"),
                        shell_command(["docker", "-H", docker.host(), "network", "rm", &network]),
                        async move { undo.remove_network(&name).await.map(|_| ()).map_err(|e| error_chain(&e)) },
                    );
                }
                // Left by an earlier gateway of the same name (a delete or create cut short): ours to reuse.
                Some(existing) if existing.labels == settings.network_labels() => {}
                Some(_) => {
                    return Err(Diagnostic::attr_error(
                        AttrPath::root("name"),
                        "The gateway's network name is taken",
                        format!(
                            "Docker network `{network}` exists on {} and was not made by lab_gateway: \
                             choose another `name`, or remove that network.",
                            docker.host()
                        ),
                    )
                    .into());
                }
            }
            let spec = settings.container_spec();
            let adopted = docker_client::claim_name(
                docker,
                planned.host.known().map(String::as_str),
                &spec,
                &image.labels,
                (LABEL_ROLE, ROLE_GATEWAY),
                TYPE_NAME,
            )
            .await?;
            let id = match &adopted {
                Some(found) => found.id.clone(),
                None => docker.create_container(&spec).await.or_diag("Creating the gateway container")?,
            };
            let (undo, undo_id) = (docker.clone(), id.clone());
            rollback.push_with_manual(
                format!("container {}", spec.name),
                shell_command(["docker", "-H", docker.host(), "rm", "-f", &spec.name]),
                async move { undo.remove_container(&undo_id).await.map(|_| ()).map_err(|e| error_chain(&e)) },
            );
            // An adopted gateway runs, so its TLS files (same digest label) went in before its start.
            if adopted.is_none() {
                let files = settings.tls_files();
                if !files.is_empty() {
                    docker
                        .upload_files(&id, &files, false)
                        .await
                        .or_diag("Uploading the certificate into the gateway")?;
                }
                docker.start_container(&id).await.or_diag("Starting the gateway")?;
            }
            let started = std::time::Instant::now();
            let info = wait_ready(docker, &id, &settings.name, create_timeout, ctx).await?;
            log::debug(&format!(
                "{}: gateway_ready_s={:.3} (start to Traefik answering)",
                settings.name,
                started.elapsed().as_secs_f64()
            ));
            Ok::<_, Diagnostics>(info)
        }
        .await;
        let info = rollback.finish(result).await?;
        Ok(state_from_info(planned, &info, true))
    }

    /// The gateway is its container and its network. While either is left it stays in state,
    /// so destroy removes the rest; one without the other reads as not running, and the plan
    /// replaces it (`remains_only`).
    async fn read(&self, current: GatewayState, _ctx: &OpContext) -> Result<Option<GatewayState>, Diagnostics> {
        let docker = self.docker(&current.host)?;
        let Some(id) = current.id.known().or(current.name.known()).cloned() else { return Ok(None) };
        let container = docker.inspect_container(&id).await.or_diag("Reading the gateway")?;
        let network = self.own_network(&current).await?;
        match (container, network) {
            (None, false) => Ok(None),
            (None, true) => {
                let mut state = current;
                state.running = Attr::Known(false);
                state.ready = Attr::Known(false);
                Ok(Some(state))
            }
            (Some(info), network) => {
                let ready = info.running && network && gateway_answers(&info).await.is_ok();
                let mut state = state_from_info(current, &info, ready);
                state.running = Attr::Known(info.running && network);
                state.image = Attr::Known(info.image.clone());
                Ok(Some(state))
            }
        }
    }

    async fn update(
        &self,
        prior: GatewayState,
        planned: GatewayState,
        ctx: &OpContext,
    ) -> Result<GatewayState, Diagnostics> {
        let docker = self.docker(&planned.host)?;
        let id = prior.id.known().cloned().ok_or_else(|| missing(AttrPath::root("id")))?;
        let settings = settings_from_state(&planned)?;
        if prior.https != planned.https {
            docker
                .upload_files(&id, &settings.tls_files(), false)
                .await
                .or_diag("Uploading the new certificate into the gateway")?;
        }
        if planned.running.known() == Some(&false) {
            docker.stop_container(&id, STOP_GRACE).await.or_diag("Stopping the gateway")?;
            let info = docker.inspect_container(&id).await.or_diag("Reading the gateway")?.ok_or_else(gone)?;
            return Ok(state_from_info(planned, &info, false));
        }
        docker.start_container(&id).await.or_diag("Starting the gateway")?;
        let (create_timeout, _) = timeouts(&planned)?;
        let info = wait_ready(docker, &id, &settings.name, create_timeout, ctx).await?;
        Ok(state_from_info(planned, &info, true))
    }

    async fn delete(&self, current: GatewayState, ctx: &OpContext) -> Result<(), Diagnostics> {
        let docker = self.docker(&current.host)?;
        let Some(name) = current.name.known().cloned() else { return Ok(()) };
        let id = current.id.known().cloned().unwrap_or_else(|| name.clone());
        let (_, timeout) = timeouts(&current)?;
        let work = async {
            docker.stop_container(&id, STOP_GRACE.min(timeout)).await?;
            docker.remove_container(&id).await?;
            docker.remove_network(&name).await
        };
        docker_client::delete_within("gateway", &id, timeout, ctx, work, |e| match e {
            DockerError::NetworkInUse { .. } => {
                Diagnostic::from_error("The gateway's network still has containers: destroy its terminals first", &e)
                    .into()
            }
            e => Diagnostic::from_error("Deleting the gateway", &e).into(),
        })
        .await
    }

    async fn import(&self, id: &str, _ctx: &OpContext) -> Result<Option<GatewayState>, Diagnostics> {
        let (host, id) = host_and_id(id);
        let host = Attr::from(host.map(str::to_string));
        let docker = self.docker(&host)?;
        let Some(info) = docker.inspect_container(id).await.or_diag("Importing the gateway")? else {
            return Ok(None);
        };
        GatewayRoute::from_container(&info).map_err(|why| Diagnostic::error("Not a lab gateway", why))?;
        Ok(Some(GatewayState { host, ..state_from_container(&info) }))
    }
}

// --- schema ---

fn schema_block() -> Block {
    let replace = |a: Attribute| a.requires_replace();
    let listen_attrs = |default_port: u16| {
        vec![
            Attribute::string("host_ip")
                .optional()
                .description("Address of the Docker host to listen on (default `127.0.0.1`; `0.0.0.0` for all)."),
            Attribute::number("host_port")
                .optional()
                .description(&format!("Port of the Docker host to listen on (default `{default_port}`).")),
        ]
    };
    let mut https_attrs = listen_attrs(443);
    https_attrs.extend([
        Attribute::string("certificate_pem").required().description(
            "Certificate chain (PEM) served for every session hostname, e.g. a wildcard `*.<domain>` certificate. \
             Changing it updates the gateway in place.",
        ),
        Attribute::string("private_key_pem")
            .required()
            .sensitive()
            .description("The certificate's private key (PEM). Uploaded into the container as a 0600 file."),
    ]);
    Block {
        description: "The edge of one classroom host: a [Traefik](https://traefik.io) v3 container that routes each \
                      session hostname to the `lab_terminal` naming this gateway, on a Docker network the gateway \
                      owns. Only terminals labelled with this gateway's name are routed, so two classes on one \
                      host never route each other's students."
            .into(),
        attributes: vec![
            Attribute::string("id").computed().keep_prior().description("Docker container id."),
            replace(Attribute::string("name").required().description(
                "Name of the container and of the Docker network it owns: 1-63 characters `[a-z0-9-]`, starting and \
                 ending with a letter or digit. Import uses it (`<host>/<name>` on a named host).",
            )),
            replace(Attribute::string("host").optional().description(
                "The provider's `host \"<name>\"` block whose Docker daemon runs the gateway (each host of a class \
                 has its own gateway); unset: the provider's own `docker_host`. A name without a block is a \
                 plan-time error.",
            )),
            replace(Attribute::string("image").default_str(DEFAULT_IMAGE).description(
                "Traefik v3 image. Its entrypoint must run `traefik` with the container's arguments, as the \
                 upstream image does.",
            )),
            Attribute::bool("pull_image").default_bool(false).description(
                "Pull `image` when the Docker host does not have it (otherwise a missing image is an error).",
            ),
            replace(Attribute::string("docker_socket").optional().computed().description(
                "Path of the Docker daemon's socket on the Docker host, mounted read-only for Traefik's Docker \
                 provider. Default: the path of the provider's `docker_host` when it is `unix://`, else \
                 `/var/run/docker.sock`.",
            )),
            replace(
                Attribute::nested("http", Nesting::Single, listen_attrs(80))
                    .optional()
                    .description("Plain HTTP entrypoint, e.g. `{ host_port = 8080 }` for a local classroom, or \
                                  `{ host_port = 80 }` behind a tunnel that ends TLS (cloudflared)."),
            ),
            Attribute::nested("https", Nesting::Single, https_attrs).optional().description(
                "HTTPS entrypoint with a certificate, e.g. `{ host_ip = \"0.0.0.0\", host_port = 443, certificate_pem = \
                 file(\"wildcard.pem\"), private_key_pem = file(\"wildcard.key\") }`.",
            ),
            replace(Attribute::string("url_scheme").optional().computed().description(
                "Scheme of the URLs students open: `https` with an `https` entrypoint, else `http`. Behind a tunnel \
                 that serves HTTPS, set `https`. Pass it to `lab_session.url_scheme`.",
            )),
            replace(Attribute::number("url_port").optional().computed().description(
                "Port of the URLs students open: the published port of the entrypoint serving `url_scheme` (443 \
                 for `https` without an `https` entrypoint, as behind a tunnel). Pass it to `lab_session.url_port`.",
            )),
            Attribute::string("network")
                .computed()
                .description("The Docker network the gateway owns; its terminals join it (the gateway's `name`)."),
            Attribute::bool("running").default_bool(true).description(
                "Whether the container runs. A gateway stopped out of band shows as a change back to true and is \
                 started in place; one never started, or missing its container or its network, is replaced.",
            ),
            Attribute::bool("ready").computed().description("Whether Traefik answered on its entrypoint."),
        ],
        blocks: vec![Timeouts::block(
            "Create and start, including the wait until Traefik answers (default `2m`).",
            "Stop and remove the container and its network (default `1m`).",
        )],
        ..Default::default()
    }
}

// --- validation ---

fn validate_config(config: &GatewayState) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let mut check = |path: AttrPath, result: Result<(), String>| {
        crate::validate::check(&mut diags, path, result);
    };
    if let Some(v) = config.name.known() {
        check(AttrPath::root("name"), crate::validate::name(v));
    }
    if let Some(v) = config.image.known() {
        check(AttrPath::root("image"), crate::validate::image(v));
    }
    if let Some(v) = config.docker_socket.known() {
        check(AttrPath::root("docker_socket"), validate_socket_path(v));
    }
    if let Some(http) = config.http.known() {
        check_listen(&mut check, "http", &http.host_ip, &http.host_port);
    }
    if let Some(https) = config.https.known() {
        check_listen(&mut check, "https", &https.host_ip, &https.host_port);
        if let Some(cert) = https.certificate_pem.known() {
            check(AttrPath::root("https").attr("certificate_pem"), validate_certificate(cert));
        }
        if let Some(key) = https.private_key_pem.known() {
            check(AttrPath::root("https").attr("private_key_pem"), validate_private_key(key));
        }
    }
    if let Some(v) = config.url_scheme.known()
        && v != "http"
        && v != "https"
    {
        check(AttrPath::root("url_scheme"), Err(format!("`{v}`: use `http` or `https`")));
    }
    if let Some(v) = config.url_port.known() {
        check(AttrPath::root("url_port"), port(*v).map(|_| ()));
    }
    // Both entrypoints on one host address and port cannot be published.
    if let (Some(http), Some(https)) = (config.http.known(), config.https.known())
        && http.host_port.known().copied().unwrap_or(80) == https.host_port.known().copied().unwrap_or(443)
        && http.host_ip.known() == https.host_ip.known()
    {
        check(AttrPath::root("https").attr("host_port"), Err("the same address and port as `http`".into()));
    }
    if let Err(bad) = timeouts(config) {
        diags.extend(bad);
    }
    diags
}

fn check_listen(
    check: &mut impl FnMut(AttrPath, Result<(), String>),
    block: &str,
    host_ip: &Attr<String>,
    host_port: &Attr<i64>,
) {
    if let Some(ip) = host_ip.known() {
        let ok = ip.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| format!("`{ip}` is not an IP address"));
        check(AttrPath::root(block).attr("host_ip"), ok);
    }
    if let Some(p) = host_port.known() {
        check(AttrPath::root(block).attr("host_port"), port(*p).map(|_| ()));
    }
}

fn validate_socket_path(path: &str) -> Result<(), String> {
    let ok = path.starts_with('/')
        && !path.contains(',')
        && !path.chars().any(|c| c.is_control())
        && !path.split('/').any(|part| part == "..");
    if ok { Ok(()) } else { Err(format!("`{path}` is not an absolute path without `..`, `,` or control characters")) }
}

fn validate_certificate(pem: &str) -> Result<(), String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(list) if !list.is_empty() => Ok(()),
        Ok(_) => Err("no `-----BEGIN CERTIFICATE-----` block found".into()),
        Err(e) => Err(format!("not a PEM certificate chain: {e}")),
    }
}

fn validate_private_key(pem: &str) -> Result<(), String> {
    // Never echo the value: it is a secret even when malformed.
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map(|_| ())
        .map_err(|_| "expected a PEM private key (`-----BEGIN PRIVATE KEY-----` ...)".into())
}

// --- plan helpers ---

fn default_socket(docker_host: Option<&str>) -> String {
    docker_host.and_then(|h| h.strip_prefix("unix://")).filter(|p| !p.is_empty()).unwrap_or(DEFAULT_SOCKET).into()
}

fn default_url_port(state: &GatewayState) -> Attr<i64> {
    let port_of = |p: &Attr<i64>, default: i64| match p {
        Attr::Known(n) => Attr::Known(*n),
        Attr::Null => Attr::Known(default),
        Attr::Unknown => Attr::Unknown,
    };
    match (state.url_scheme.known().map(String::as_str), &state.https, &state.http) {
        (Some("https"), Attr::Known(h), _) => port_of(&h.host_port, 443),
        (Some("https"), Attr::Null, _) => Attr::Known(443),
        (Some("http"), _, Attr::Known(h)) => port_of(&h.host_port, 80),
        (Some("http"), _, Attr::Null) => Attr::Known(80),
        _ => Attr::Unknown,
    }
}

fn timeouts(state: &GatewayState) -> Result<(Duration, Duration), Diagnostics> {
    Timeouts::resolve(state.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))
}

fn settings_from_state(s: &GatewayState) -> Result<GatewaySettings, Diagnostics> {
    let string = |a: &Attr<String>, name: &str| {
        a.known().cloned().ok_or_else(|| Diagnostics::from(missing(AttrPath::root(name))))
    };
    let number = |a: &Attr<i64>, name: &str, default: u16| match a {
        Attr::Null => Ok::<_, Diagnostics>(default),
        Attr::Known(n) => port(*n).map_err(|why| invalid(AttrPath::root(name), why).into()),
        Attr::Unknown => Err(missing(AttrPath::root(name)).into()),
    };
    let listen = |ip: &Attr<String>, p: &Attr<i64>, block: &str, default: u16| -> Result<Listen, Diagnostics> {
        Ok(Listen {
            host_ip: ip.known().cloned().unwrap_or_else(|| DEFAULT_HOST_IP.into()),
            host_port: number(p, &format!("{block}.host_port"), default)?,
        })
    };
    let http = match s.http.known() {
        Some(h) => Some(listen(&h.host_ip, &h.host_port, "http", 80)?),
        None => None,
    };
    let https = match s.https.known() {
        Some(h) => Some(TlsListen {
            listen: listen(&h.host_ip, &h.host_port, "https", 443)?,
            certificate_pem: string(&h.certificate_pem, "https.certificate_pem")?,
            private_key_pem: string(&h.private_key_pem, "https.private_key_pem")?,
        }),
        None => None,
    };
    Ok(GatewaySettings {
        name: string(&s.name, "name")?,
        image: s.image.known().cloned().unwrap_or_else(|| DEFAULT_IMAGE.into()),
        docker_socket: string(&s.docker_socket, "docker_socket")?,
        http,
        https,
        url_scheme: string(&s.url_scheme, "url_scheme")?,
        url_port: number(&s.url_port, "url_port", 80)?,
    })
}

// --- readiness ---

/// Traefik answers HTTP on its entrypoint (404 for a Host nothing routes).
async fn gateway_answers(info: &ContainerInfo) -> Result<u16, route::RouteProbeError> {
    route::http_status(probe_address(info), PROBE_HOST, None).await
}

/// Wait until the container runs and Traefik answers; a container that exits fails at once.
async fn wait_ready(
    docker: &DockerClient,
    id: &str,
    name: &str,
    timeout: Duration,
    ctx: &OpContext,
) -> Result<ContainerInfo, Diagnostics> {
    let what = format!("gateway `{name}` (Traefik answering on its entrypoint)");
    let poll = Poll { timeout, interval: PROBE_INTERVAL };
    docker_client::wait_ready(docker, id, "gateway", &what, poll, ctx, |info| async move {
        gateway_answers(&info).await.map_err(|e| e.to_string())?;
        Ok(info)
    })
    .await
}

// --- state <-> container ---

fn state_from_info(mut state: GatewayState, info: &ContainerInfo, ready: bool) -> GatewayState {
    state.id = Attr::Known(info.id.clone());
    state.running = Attr::Known(info.running);
    state.ready = Attr::Known(ready);
    state
}

/// Rebuild a state from a gateway this provider made (import). The TLS material stays null: it
/// is never read back; the plan matches the configured one against the digest label.
fn state_from_container(info: &ContainerInfo) -> GatewayState {
    let back = read_back(info);
    let listen = |l: &Listen| (Attr::Known(l.host_ip.clone()), Attr::Known(i64::from(l.host_port)));
    GatewayState {
        id: Attr::Known(info.id.clone()),
        name: Attr::Known(back.name.clone()),
        host: Attr::Null,
        image: Attr::Known(back.image),
        pull_image: Attr::Known(false),
        docker_socket: back.docker_socket.into(),
        http: back
            .http
            .as_ref()
            .map(|l| {
                let (host_ip, host_port) = listen(l);
                HttpEntrypoint { host_ip, host_port }
            })
            .into(),
        https: back
            .https
            .as_ref()
            .map(|l| {
                let (host_ip, host_port) = listen(l);
                HttpsEntrypoint { host_ip, host_port, certificate_pem: Attr::Null, private_key_pem: Attr::Null }
            })
            .into(),
        url_scheme: back.url_scheme.into(),
        url_port: back.url_port.map(i64::from).into(),
        network: Attr::Known(back.name),
        running: Attr::Known(info.running),
        ready: Attr::Known(info.running),
        timeouts: None,
    }
}

fn gone() -> Diagnostics {
    Diagnostic::error(
        "The gateway container is gone",
        "It was removed while being updated; apply again to re-create it.",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GatewayState {
        GatewayState {
            name: Attr::Known("os101-edge".into()),
            http: Attr::Known(HttpEntrypoint { host_ip: Attr::Null, host_port: Attr::Known(8080) }),
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_the_attribute() {
        let mut c = config();
        c.name = Attr::Known("Edge!".into());
        c.http =
            Attr::Known(HttpEntrypoint { host_ip: Attr::Known("localhost".into()), host_port: Attr::Known(70000) });
        c.https = Attr::Known(HttpsEntrypoint {
            host_ip: Attr::Null,
            host_port: Attr::Null,
            certificate_pem: Attr::Known("not a cert".into()),
            private_key_pem: Attr::Known("secret-but-wrong".into()),
        });
        c.url_scheme = Attr::Known("ftp".into());
        c.docker_socket = Attr::Known("relative/docker.sock".into());
        let diags = validate_config(&c);
        let paths: Vec<String> = diags.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect();
        assert_eq!(
            paths,
            [
                "name",
                "docker_socket",
                "http.host_ip",
                "http.host_port",
                "https.certificate_pem",
                "https.private_key_pem",
                "url_scheme"
            ]
        );
        assert!(diags.0.iter().all(|d| !d.detail.contains("secret-but-wrong")), "the key must never be echoed");
        assert!(validate_config(&config()).0.is_empty());
    }

    #[test]
    fn url_defaults_follow_the_entrypoints() {
        let mut s = config();
        s.url_scheme = Attr::Known("http".into());
        assert_eq!(default_url_port(&s), Attr::Known(8080));
        // Behind a tunnel: Traefik on :80, students on https://...:443.
        s.url_scheme = Attr::Known("https".into());
        assert_eq!(default_url_port(&s), Attr::Known(443));
        assert_eq!(default_socket(Some("unix:///run/lab-rig/docker.sock")), "/run/lab-rig/docker.sock");
        assert_eq!(default_socket(Some("tcp://10.0.0.5:2376")), "/var/run/docker.sock");
        assert_eq!(default_socket(None), "/var/run/docker.sock");
    }
}
