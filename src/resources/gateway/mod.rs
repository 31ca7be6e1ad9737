//! `lab_gateway`: the edge of one classroom host. A Traefik v3 container that routes each
//! session hostname to its terminal: Traefik's Docker provider (socket mounted read-only),
//! constrained to the terminals labelled with this gateway's name, on a Docker network the
//! gateway owns and its terminals join. Entrypoints are published where the deployment needs
//! them: `127.0.0.1:8080` for a local classroom, `:80` behind a tunnel, `:443` with a certificate.
//!
//! Container config is immutable in Docker, so most arguments replace the gateway (and, through
//! `lab_terminal.gateway`, its terminals); `running`, the certificate and `timeouts` update in place.

pub mod class_page;
pub mod container;
pub mod instructor;
pub mod route;

use std::time::Duration;

use async_trait::async_trait;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use self::class_page::ROLE_CLASS_PAGE;
use self::container::{
    GatewaySettings, Instructor, LABEL_TLS_SHA256, Listen, TlsListen, network_labels, read_back, tls_digest,
};
use self::route::{GatewayRoute, LABEL_GATEWAY, LABEL_ROLE, ROLE_GATEWAY, probe_address, url_for};
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

/// The instructor credential: a password (hashed by the provider) or a ready bcrypt hash.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstructorBlock {
    pub username: Attr<String>,
    pub password: Attr<String>,
    pub password_hash: Attr<String>,
}

impl std::fmt::Debug for InstructorBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstructorBlock").field("username", &self.username).finish_non_exhaustive()
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
    pub instructor: Attr<InstructorBlock>,
    pub instructor_password_hash: Attr<String>,
    pub class_hostname: Attr<String>,
    pub class_page_image: Attr<String>,
    pub class_url: Attr<String>,
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
    /// files go in before the start), its network is gone, or (with an instructor) its class
    /// page's container is.
    async fn remains_only(&self, state: &GatewayState) -> Result<bool, Diagnostics> {
        let Some(id) = state.id.known().or(state.name.known()) else { return Ok(false) };
        let container = self.docker(&state.host)?.inspect_container(id).await.or_diag("Reading the gateway")?;
        let page_missing = match self.class_page(state).await? {
            Some(page) => page.is_none_or(|p| p.never_started()),
            None => false,
        };
        Ok(container.is_none_or(|c| c.never_started()) || !self.own_network(state).await? || page_missing)
    }

    /// With an instructor: the class page's container as found (`Some(None)`: it is gone); without
    /// one, `None`. A container under its name that is not this gateway's page counts as gone.
    async fn class_page(&self, state: &GatewayState) -> Result<Option<Option<ContainerInfo>>, Diagnostics> {
        let Some(name) = state.name.known() else { return Ok(None) };
        if state.instructor.is_null() {
            return Ok(None);
        }
        let page = self
            .docker(&state.host)?
            .inspect_container(&class_page::container_name(name))
            .await
            .or_diag("Reading the class page")?;
        Ok(Some(page.filter(|p| is_class_page_of(p, name))))
    }
}

/// Whether a container is gateway `gateway`'s class page (made by this provider).
fn is_class_page_of(info: &ContainerInfo, gateway: &str) -> bool {
    let label = |k: &str| info.labels.get(k).map(String::as_str);
    label(crate::lifecycle::MANAGED_LABEL) == Some("true")
        && label(LABEL_ROLE) == Some(ROLE_CLASS_PAGE)
        && label(LABEL_GATEWAY) == Some(gateway)
}

/// Create (or adopt, by the rule of `claim_name`) and start the class page's container, its
/// files uploaded before the start; undone by `rollback`. Nothing without an instructor.
async fn start_class_page(
    docker: &DockerClient,
    host: Option<&str>,
    settings: &GatewaySettings,
    image: &str,
    pull: bool,
    rollback: &mut Rollback,
) -> Result<(), Diagnostics> {
    let Some(spec) = class_page::container_spec(settings, image) else { return Ok(()) };
    docker.ensure_image(image, pull).await.or_diag("Preparing the class page image")?;
    let image_config = docker.image_config(image).await.or_diag("Preparing the class page image")?;
    let kind = (LABEL_ROLE, ROLE_CLASS_PAGE);
    let (id, adopted) =
        docker_client::create_or_adopt(docker, host, &spec, &image_config.labels, kind, TYPE_NAME, rollback).await?;
    if !adopted {
        docker.upload_files(&id, &class_page::files(settings), false).await.or_diag("Uploading the class page")?;
        docker.start_container(&id).await.or_diag("Starting the class page")?;
    }
    Ok(())
}

/// Stop and remove gateway `gateway`'s class page, if there is one of ours.
async fn remove_class_page(docker: &DockerClient, gateway: &str, grace: Duration) -> Result<(), DockerError> {
    let name = class_page::container_name(gateway);
    match docker.inspect_container(&name).await? {
        Some(page) if is_class_page_of(&page, gateway) => {
            docker.stop_container(&page.id, grace).await?;
            docker.remove_container(&page.id).await.map(|_| ())
        }
        _ => Ok(()),
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
        state.instructor_password_hash = planned_hash(&req.config.instructor, req.prior.as_ref());
        if req.config.class_hostname.is_null() {
            state.class_hostname = default_class_hostname(&req.config.instructor, self.docker.domain()?.as_deref())?;
        }
        state.class_url = class_url(state);
        let Some(prior) = req.prior else { return Ok(planned) };
        // The credential and the class hostname are labels (container config): a change replaces.
        let instructor = |s: &GatewayState| {
            let username = s.instructor.known().map(|i| i.username.clone());
            (username, s.instructor_password_hash.clone(), s.class_hostname.clone())
        };
        if instructor(&prior) != instructor(&planned.state) {
            planned.requires_replace.push(AttrPath::root("instructor"));
        }
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
        let planned = with_password_hash(planned)?;
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
            let (id, adopted) = docker_client::create_or_adopt(
                docker,
                planned.host.known().map(String::as_str),
                &spec,
                &image.labels,
                (LABEL_ROLE, ROLE_GATEWAY),
                TYPE_NAME,
                &mut rollback,
            )
            .await?;
            // An adopted gateway runs, so its TLS files (same digest label) went in before its start.
            if !adopted {
                let files = settings.tls_files();
                if !files.is_empty() {
                    docker
                        .upload_files(&id, &files, false)
                        .await
                        .or_diag("Uploading the certificate into the gateway")?;
                }
                docker.start_container(&id).await.or_diag("Starting the gateway")?;
            }
            let page_image =
                planned.class_page_image.known().cloned().unwrap_or_else(|| class_page::DEFAULT_IMAGE.into());
            let pull = planned.pull_image.known() == Some(&true);
            start_class_page(
                docker,
                planned.host.known().map(String::as_str),
                &settings,
                &page_image,
                pull,
                &mut rollback,
            )
            .await?;
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
                let page_runs = match self.class_page(&current).await? {
                    Some(page) => page.is_some_and(|p| p.running),
                    None => true,
                };
                let ready = info.running && network && page_runs && gateway_answers(&info).await.is_ok();
                let mut state = state_from_info(current, &info, ready);
                state.running = Attr::Known(info.running && network && page_runs);
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
        let page = class_page::container_name(&settings.name);
        let has_page = class_page::container_spec(&settings, "").is_some();
        if planned.running.known() == Some(&false) {
            if has_page {
                docker.stop_container(&page, STOP_GRACE).await.or_diag("Stopping the class page")?;
            }
            docker.stop_container(&id, STOP_GRACE).await.or_diag("Stopping the gateway")?;
            let info = docker.inspect_container(&id).await.or_diag("Reading the gateway")?.ok_or_else(gone)?;
            return Ok(state_from_info(planned, &info, false));
        }
        docker.start_container(&id).await.or_diag("Starting the gateway")?;
        if has_page {
            docker.start_container(&page).await.or_diag("Starting the class page")?;
        }
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
            remove_class_page(docker, &name, STOP_GRACE.min(timeout)).await?;
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
        let mut state = GatewayState { host, ..state_from_container(&info) };
        let page = docker
            .inspect_container(&class_page::container_name(&info.name))
            .await
            .or_diag("Importing the class page")?
            .filter(|p| is_class_page_of(p, &info.name));
        state.class_page_image = Attr::Known(page.map_or_else(|| class_page::DEFAULT_IMAGE.into(), |p| p.image));
        state.class_url = class_url(&state);
        Ok(Some(state))
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
    let instructor_attrs = vec![
        Attribute::string("username")
            .required()
            .description("The instructor's username: printable ASCII without spaces, `:`, `,`, `\"` or backticks."),
        Attribute::string("password").optional().sensitive().description(
            "The instructor's password (at least 8 characters), hashed with bcrypt by the provider; only the hash \
             reaches the gateway. Set this or `password_hash`.",
        ),
        Attribute::string("password_hash").optional().sensitive().description(
            "A ready bcrypt hash of the password (`htpasswd -nbB user password` prints `user:<hash>`), instead of \
             `password`.",
        ),
    ];
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
            Attribute::nested("instructor", Nesting::Single, instructor_attrs).optional().description(
                "The instructor's credential, e.g. `{ username = \"prof\", password = var.instructor_password }`: \
                 a Traefik basicAuth middleware in the gateway's labels, holding a bcrypt hash only. It guards \
                 each terminal's watch view and the class page; students' URLs never ask for it. Changing it \
                 replaces the gateway (and so its terminals).",
            ),
            Attribute::string("instructor_password_hash").computed().sensitive().description(
                "The bcrypt hash in the gateway's labels: `instructor.password_hash`, or one the provider made from \
                 `instructor.password` (kept while it matches, so a plan never re-hashes).",
            ),
            replace(Attribute::string("class_hostname").optional().computed().description(
                "Hostname of the instructor's class page, behind the `instructor` credential. Default: \
                 `class.<domain>` (the provider's `domain`) when `instructor` is set; null without it.",
            )),
            replace(Attribute::string("class_page_image").default_str(class_page::DEFAULT_IMAGE).description(
                "Image of the class page's container (with `instructor`): it must have busybox (`httpd`, `sh`, \
                 `sed`, `grep`, `nc`, `timeout`) and `curl` on its `PATH`. The rig builds `lab/class-page:1` from \
                 Debian's binaries (`acceptance-tests/rig/build-classpage-rootfs.sh`).",
            )),
            Attribute::string("class_url")
                .computed()
                .description("The class page's URL (with `instructor`), e.g. `http://class.lab.localhost:8080`."),
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
    validate_instructor(&mut check, config);
    if let Err(bad) = timeouts(config) {
        diags.extend(bad);
    }
    diags
}

fn validate_instructor(check: &mut impl FnMut(AttrPath, Result<(), String>), config: &GatewayState) {
    let at = |name: &str| AttrPath::root("instructor").attr(name);
    if let Some(who) = config.instructor.known() {
        if let Some(v) = who.username.known() {
            check(at("username"), instructor::validate_username(v));
        }
        match (&who.password, &who.password_hash) {
            (Attr::Null, Attr::Null) => check(at("password"), Err("set `password` or `password_hash`".into())),
            (Attr::Null, _) | (_, Attr::Null) => {}
            _ => check(at("password_hash"), Err("set `password` or `password_hash`, not both".into())),
        }
        if let Some(v) = who.password.known() {
            check(at("password"), instructor::validate_password(v));
        }
        if let Some(v) = who.password_hash.known() {
            check(at("password_hash"), instructor::validate_hash(v));
        }
    }
    if let Some(v) = config.class_hostname.known() {
        check(AttrPath::root("class_hostname"), crate::validate::domain(v));
        if config.instructor.is_null() {
            check(
                AttrPath::root("class_hostname"),
                Err("the class page is for the instructor only: set `instructor` too".into()),
            );
        }
    }
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

/// The hash the plan records: a ready one as configured; the prior one while it still matches the
/// password (a new salt would change the labels, and so replace the gateway); else unknown, made
/// at create.
fn planned_hash(config: &Attr<InstructorBlock>, prior: Option<&GatewayState>) -> Attr<String> {
    let who = match config {
        Attr::Null => return Attr::Null,
        Attr::Unknown => return Attr::Unknown,
        Attr::Known(who) => who,
    };
    if let Attr::Known(hash) = &who.password_hash {
        return Attr::Known(hash.clone());
    }
    let Some(password) = who.password.known() else { return Attr::Unknown };
    match prior.and_then(|p| p.instructor_password_hash.known()) {
        Some(hash) if instructor::hash_matches(password, hash) => Attr::Known(hash.clone()),
        _ => Attr::Unknown,
    }
}

/// `class.<domain>` with an instructor, else none.
fn default_class_hostname(config: &Attr<InstructorBlock>, domain: Option<&str>) -> Result<Attr<String>, Diagnostics> {
    match (config, domain) {
        (Attr::Null, _) => Ok(Attr::Null),
        (Attr::Unknown, _) => Ok(Attr::Unknown),
        (Attr::Known(_), Some(domain)) => Ok(Attr::Known(format!("class.{domain}"))),
        (Attr::Known(_), None) => Err(Diagnostic::attr_error(
            AttrPath::root("class_hostname"),
            "The class page needs a hostname",
            "Set `class_hostname` (e.g. `class.lab.example.edu`), or the provider's `domain` for the default \
             `class.<domain>`.",
        )
        .into()),
    }
}

/// `class_hostname` as a URL on the entrypoint students use (`url_scheme`, `url_port`).
fn class_url(state: &GatewayState) -> Attr<String> {
    match (&state.class_hostname, &state.url_scheme, &state.url_port) {
        (Attr::Null, _, _) => Attr::Null,
        (Attr::Known(host), Attr::Known(scheme), Attr::Known(port)) => {
            Attr::Known(url_for(scheme, host, u16::try_from(*port).ok()))
        }
        _ => Attr::Unknown,
    }
}

/// The plan left the hash unknown: make it now, from the password.
fn with_password_hash(mut state: GatewayState) -> Result<GatewayState, Diagnostics> {
    if state.instructor_password_hash.is_unknown()
        && let Some(password) = state.instructor.known().and_then(|i| i.password.known())
    {
        let hash = instructor::hash_password(password).map_err(|why| {
            Diagnostic::attr_error(AttrPath::root("instructor").attr("password"), "Hashing failed", why)
        })?;
        state.instructor_password_hash = Attr::Known(hash);
    }
    Ok(state)
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
        instructor: match s.instructor.known() {
            Some(who) => Some(Instructor {
                username: string(&who.username, "instructor.username")?,
                password_hash: string(&s.instructor_password_hash, "instructor_password_hash")?,
            }),
            None => None,
        },
        class_hostname: s.class_hostname.known().cloned(),
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
        instructor: back
            .instructor
            .as_ref()
            .map(|(username, _)| InstructorBlock {
                username: Attr::Known(username.clone()),
                password: Attr::Null,
                password_hash: Attr::Null,
            })
            .into(),
        instructor_password_hash: back.instructor.map(|(_, hash)| hash).into(),
        class_hostname: back.class_hostname.into(),
        class_page_image: Attr::Null,
        class_url: Attr::Null,
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

    #[test]
    fn instructor_is_validated_on_its_attributes_without_echoing_secrets() {
        let mut c = config();
        let who = |password: Attr<String>, password_hash: Attr<String>| {
            Attr::Known(InstructorBlock { username: Attr::Known("prof:x".into()), password, password_hash })
        };
        c.instructor = who(Attr::Known("short".into()), Attr::Known("$1$md5-secret".into()));
        c.class_hostname = Attr::Known("Class!".into());
        let diags = validate_config(&c);
        let paths: Vec<String> = diags.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect();
        assert_eq!(
            paths,
            [
                "instructor.username",
                "instructor.password_hash",
                "instructor.password",
                "instructor.password_hash",
                "class_hostname"
            ]
        );
        assert!(diags.0.iter().all(|d| !d.detail.contains("short") && !d.detail.contains("md5-secret")));
        c.instructor = who(Attr::Null, Attr::Null);
        let diags = validate_config(&c);
        assert!(diags.0.iter().any(|d| d.detail.contains("set `password` or `password_hash`")), "{diags:?}");
        let mut alone = config();
        alone.class_hostname = Attr::Known("class.lab.localhost".into());
        assert!(validate_config(&alone).0[0].detail.contains("set `instructor` too"));
    }

    #[test]
    fn plan_keeps_the_hash_while_the_password_matches() {
        let config = |password: &str| {
            Attr::Known(InstructorBlock {
                username: Attr::Known("prof".into()),
                password: Attr::Known(password.into()),
                password_hash: Attr::Null,
            })
        };
        assert_eq!(planned_hash(&config("correct horse"), None), Attr::Unknown);
        let made = with_password_hash(GatewayState {
            instructor: config("correct horse"),
            instructor_password_hash: Attr::Unknown,
            ..Default::default()
        })
        .unwrap();
        let hash = made.instructor_password_hash.known().cloned().unwrap();
        assert!(hash.starts_with("$2b$10$"), "{hash}");
        assert_eq!(planned_hash(&config("correct horse"), Some(&made)), Attr::Known(hash));
        assert_eq!(planned_hash(&config("another horse"), Some(&made)), Attr::Unknown);
        assert_eq!(planned_hash(&Attr::Null, Some(&made)), Attr::Null);
        assert_eq!(
            default_class_hostname(&config("x"), Some("lab.localhost")).unwrap(),
            Attr::Known("class.lab.localhost".into())
        );
        assert!(default_class_hostname(&config("x"), None).is_err());
        assert_eq!(default_class_hostname(&Attr::Null, None).unwrap(), Attr::Null);
    }
}
