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
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backends::docker::{ContainerInfo, DockerClient, UploadFile};
use crate::lifecycle::{MANAGED_LABEL, Rollback, Timeouts, host_and_id};
use crate::protocol::diag::error_chain;
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, DiagResultExt, Diagnostic, Diagnostics, Nesting, OpContext, PlanRequest, Planned,
    Resource, Schema, Type, log,
};
use crate::resources::docker_client::{self, DockerConnection};
use crate::resources::gateway::route::LABEL_GATEWAY;
use crate::settings::ProviderHandle;
use crate::validate::missing;

mod container;
mod ready;
mod validate;
mod watch;

pub use container::{TMUX_SESSION, TMUX_SOCKET, TerminalSettings, ttyd_address};
use container::{state_from_container, user_labels};
pub use ready::{Activity, activity_of_hostname, read_activity};
use ready::{check_persistent_image, probe_ttyd, resolve_gateway, wait_ready, wait_unrouted};
use validate::validate_config;

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
/// The `lab_network` value as configured, for import.
const LABEL_LAB_NETWORK: &str = "lab.lab-network";
const LABEL_TRAEFIK: &str = "lab.traefik";
/// SHA-256 of the private key: lets an imported terminal match its configured key without
/// replacement. A digest of a random key reveals nothing about it.
const LABEL_KEY_SHA256: &str = "lab.ssh_key_sha256";
/// The `gateway` value as configured (id or name of the lab_gateway), for import.
const LABEL_GATEWAY_REF: &str = "lab.gateway.ref";
/// `true` on a terminal with the instructor's watch view (the class page links to it).
const LABEL_WATCH: &str = "lab.watch";
const RESERVED_LABELS: [&str; 11] = [
    MANAGED_LABEL,
    LABEL_TERMINAL,
    LABEL_TARGET,
    LABEL_HOSTNAME,
    LABEL_NETWORK,
    LABEL_LAB_NETWORK,
    LABEL_TRAEFIK,
    LABEL_KEY_SHA256,
    LABEL_GATEWAY,
    LABEL_GATEWAY_REF,
    LABEL_WATCH,
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
    pub host: Attr<String>,
    pub target_host: Attr<String>,
    pub target_port: Attr<i64>,
    pub ssh_user: Attr<String>,
    pub ssh_private_key: Attr<String>,
    pub image: Attr<String>,
    pub pull_image: Attr<bool>,
    pub network: Attr<String>,
    pub lab_network: Attr<String>,
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
    pub persistent: Attr<bool>,
    pub watch_takeover: Attr<bool>,
    /// Values may be unknown at plan time (e.g. another resource's id).
    pub labels: Attr<BTreeMap<String, Attr<String>>>,
    pub running: Attr<bool>,
    pub timeouts: Option<Timeouts>,
    pub url: Attr<String>,
    pub watch_url: Attr<String>,
    pub ready: Attr<bool>,
    pub last_activity_at: Attr<String>,
    pub clients: Attr<i64>,
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

    /// The Docker client of the terminal's `host`.
    fn docker(&self, host: &Attr<String>) -> Result<&DockerClient, Diagnostics> {
        self.docker.get(host, TYPE_NAME)
    }
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
                 letter or digit. Import uses it (`<host>/<name>` on a named host).",
            )),
            replace(Attribute::string("host").optional().description(
                "The provider's `host \"<name>\"` block whose Docker daemon runs the container, usually the \
                 host of the VM it reaches and of its `gateway`; unset: the provider's own `docker_host`. A name \
                 without a block is a plan-time error.",
            )),
            replace(Attribute::string("target_host").required().description(
                "Address of the machine to SSH into, usually `lab_vm.<name>.ip`. Reached from the container.",
            )),
            replace(Attribute::number("target_port").default_int(22).description("SSH port of the target.")),
            replace(
                Attribute::string("ssh_user")
                    .default_str(DEFAULT_SSH_USER)
                    .description("User to log in as on the target."),
            ),
            Attribute::string("ssh_private_key").required().sensitive().description(
                "Private key (OpenSSH PEM) for `ssh_user`. Uploaded into the container as a 0600 file owned by the \
                 ttyd user before it starts; never put in environment, command line, labels or logs. Changing \
                 it replaces the container.",
            ),
            replace(Attribute::string("image").default_str(DEFAULT_IMAGE).description(
                "Image with `ttyd` and an `ssh` client on its `PATH`. The default upstream image needs an ssh \
                 client added: see the docs.",
            )),
            Attribute::bool("pull_image").default_bool(false).description(
                "Pull `image` when the Docker host does not have it (otherwise a missing image is an error).",
            ),
            replace(
                Attribute::string("network")
                    .optional()
                    .description("Docker network to join (e.g. Traefik's network). Default: Docker's default bridge."),
            ),
            replace(Attribute::string("lab_network").optional().description(
                "Docker network of the student's `lab_network` (`lab_network.<name>.docker_network`), joined \
                 besides the gateway's: the terminal reaches that lab's VMs over their own bridge, and no other \
                 lab's (see ARCHITECTURE.md, \"Lab networks\").",
            )),
            replace(Attribute::string("hostname").optional().description(
                "Hostname students open, usually `lab_session.<name>.hostname`. Needed with `traefik = true`.",
            )),
            replace(Attribute::string("gateway").optional().description(
                "The `lab_gateway` that routes this terminal, usually `lab_gateway.<name>.id` (a name works too). \
                 The terminal joins the gateway's network and gets a router for `hostname` on each of its \
                 entrypoints; `url` is then the student's URL, and create waits until it answers through the \
                 gateway (HTTP 200 and a websocket upgrade on `/ws`). `traefik_*` and `network` are not used.",
            )),
            replace(Attribute::bool("traefik").default_bool(true).description(
                "Add Traefik labels routing `hostname` to ttyd (router, service, port and, with `network`, \
                 `traefik.docker.network`).",
            )),
            replace(
                Attribute::string("traefik_entrypoint")
                    .default_str(DEFAULT_ENTRYPOINT)
                    .description("Traefik entrypoint of the router."),
            ),
            replace(
                Attribute::bool("traefik_tls")
                    .default_bool(true)
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
                    .default_bool(true)
                    .description("Let the browser type into the terminal (false gives a read-only view)."),
            ),
            replace(
                Attribute::number("max_clients")
                    .optional()
                    .description("Maximum simultaneous browser connections (ttyd `-m`); unset: no limit."),
            ),
            replace(Attribute::bool("persistent").default_bool(true).description(
                "Keep the student's terminal in a tmux session inside the container that outlives the browser: \
                 opening the URL again, or in a second tab, shows the same screen with its running jobs and \
                 scrollback, and ssh reconnects (after a short backoff, with a message) when its connection \
                 ends. Needs `tmux`, `sh`, `sleep` and `date` in `image` (checked at create); the upstream \
                 `tsl0922/ttyd` image has no tmux and is refused at plan. `false`: every connection is a fresh \
                 ssh login, and what ran in it ends when the page closes.",
            )),
            replace(Attribute::bool("watch_takeover").default_bool(false).description(
                "With a `gateway` that has an `instructor` (and `persistent`), the terminal also serves the \
                 instructor's live view of the student's session at `watch_url`, behind the instructor's \
                 credential: read-only by default; `true` lets the instructor type into it (take-over).",
            )),
            replace(Attribute::of_type("labels", Type::Map(Box::new(Type::String))).optional().description(
                "Extra container labels, e.g. `{ \"lab.session\" = lab_session.s.id }`. Keys the provider owns \
                 (`lab.managed`, `lab.terminal`, ...) and, with `traefik`, `traefik.*` are rejected. Docker cannot \
                 change labels in place: changing them replaces the container.",
            )),
            Attribute::bool("running").default_bool(true).description(
                "Whether the container runs. A container stopped out of band shows as a change \
                 back to true and is started in place; one that was created but never started is replaced.",
            ),
            Attribute::string("url").computed().keep_prior().description(
                "Where students open the terminal: `https://<hostname>` when routed, else `http://<host_ip>:<port>` \
                 when published, else `http://<container ip>:7681`.",
            ),
            Attribute::string("watch_url").computed().keep_prior().description(
                "The instructor's live view of this session, `<url>/watch/` (behind the gateway's `instructor` \
                 credential); null without one, or when not `persistent`.",
            ),
            Attribute::bool("ready").computed().description(
                "Whether ttyd answered HTTP (and, on create/start, the target's SSH port accepted a connection).",
            ),
            Attribute::string("last_activity_at").computed().description(
                "When the student last typed into the terminal (RFC 3339, UTC), read from its tmux session on \
                 every refresh; null before anyone opened it since the container started, and without \
                 `persistent`. Output alone (a running job) is not activity.",
            ),
            Attribute::number("clients").computed().description(
                "Browsers connected to the terminal's session right now, read on every refresh (0 when the \
                 container is stopped); null without `persistent`.",
            ),
        ],
        blocks: vec![Timeouts::block(
            "Create and start, including the wait for ttyd and the target's SSH port (default `5m`).",
            "Stop and remove (default `1m`).",
        )],
        ..Default::default()
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
        self.docker.check_host(&planned.state.host)?;
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
        // Created but never started (a create cut short): its key may be missing, so starting
        // it in place would not do.
        if prior.running.known() == Some(&false)
            && planned.state.running.known() == Some(&true)
            && let Some(id) = prior.id.known()
            && self
                .docker(&prior.host)?
                .inspect_container(id)
                .await
                .or_diag("Reading the terminal")?
                .is_some_and(|i| i.never_started())
        {
            planned.requires_replace.push(AttrPath::root("running"));
        }
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
                    let info = self.docker(&prior.host)?.inspect_container(id).await.or_diag("Reading the terminal")?;
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
        let docker = self.docker(&planned.host)?;
        let mut settings = TerminalSettings::from_state(&planned)?;
        settings.route = resolve_gateway(docker, settings.gateway_ref.as_deref()).await?;
        let key = planned.ssh_private_key.known().cloned().ok_or_else(|| missing(AttrPath::root("ssh_private_key")))?;
        docker
            .ensure_image(&settings.image, planned.pull_image.known() == Some(&true))
            .await
            .or_diag("Preparing the terminal image")?;
        let image = docker.image_config(&settings.image).await.or_diag("Preparing the terminal image")?;

        let spec = settings.container_spec(&key_digest(&key));
        let mut rollback = Rollback::new();
        let result = async {
            let kind = (LABEL_TERMINAL, settings.name.as_str());
            let (id, adopted) = docker_client::create_or_adopt(
                docker,
                planned.host.known().map(String::as_str),
                &spec,
                &image.labels,
                kind,
                TYPE_NAME,
                &mut rollback,
            )
            .await?;
            // An adopted container runs, so its key (same digest label) was uploaded before its start.
            if !adopted {
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
                    .or_diag("Uploading the SSH key into the terminal container")?;
                docker.start_container(&id).await.or_diag("Starting the terminal container")?;
            }
            let timeout = planned.create_timeout()?;
            if settings.persistent {
                check_persistent_image(docker, &id, &settings.image, timeout, &ctx.cancel).await?;
            }
            let started = std::time::Instant::now();
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
        let info = rollback.finish(result).await?;
        let state = state_from_info(planned, &info, &settings, true);
        Ok(with_activity(docker, state, &info, &settings).await)
    }

    async fn read(&self, current: TerminalState, _ctx: &OpContext) -> Result<Option<TerminalState>, Diagnostics> {
        let docker = self.docker(&current.host)?;
        let Some(id) = current.id.known().or(current.name.known()).cloned() else { return Ok(None) };
        let Some(info) = docker.inspect_container(&id).await.or_diag("Reading the terminal")? else {
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
        Ok(Some(with_activity(docker, state, &info, &settings).await))
    }

    async fn update(
        &self,
        prior: TerminalState,
        planned: TerminalState,
        ctx: &OpContext,
    ) -> Result<TerminalState, Diagnostics> {
        let docker = self.docker(&planned.host)?;
        let id = prior.id.known().cloned().ok_or_else(|| missing(AttrPath::root("id")))?;
        let mut settings = TerminalSettings::from_state(&planned)?;
        settings.route = resolve_gateway(docker, settings.gateway_ref.as_deref()).await?;
        if planned.running.known() == Some(&false) {
            docker.stop_container(&id, STOP_GRACE).await.or_diag("Stopping the terminal")?;
        } else {
            docker.start_container(&id).await.or_diag("Starting the terminal")?;
        }
        let info = if planned.running.known() == Some(&false) {
            docker.inspect_container(&id).await.or_diag("Reading the terminal")?.ok_or_else(gone)?
        } else {
            wait_ready(docker, &id, &settings, planned.create_timeout()?, ctx).await?
        };
        let ready = info.running;
        let state = state_from_info(planned, &info, &settings, ready);
        Ok(with_activity(docker, state, &info, &settings).await)
    }

    async fn delete(&self, current: TerminalState, ctx: &OpContext) -> Result<(), Diagnostics> {
        let docker = self.docker(&current.host)?;
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
        docker_client::delete_within("terminal", &id, timeout, ctx, work, |e| {
            Diagnostic::from_error("Deleting the terminal", &e).into()
        })
        .await
    }

    async fn import(&self, id: &str, _ctx: &OpContext) -> Result<Option<TerminalState>, Diagnostics> {
        let (host, id) = host_and_id(id);
        let host = Attr::from(host.map(str::to_string));
        let docker = self.docker(&host)?;
        let Some(info) = docker.inspect_container(id).await.or_diag("Importing the terminal")? else {
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
        Ok(Some(TerminalState { host, ..state_from_container(&info, &image_labels) }))
    }
}

/// Labels the container inherited from its image (not the user's). An image removed since the
/// container was made has none to report.
async fn image_labels(docker: &DockerClient, image: &str) -> BTreeMap<String, String> {
    docker.image_config(image).await.map(|c| c.labels).unwrap_or_default()
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

fn key_digest(key: &str) -> String {
    let digest = Sha256::digest(normalized_key(key).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// OpenSSH refuses keys without a final newline.
fn normalized_key(key: &str) -> String {
    format!("{}\n", key.trim())
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
    state.watch_url = watch_url(info, &state.url);
    state
}

/// `<url>/watch/` when the container serves the watch view (its label says so).
fn watch_url(info: &ContainerInfo, url: &Attr<String>) -> Attr<String> {
    match (info.labels.get(LABEL_WATCH).map(String::as_str), url) {
        (Some("true"), Attr::Known(url)) => Attr::Known(watch::url(url)),
        _ => Attr::Null,
    }
}

/// `last_activity_at` and `clients` from the session. A stopped container has no session (its
/// last activity stays what was last seen); an answer that cannot be had is a warning in the log,
/// not a failed refresh.
async fn with_activity(
    docker: &DockerClient,
    mut state: TerminalState,
    info: &ContainerInfo,
    settings: &TerminalSettings,
) -> TerminalState {
    let seen = state.last_activity_at.known().cloned();
    let (last, clients) = if !settings.persistent {
        (None, None)
    } else if !info.running {
        (seen, Some(0))
    } else {
        match read_activity(docker, &info.id).await {
            Ok(a) => (a.last_activity_at.or(seen), Some(a.clients)),
            Err(e) => {
                log::warn(&format!("{}: reading its session's activity: {}", settings.name, error_chain(&e)));
                (seen, None)
            }
        }
    };
    state.last_activity_at = last.map_or(Attr::Null, Attr::Known);
    state.clients = clients.map_or(Attr::Null, Attr::Known);
    state
}

fn gone() -> Diagnostics {
    Diagnostic::error(
        "The terminal container is gone",
        "It was removed while being updated; apply again to re-create it.",
    )
    .into()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(super) const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----";

    pub(super) fn config() -> TerminalState {
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
            persistent: Attr::Known(true),
            labels: Attr::Known(BTreeMap::from([("lab.session".into(), Attr::Known("abc123".into()))])),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn plan_replaces_on_new_key_and_unknowns_a_floating_url() {
        let res = TerminalResource::new(ProviderHandle::default());
        let mut prior = config();
        prior.id = Attr::Known("c0ffee".into());
        prior.url = Attr::Known("http://127.0.0.1:32768".into());
        // Stopping (a start of a stopped one also asks Docker whether it was ever started).
        prior.running = Attr::Known(true);
        prior.publish = Attr::Known(Publish { host_ip: Attr::Known("127.0.0.1".into()), host_port: Attr::Null });
        let mut next = prior.clone();
        next.running = Attr::Known(false);
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
