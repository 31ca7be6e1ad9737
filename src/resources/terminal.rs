//! `lab_terminal`: one ttyd container per VM. ttyd serves a browser terminal running
//! `ssh <ssh_user>@<target_host>` with a private key uploaded into the container before it starts
//! (mode 0600, never in env, command line, labels or logs). Traefik labels route the session's
//! hostname to it: those of a `lab_gateway` when `gateway` names one (create then waits until the
//! student's URL answers through it), else those of a Traefik the user runs; or it is published on
//! a host port.
//!
//! Container config is immutable in Docker, so almost every argument replaces the container;
//! `running` (start/stop), `timeouts` and `pull_image` update in place.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backends::docker::{ContainerInfo, ContainerSpec, DockerClient, DockerError, PortPublish, UploadFile};
use crate::lifecycle::{MANAGED_LABEL, Rollback, Timeouts, WaitError, wait_until};
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, Diagnostic, Diagnostics, Nesting, OpContext, PlanRequest, Planned, Resource,
    Schema, Type, Value, log,
};
use crate::resources::docker_client::DockerConnection;
use crate::resources::gateway::is_gateway;
use crate::resources::gateway::route::{
    ENTRYPOINT_HTTP, ENTRYPOINT_HTTPS, GatewayRoute, LABEL_GATEWAY, http_status, terminal_routed,
};
use crate::settings::ProviderHandle;

const TYPE_NAME: &str = "lab_terminal";
/// ttyd's port inside the container.
pub const TTYD_PORT: u16 = 7681;
/// Where the SSH key lands in the container (directory 0700, file 0600, owned by the ttyd user).
pub const KEY_PATH: &str = "/lab/ssh/id";
const DEFAULT_IMAGE: &str = "tsl0922/ttyd:1.7.7";
const DEFAULT_SSH_USER: &str = "student";
const DEFAULT_ENTRYPOINT: &str = "websecure";
const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM, then SIGKILL after this long: ttyd exits at once on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

// Labels the provider owns on every terminal container.
const LABEL_TERMINAL: &str = "lab.terminal";
const LABEL_TARGET: &str = "lab.target";
const LABEL_HOSTNAME: &str = "lab.hostname";
const LABEL_NETWORK: &str = "lab.network";
const LABEL_TRAEFIK: &str = "lab.traefik";
/// SHA-256 of the private key: lets an imported terminal match its configured key without
/// replacement. A digest of a random key reveals nothing about it.
const LABEL_KEY_SHA256: &str = "lab.ssh_key_sha256";
/// The `gateway` value as configured (id or name of the lab_gateway), for import.
const LABEL_GATEWAY_REF: &str = "lab.gateway.ref";
const RESERVED_LABELS: [&str; 9] = [
    MANAGED_LABEL,
    LABEL_TERMINAL,
    LABEL_TARGET,
    LABEL_HOSTNAME,
    LABEL_NETWORK,
    LABEL_TRAEFIK,
    LABEL_KEY_SHA256,
    LABEL_GATEWAY,
    LABEL_GATEWAY_REF,
];
/// After a routed terminal stops, how long delete waits for its URL to stop serving (Traefik
/// drops the router on Docker's `die` event, after its 2 s provider throttle).
const UNROUTE_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub host_ip: Attr<String>,
    pub host_port: Attr<i64>,
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub username: Attr<String>,
    pub password: Attr<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("username", &self.username).field("password", &"<sensitive>").finish()
    }
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TerminalState {
    pub id: Attr<String>,
    pub name: Attr<String>,
    pub target_host: Attr<String>,
    pub target_port: Attr<i64>,
    pub ssh_user: Attr<String>,
    pub ssh_private_key: Attr<String>,
    pub image: Attr<String>,
    pub pull_image: Attr<bool>,
    pub network: Attr<String>,
    pub hostname: Attr<String>,
    pub gateway: Attr<String>,
    pub traefik: Attr<bool>,
    pub traefik_entrypoint: Attr<String>,
    pub traefik_tls: Attr<bool>,
    pub traefik_cert_resolver: Attr<String>,
    pub publish: Attr<Publish>,
    pub credential: Attr<Credential>,
    pub writable: Attr<bool>,
    pub max_clients: Attr<i64>,
    /// Values may be unknown at plan time (e.g. another resource's id).
    pub labels: Attr<BTreeMap<String, Attr<String>>>,
    pub running: Attr<bool>,
    pub timeouts: Option<Timeouts>,
    pub url: Attr<String>,
    pub ready: Attr<bool>,
}

// The key and the credential never reach logs, not even through `{:?}`.
impl std::fmt::Debug for TerminalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalState")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("target_host", &self.target_host)
            .field("image", &self.image)
            .field("hostname", &self.hostname)
            .field("url", &self.url)
            .field("ssh_private_key", &"<sensitive>")
            .finish_non_exhaustive()
    }
}

pub struct TerminalResource {
    docker: DockerConnection,
}

impl TerminalResource {
    pub fn new(provider: ProviderHandle) -> Self {
        TerminalResource { docker: DockerConnection::new(provider) }
    }

    fn docker(&self) -> Result<&DockerClient, Diagnostics> {
        self.docker.get(TYPE_NAME)
    }
}

#[async_trait]
impl Resource for TerminalResource {
    type State = TerminalState;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema { version: 0, block: schema_block() }
    }

    async fn validate(&self, config: &TerminalState) -> Diagnostics {
        validate_config(config)
    }

    async fn plan(&self, req: PlanRequest<TerminalState>) -> Result<Planned<TerminalState>, Diagnostics> {
        let mut planned = Planned::new(req.planned);
        validate_config(&planned.state).into_result()?;
        let state = &planned.state;
        if !state.gateway.is_null() {
            let misfit = |attr: &str, why: &str| {
                Err(Diagnostic::attr_error(AttrPath::root(attr), format!("`{attr}` does not fit a gateway"), why)
                    .into())
            };
            if state.hostname.is_null() {
                return misfit(
                    "hostname",
                    "A terminal behind a gateway is routed by its hostname: set `hostname` (usually \
                     `lab_session.<name>.hostname`).",
                );
            }
            if state.traefik.known() == Some(&false) {
                return misfit("traefik", "The gateway routes by Traefik labels: leave `traefik` at true.");
            }
            if !state.network.is_null() {
                return misfit("network", "A terminal behind a gateway joins the gateway's network: unset `network`.");
            }
        }
        if state.traefik.known() == Some(&true) && state.hostname.is_null() {
            return Err(Diagnostic::attr_error(
                AttrPath::root("hostname"),
                "Traefik routing needs a hostname",
                "Set `hostname` (usually `lab_session.<name>.hostname`) or `traefik = false` with `publish`.",
            )
            .into());
        }
        let Some(prior) = req.prior else { return Ok(planned) };
        // Docker may bind a different free port when a container without a fixed host port
        // starts again: its URL is then only known after the start.
        let floating_port = planned.state.publish.known().is_some_and(|p| p.host_port.is_null());
        if floating_port && prior.running != planned.state.running {
            planned.state.url = Attr::Unknown;
        }
        // The key is not readable back from a container: an imported terminal has no key in state.
        // Its digest label tells whether the configured key is the one inside (then no replacement).
        if prior.ssh_private_key != planned.state.ssh_private_key {
            let same_key = match (&prior.ssh_private_key, planned.state.ssh_private_key.known(), prior.id.known()) {
                (Attr::Null, Some(key), Some(id)) => {
                    let info =
                        self.docker()?.inspect_container(id).await.map_err(docker_diag("Reading the terminal"))?;
                    info.is_some_and(|i| i.labels.get(LABEL_KEY_SHA256) == Some(&key_digest(key)))
                }
                _ => false,
            };
            if !same_key {
                planned.requires_replace.push(AttrPath::root("ssh_private_key"));
            }
        }
        Ok(planned)
    }

    async fn create(&self, planned: TerminalState, ctx: &OpContext) -> Result<TerminalState, Diagnostics> {
        let docker = self.docker()?;
        let mut settings = TerminalSettings::from_state(&planned)?;
        settings.route = resolve_gateway(docker, settings.gateway_ref.as_deref()).await?;
        let key = planned.ssh_private_key.known().cloned().ok_or_else(|| missing("ssh_private_key"))?;
        docker
            .ensure_image(&settings.image, planned.pull_image.known() == Some(&true))
            .await
            .map_err(docker_diag("Preparing the terminal image"))?;
        let image = docker.image_config(&settings.image).await.map_err(docker_diag("Preparing the terminal image"))?;

        let spec = settings.container_spec(&key_digest(&key));
        let mut rollback = Rollback::new();
        let result = async {
            let id = docker.create_container(&spec).await.map_err(docker_diag("Creating the terminal container"))?;
            let (undo_client, undo_id) = (docker.clone(), id.clone());
            rollback.push(format!("creating container {}", spec.name), async move {
                undo_client.remove_container(&undo_id).await.map(|_| ()).map_err(|e| error_chain(&e))
            });
            let key_file = UploadFile {
                path: KEY_PATH.into(),
                contents: normalized_key(&key).into_bytes(),
                mode: 0o600,
                uid: 0,
                gid: 0,
            };
            docker
                .upload_files(&id, &[key_file], image.user.is_some())
                .await
                .map_err(docker_diag("Uploading the SSH key into the terminal container"))?;
            docker.start_container(&id).await.map_err(docker_diag("Starting the terminal container"))?;
            let started = std::time::Instant::now();
            let timeout = planned.create_timeout()?;
            let info = wait_ready(docker, &id, &settings, timeout, ctx).await?;
            if let Some(route) = &settings.route {
                log::debug(&format!(
                    "{}: routed_s={:.3} (start to its URL answering through gateway `{}`)",
                    settings.name,
                    started.elapsed().as_secs_f64(),
                    route.name
                ));
            }
            Ok::<_, Diagnostics>(info)
        }
        .await;
        match result {
            Ok(info) => {
                rollback.commit();
                Ok(state_from_info(planned, &info, &settings, true))
            }
            Err(mut diags) => {
                for failure in rollback.run().await {
                    diags.push(Diagnostic::warning("Cleanup after the failed create did not finish", failure));
                }
                Err(diags)
            }
        }
    }

    async fn read(&self, current: TerminalState, _ctx: &OpContext) -> Result<Option<TerminalState>, Diagnostics> {
        let docker = self.docker()?;
        let Some(id) = current.id.known().or(current.name.known()).cloned() else { return Ok(None) };
        let Some(info) = docker.inspect_container(&id).await.map_err(docker_diag("Reading the terminal"))? else {
            return Ok(None);
        };
        let mut settings = TerminalSettings::from_state(&current)?;
        // A gateway gone since is no reason to fail the read: the terminal is just not ready.
        settings.route = resolve_gateway(docker, settings.gateway_ref.as_deref()).await.ok().flatten();
        let ready = info.running && probe_ttyd(&info, &settings).await.is_ok();
        let image_labels = image_labels(docker, &info.image).await;
        let mut state = state_from_info(current, &info, &settings, ready);
        // Drift that Terraform should see: labels and image changed out of band.
        state.labels = user_labels(&info.labels, &image_labels, state.labels.clone());
        state.image = Attr::Known(info.image.clone());
        Ok(Some(state))
    }

    async fn update(
        &self,
        prior: TerminalState,
        planned: TerminalState,
        ctx: &OpContext,
    ) -> Result<TerminalState, Diagnostics> {
        let docker = self.docker()?;
        let id = prior.id.known().cloned().ok_or_else(|| missing("id"))?;
        let mut settings = TerminalSettings::from_state(&planned)?;
        settings.route = resolve_gateway(docker, settings.gateway_ref.as_deref()).await?;
        if planned.running.known() == Some(&false) {
            docker.stop_container(&id, STOP_GRACE).await.map_err(docker_diag("Stopping the terminal"))?;
        } else {
            docker.start_container(&id).await.map_err(docker_diag("Starting the terminal"))?;
        }
        let info = if planned.running.known() == Some(&false) {
            docker.inspect_container(&id).await.map_err(docker_diag("Reading the terminal"))?.ok_or_else(gone)?
        } else {
            wait_ready(docker, &id, &settings, planned.create_timeout()?, ctx).await?
        };
        let ready = info.running;
        Ok(state_from_info(planned, &info, &settings, ready))
    }

    async fn delete(&self, current: TerminalState, ctx: &OpContext) -> Result<(), Diagnostics> {
        let docker = self.docker()?;
        let Some(id) = current.id.known().or(current.name.known()).cloned() else { return Ok(()) };
        let timeout = current.delete_timeout()?;
        let route = match (current.gateway.known(), current.hostname.known()) {
            (Some(gateway), Some(hostname)) => {
                resolve_gateway(docker, Some(gateway)).await.ok().flatten().map(|r| (r, hostname.clone()))
            }
            _ => None,
        };
        let work = async {
            docker.stop_container(&id, STOP_GRACE.min(timeout)).await?;
            // Stopped first, so that the gateway drops the route before the container goes: a
            // request to a removed container's address hangs until Traefik's 30 s timeout.
            if let Some((route, hostname)) = &route {
                wait_unrouted(route, hostname, UNROUTE_WAIT.min(timeout), &ctx.cancel).await;
            }
            docker.remove_container(&id).await
        };
        tokio::select! {
            result = tokio::time::timeout(timeout, work) => match result {
                Ok(done) => done.map(|_| ()).map_err(docker_diag("Deleting the terminal")),
                Err(_) => Err(Diagnostic::error("Deleting the terminal timed out", format!("container {id} after {timeout:?}")).into()),
            },
            _ = ctx.cancel.cancelled() => Err(Diagnostic::error("Deleting the terminal was cancelled", format!("container {id}")).into()),
        }
    }

    async fn import(&self, id: &str, _ctx: &OpContext) -> Result<Option<TerminalState>, Diagnostics> {
        let docker = self.docker()?;
        let Some(info) = docker.inspect_container(id).await.map_err(docker_diag("Importing the terminal"))? else {
            return Ok(None);
        };
        if info.labels.get(MANAGED_LABEL).map(String::as_str) != Some("true")
            || !info.labels.contains_key(LABEL_TERMINAL)
        {
            return Err(Diagnostic::error(
                "Not a lab terminal",
                format!("container `{id}` has no `{MANAGED_LABEL}=true` and `{LABEL_TERMINAL}` labels: it was not made by lab_terminal"),
            )
            .into());
        }
        let image_labels = image_labels(docker, &info.image).await;
        Ok(Some(state_from_container(&info, &image_labels)))
    }
}

/// Labels the container inherited from its image (not the user's). An image removed since the
/// container was made has none to report.
async fn image_labels(docker: &DockerClient, image: &str) -> BTreeMap<String, String> {
    docker.image_config(image).await.map(|c| c.labels).unwrap_or_default()
}

// --- schema ---

fn schema_block() -> Block {
    let replace = |a: Attribute| a.requires_replace();
    Block {
        description: "A browser terminal: a [ttyd](https://github.com/tsl0922/ttyd) container that runs \
                      `ssh <ssh_user>@<target_host>` for whoever opens its page. Routed by Traefik labels to \
                      `hostname`, or published on a host port. Container settings cannot change in place: \
                      changing them replaces the container."
            .into(),
        attributes: vec![
            Attribute::string("id").computed().keep_prior().description("Docker container id."),
            replace(Attribute::string("name").required().description(
                "Container name, also the Traefik router name: 1-63 characters `[a-z0-9-]`, starting with a \
                 letter or digit. Import uses it.",
            )),
            replace(Attribute::string("target_host").required().description(
                "Address of the machine to SSH into, usually `lab_vm.<name>.ip`. Reached from the container.",
            )),
            replace(
                Attribute::number("target_port")
                    .default(Value::Number(crate::protocol::Number::Int(22)))
                    .description("SSH port of the target."),
            ),
            replace(
                Attribute::string("ssh_user")
                    .default(Value::String(DEFAULT_SSH_USER.into()))
                    .description("User to log in as on the target."),
            ),
            Attribute::string("ssh_private_key").required().sensitive().description(
                "Private key (OpenSSH PEM) for `ssh_user`. Uploaded into the container as a 0600 file owned by the \
                 ttyd user before it starts; never put in environment, command line, labels or logs. Changing \
                 it replaces the container.",
            ),
            replace(Attribute::string("image").default(Value::String(DEFAULT_IMAGE.into())).description(
                "Image with `ttyd` and an `ssh` client on its `PATH`. The default upstream image needs an ssh \
                 client added: see the docs.",
            )),
            Attribute::bool("pull_image").default(Value::Bool(false)).description(
                "Pull `image` when the Docker host does not have it (otherwise a missing image is an error).",
            ),
            replace(
                Attribute::string("network")
                    .optional()
                    .description("Docker network to join (e.g. Traefik's network). Default: Docker's default bridge."),
            ),
            replace(Attribute::string("hostname").optional().description(
                "Hostname students open, usually `lab_session.<name>.hostname`. Needed with `traefik = true`.",
            )),
            replace(Attribute::string("gateway").optional().description(
                "The `lab_gateway` that routes this terminal, usually `lab_gateway.<name>.id` (a name works too). \
                 The terminal joins the gateway's network and gets a router for `hostname` on each of its \
                 entrypoints; `url` is then the student's URL, and create waits until it answers through the \
                 gateway (HTTP 200 and a websocket upgrade on `/ws`). `traefik_*` and `network` are not used.",
            )),
            replace(Attribute::bool("traefik").default(Value::Bool(true)).description(
                "Add Traefik labels routing `hostname` to ttyd (router, service, port and, with `network`, \
                 `traefik.docker.network`).",
            )),
            replace(
                Attribute::string("traefik_entrypoint")
                    .default(Value::String(DEFAULT_ENTRYPOINT.into()))
                    .description("Traefik entrypoint of the router."),
            ),
            replace(
                Attribute::bool("traefik_tls")
                    .default(Value::Bool(true))
                    .description("Serve the router over TLS: `url` is then `https://`."),
            ),
            replace(
                Attribute::string("traefik_cert_resolver")
                    .optional()
                    .description("Traefik certificate resolver for the router, e.g. `letsencrypt`."),
            ),
            replace(
                Attribute::nested(
                    "publish",
                    Nesting::Single,
                    vec![
                        Attribute::string("host_ip")
                            .optional()
                            .description("Host address to bind (default `127.0.0.1`)."),
                        Attribute::number("host_port")
                            .optional()
                            .description("Host port; unset: Docker picks a free one."),
                    ],
                )
                .optional()
                .description(
                    "Publish ttyd's port on the Docker host, e.g. `{ host_ip = \"127.0.0.1\", host_port = 8001 }`.",
                ),
            ),
            replace(
                Attribute::nested(
                    "credential",
                    Nesting::Single,
                    vec![
                        Attribute::string("username").required().description("HTTP basic-auth user name (no `:`)."),
                        Attribute::string("password").required().sensitive().description("HTTP basic-auth password."),
                    ],
                )
                .optional()
                .sensitive()
                .description(
                    "HTTP basic auth in front of the terminal (ttyd `-c`). ttyd takes it only on its command line, so \
                 it is visible to whoever can run `docker inspect` on the Docker host (root-equivalent anyway).",
                ),
            ),
            replace(
                Attribute::bool("writable")
                    .default(Value::Bool(true))
                    .description("Let the browser type into the terminal (false gives a read-only view)."),
            ),
            replace(
                Attribute::number("max_clients")
                    .optional()
                    .description("Maximum simultaneous browser connections (ttyd `-m`); unset: no limit."),
            ),
            replace(Attribute::of_type("labels", Type::Map(Box::new(Type::String))).optional().description(
                "Extra container labels, e.g. `{ \"lab.session\" = lab_session.s.id }`. Keys the provider owns \
                 (`lab.managed`, `lab.terminal`, ...) and, with `traefik`, `traefik.*` are rejected. Docker cannot \
                 change labels in place: changing them replaces the container.",
            )),
            Attribute::bool("running").default(Value::Bool(true)).description(
                "Whether the container runs. A container stopped out of band shows as a change \
                 back to true and is started in place.",
            ),
            Attribute::string("url").computed().keep_prior().description(
                "Where students open the terminal: `https://<hostname>` when routed, else `http://<host_ip>:<port>` \
                 when published, else `http://<container ip>:7681`.",
            ),
            Attribute::bool("ready").computed().description(
                "Whether ttyd answered HTTP (and, on create/start, the target's SSH port accepted a connection).",
            ),
        ],
        blocks: vec![Timeouts::block(
            "Create and start, including the wait for ttyd and the target's SSH port (default `5m`).",
            "Stop and remove (default `1m`).",
        )],
        ..Default::default()
    }
}

// --- validation ---

fn validate_config(config: &TerminalState) -> Diagnostics {
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

fn validate_private_key(key: &str) -> Result<(), String> {
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

fn validate_network(net: &str) -> Result<(), String> {
    let ok = net.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && net.len() <= 128
        && net.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok { Ok(()) } else { Err(format!("`{net}` is not a Docker network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")) }
}

/// Traefik entrypoint / resolver names go into label values: keep them to plain tokens.
fn validate_token(v: &str) -> Result<(), String> {
    let ok = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if ok { Ok(()) } else { Err(format!("`{v}`: use [A-Za-z0-9_-], at most 64 characters")) }
}

fn validate_user_label(key: &str, traefik: bool) -> Result<(), String> {
    if RESERVED_LABELS.contains(&key) {
        return Err(format!("`{key}` is set by the provider"));
    }
    if traefik && key.starts_with("traefik.") {
        return Err(format!("`{key}`: traefik.* labels are set by the provider while `traefik = true`"));
    }
    if key.is_empty() { Err("empty label key".into()) } else { Ok(()) }
}

fn port(n: i64) -> Result<u16, String> {
    u16::try_from(n).ok().filter(|p| *p != 0).ok_or_else(|| format!("{n}: must be a port between 1 and 65535"))
}

impl TerminalState {
    /// (create, delete) limits, defaults where unset.
    fn timeouts(&self) -> Result<(Duration, Duration), Diagnostics> {
        Timeouts::resolve(self.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))
    }
    fn create_timeout(&self) -> Result<Duration, Diagnostics> {
        self.timeouts().map(|(create, _)| create)
    }
    fn delete_timeout(&self) -> Result<Duration, Diagnostics> {
        self.timeouts().map(|(_, delete)| delete)
    }
}

// --- what the container looks like ---

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
    pub labels: BTreeMap<String, String>,
}

fn missing(attr: &str) -> Diagnostics {
    Diagnostic::attr_error(
        AttrPath::root(attr),
        format!("`{attr}` is not known"),
        "This is a bug in the provider's plan.",
    )
    .into()
}

impl TerminalSettings {
    pub fn from_state(s: &TerminalState) -> Result<Self, Diagnostics> {
        let string = |a: &Attr<String>, name: &str| a.known().cloned().ok_or_else(|| missing(name));
        let publish = match s.publish.known() {
            None => None,
            Some(p) => {
                let host_port = match p.host_port.known() {
                    Some(n) => Some(port(*n).map_err(|why| {
                        Diagnostic::attr_error(AttrPath::root("publish").attr("host_port"), "Invalid host_port", why)
                    })?),
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
                .map_err(|why| Diagnostic::attr_error(AttrPath::root("target_port"), "Invalid target_port", why))?,
            ssh_user: s.ssh_user.known().cloned().unwrap_or_else(|| DEFAULT_SSH_USER.into()),
            image: s.image.known().cloned().unwrap_or_else(|| DEFAULT_IMAGE.into()),
            network: s.network.known().cloned(),
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
            labels: match s.labels.known() {
                None => BTreeMap::new(),
                Some(map) => map
                    .iter()
                    .map(|(k, v)| v.known().map(|v| (k.clone(), v.clone())).ok_or_else(|| missing("labels")))
                    .collect::<Result<_, _>>()?,
            },
        })
    }

    /// ttyd's arguments, then the ssh command it runs. Every user value is one argv element
    /// (no shell), validated above; `--` keeps the host from being read as an ssh option.
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
    }

    pub fn container_spec(&self, key_sha256: &str) -> ContainerSpec {
        ContainerSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            entrypoint: Some(vec!["ttyd".into()]),
            cmd: self.command(),
            labels: self.labels(key_sha256),
            hostname: Some(self.name.clone()),
            network: self.route.as_ref().map(|r| r.network.clone()).or_else(|| self.network.clone()),
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
        let ip = match p.host_ip.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            Ok(ip) => ip,
            Err(_) => IpAddr::from([127, 0, 0, 1]),
        };
        return Some((ip, p.host_port.unwrap_or(TTYD_PORT)));
    }
    info.networks.values().flatten().next().map(|ip| (*ip, TTYD_PORT))
}

fn key_digest(key: &str) -> String {
    let digest = Sha256::digest(normalized_key(key).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// OpenSSH refuses keys without a final newline.
fn normalized_key(key: &str) -> String {
    format!("{}\n", key.trim())
}

// --- readiness ---

#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("the container has no address reachable from here (no published port, no network address)")]
    NoAddress,
    #[error("ttyd at {0} did not answer: {1}")]
    Http(String, String),
    #[error("ttyd at {0} answered HTTP {1}")]
    Status(String, u16),
    #[error("SSH port {0} refused or timed out: {1}")]
    Ssh(String, String),
    #[error("the student's URL is not served yet: {0}")]
    Routed(crate::resources::gateway::route::RouteProbeError),
}

/// The route of the gateway `reference` names (None without one); an error when it is missing
/// or is not a lab_gateway.
async fn resolve_gateway(docker: &DockerClient, reference: Option<&str>) -> Result<Option<GatewayRoute>, Diagnostics> {
    let Some(reference) = reference else { return Ok(None) };
    let not_usable = |why: String| -> Diagnostics {
        Diagnostic::attr_error(AttrPath::root("gateway"), "The terminal's gateway cannot be used", why).into()
    };
    let info = docker
        .inspect_container(reference)
        .await
        .map_err(docker_diag("Reading the terminal's gateway"))?
        .ok_or_else(|| not_usable(format!("no container `{reference}` on {}", docker.host())))?;
    if !is_gateway(&info) {
        return Err(not_usable(format!("container `{reference}` was not made by lab_gateway")));
    }
    GatewayRoute::from_container(&info).map(Some).map_err(not_usable)
}

/// Wait (at most `limit`) until the gateway no longer serves `hostname`: anything but 200 and
/// 502/504 (the router still pointing at the stopped container) counts as stopped.
async fn wait_unrouted(
    route: &GatewayRoute,
    hostname: &str,
    limit: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) {
    let what = format!("{hostname} to stop serving through gateway `{}`", route.name);
    let _ = wait_until(&what, limit, PROBE_INTERVAL, cancel, || async {
        match http_status(route.probe_address, hostname, None).await {
            Ok(200 | 401 | 502 | 504) => Ok(None),
            Ok(_) => Ok(Some(())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
}

/// ttyd answers `GET /` with 200 (with the credential when one is set).
async fn probe_ttyd(info: &ContainerInfo, settings: &TerminalSettings) -> Result<(), ProbeError> {
    let credential = settings.credential.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    if let (Some(route), Some(host)) = (&settings.route, &settings.hostname) {
        return terminal_routed(route.probe_address, host, credential).await.map_err(ProbeError::Routed);
    }
    let (ip, port) = ttyd_address(info).ok_or(ProbeError::NoAddress)?;
    let url = match ip {
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}/"),
        IpAddr::V4(v4) => format!("http://{v4}:{port}/"),
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| ProbeError::Http(url.clone(), e.to_string()))?;
    let mut request = client.get(&url);
    if let Some((user, password)) = &settings.credential {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.map_err(|e| ProbeError::Http(url.clone(), e.to_string()))?;
    match response.status().as_u16() {
        200 => Ok(()),
        code => Err(ProbeError::Status(url, code)),
    }
}

/// The target's SSH port accepts a TCP connection (from where the provider runs).
async fn probe_ssh(settings: &TerminalSettings) -> Result<(), ProbeError> {
    let addr = format!("{}:{}", settings.target_host, settings.target_port);
    let connect = tokio::net::TcpStream::connect((settings.target_host.as_str(), settings.target_port));
    match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ProbeError::Ssh(addr, e.to_string())),
        Err(_) => Err(ProbeError::Ssh(addr, "timed out".into())),
    }
}

/// Wait until the container runs, ttyd answers and the target's SSH port is open. A container
/// that exits fails at once with its exit code instead of waiting out the timeout.
async fn wait_ready(
    docker: &DockerClient,
    id: &str,
    settings: &TerminalSettings,
    timeout: Duration,
    ctx: &OpContext,
) -> Result<ContainerInfo, Diagnostics> {
    let what = format!(
        "terminal `{}` (ttyd HTTP and SSH to {}:{})",
        settings.name, settings.target_host, settings.target_port
    );
    let outcome = wait_until(&what, timeout, PROBE_INTERVAL, &ctx.cancel, || async {
        let info = match docker.inspect_container(id).await {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(Some(Err(format!("container {id} disappeared while starting")))),
            Err(e) => return Err(error_chain(&e)),
        };
        if !info.running {
            return Ok(Some(Err(format!(
                "container {} stopped ({}, exit code {})",
                info.name,
                info.status,
                info.exit_code.map_or("unknown".into(), |c| c.to_string())
            ))));
        }
        probe_ttyd(&info, settings).await.map_err(|e| e.to_string())?;
        probe_ssh(settings).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(Some(Ok(info)))
    })
    .await;
    match outcome {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(why)) => Err(Diagnostic::error("The terminal container did not stay up", why).into()),
        Err(e @ WaitError::Timeout { .. }) => {
            Err(Diagnostic::from_error("The terminal did not become ready", &e).into())
        }
        Err(e @ WaitError::Cancelled { .. }) => Err(Diagnostic::from_error("Stopped by Terraform", &e).into()),
    }
}

// --- state <-> container ---

fn state_from_info(
    mut state: TerminalState,
    info: &ContainerInfo,
    settings: &TerminalSettings,
    ready: bool,
) -> TerminalState {
    state.id = Attr::Known(info.id.clone());
    state.running = Attr::Known(info.running);
    state.ready = Attr::Known(ready);
    // A stopped container has no address: its URL is where it will be once started again.
    if let Some(url) = settings.url(info) {
        state.url = Attr::Known(url);
    } else if state.url.known().is_none() {
        state.url = Attr::Null;
    }
    state
}

/// Labels the user set: everything except the provider's (and Traefik's when it manages them) and
/// those inherited unchanged from the image that the user did not set. Keeps `Null` when the user
/// set none and the container has none.
fn user_labels(
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
fn state_from_container(info: &ContainerInfo, image_labels: &BTreeMap<String, String>) -> TerminalState {
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
        target_host: ssh_args.last().cloned().into(),
        target_port: ssh_after("-p").and_then(|p| p.parse().ok()).into(),
        ssh_user: ssh_after("-l").into(),
        ssh_private_key: Attr::Null,
        image: Attr::Known(info.image.clone()),
        pull_image: Attr::Known(false),
        network: label(LABEL_NETWORK).into(),
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
        max_clients: arg_after("--max-clients").and_then(|n| n.parse().ok()).into(),
        labels: settings_labels,
        running: Attr::Known(info.running),
        timeouts: None,
        url: Attr::Null,
        ready: Attr::Known(info.running),
    };
    if let Ok(settings) = TerminalSettings::from_state(&state) {
        state.url = settings.url(info).map_or(Attr::Null, Attr::Known);
    }
    state
}

fn gone() -> Diagnostics {
    Diagnostic::error(
        "The terminal container is gone",
        "It was removed while being updated; apply again to re-create it.",
    )
    .into()
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn docker_diag(what: &'static str) -> impl Fn(DockerError) -> Diagnostics {
    move |e| Diagnostic::from_error(what, &e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----";

    fn config() -> TerminalState {
        TerminalState {
            name: Attr::Known("lab-abc123".into()),
            target_host: Attr::Known("10.10.10.20".into()),
            target_port: Attr::Known(22),
            ssh_user: Attr::Known("student".into()),
            ssh_private_key: Attr::Known(KEY.into()),
            image: Attr::Known("lab/ttyd-ssh:1".into()),
            hostname: Attr::Known("lab-abc123.lab.example.edu".into()),
            network: Attr::Known("traefik".into()),
            traefik: Attr::Known(true),
            traefik_entrypoint: Attr::Known("websecure".into()),
            traefik_tls: Attr::Known(true),
            writable: Attr::Known(true),
            labels: Attr::Known(BTreeMap::from([("lab.session".into(), Attr::Known("abc123".into()))])),
            ..Default::default()
        }
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
        assert_eq!(state.ssh_private_key, Attr::Null);
        assert_eq!(state.url, Attr::Known("https://lab-abc123.lab.example.edu".into()));
    }

    #[tokio::test]
    async fn plan_replaces_on_new_key_and_unknowns_a_floating_url() {
        let res = TerminalResource::new(ProviderHandle::default());
        let mut prior = config();
        prior.id = Attr::Known("c0ffee".into());
        prior.url = Attr::Known("http://127.0.0.1:32768".into());
        prior.running = Attr::Known(false);
        prior.publish = Attr::Known(Publish { host_ip: Attr::Known("127.0.0.1".into()), host_port: Attr::Null });
        let mut next = prior.clone();
        next.running = Attr::Known(true);
        let req = PlanRequest { prior: Some(prior.clone()), config: next.clone(), planned: next.clone() };
        let planned = res.plan(req).await.unwrap();
        assert!(planned.requires_replace.is_empty());
        assert_eq!(planned.state.url, Attr::Unknown);

        next.ssh_private_key = Attr::Known(KEY.replace("AAAA", "BBBB"));
        let req = PlanRequest { prior: Some(prior), config: next.clone(), planned: next };
        let planned = res.plan(req).await.unwrap();
        assert_eq!(planned.requires_replace, vec![AttrPath::root("ssh_private_key")]);
    }

    #[test]
    fn state_round_trips_through_the_schema_type() {
        use crate::protocol::serde_bridge::{from_value, to_value};
        let ty = schema_block().value_type();
        let mut state = config();
        state.id = Attr::Unknown;
        state.target_port = Attr::Known(2222);
        state.publish = Attr::Known(Publish { host_ip: Attr::Known("127.0.0.1".into()), host_port: Attr::Null });
        state.credential =
            Attr::Known(Credential { username: Attr::Known("ann".into()), password: Attr::Known("pw".into()) });
        state.timeouts = Some(Timeouts { create: Attr::Known("10m".into()), delete: Attr::Null });
        let value = to_value(&state, &ty).unwrap();
        let back: TerminalState = from_value(&value).unwrap();
        assert!(back == state, "round trip changed the state: {back:?}");
    }

    #[test]
    fn state_debug_hides_secrets() {
        assert!(!format!("{:?}", config()).contains("AAAA"));
    }
}
