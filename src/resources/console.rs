//! `lab_console`: a VM's console in the browser, over the libvirt socket bind-mounted from the
//! Docker host into a container that its gateway routes. Two types:
//! - `serial`, the rescue path when SSH is broken: ttyd running `virsh console <domain>`, routed
//!   under `<hostname>/console/`; ttyd serves only under `/console/<token>/`.
//! - `vnc`, the graphical console: noVNC and websockify (Debian's packages) under
//!   `<hostname>/vnc/`, serving only under `/vnc/<token>/`; its bridge (`console/vnc_bridge.py`)
//!   reaches the VM's display through libvirt (`virDomainOpenGraphicsFD`), so qemu's VNC listener
//!   stays on the hypervisor's loopback and the container needs no address there.
//!
//! The token is random, made at create: whoever lacks it gets 404. It is uploaded into the
//! container as a file before it starts and read there, so it is in no label, environment
//! variable, `docker inspect` command line or log (ttyd logs errors only; the bridge writes its
//! log lines with the token replaced). In state it is sensitive, and so is `url`.
//!
//! Container config is immutable in Docker: every argument but `timeouts` replaces the console.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::backends::docker::{BindMount, ContainerInfo, ContainerSpec, DockerClient, UploadFile};
use crate::lifecycle::{MANAGED_LABEL, Rollback, Timeouts};
use crate::protocol::diag::error_chain;
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, DiagResultExt, Diagnostic, Diagnostics, OpContext, PlanRequest, Planned,
    Resource, Schema, log,
};
use crate::resources::docker_client::{self, DockerConnection, Poll};
use crate::resources::gateway::route::{
    ENTRYPOINT_HTTP, ENTRYPOINT_HTTPS, GatewayRoute, LABEL_GATEWAY, http_status_at,
};
use crate::settings::ProviderHandle;
use crate::validate::{self as rules, missing};

const TYPE_NAME: &str = "lab_console";
/// Where the token file lands in the container, and where libvirt's socket is mounted.
const TOKEN_PATH: &str = "/lab/console/token";
const SOCKET_IN_CONTAINER: &str = "/run/libvirt/libvirt-sock";
/// The graphical console's bridge, uploaded beside the token (its contract: the token file, the
/// socket and the port above and in `ConsoleKind`).
const VNC_BRIDGE_PATH: &str = "/lab/console/vnc_bridge.py";
const VNC_BRIDGE: &str = include_str!("console/vnc_bridge.py");
const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// libvirt's system socket when the URI names none (`qemu:///system`).
const SYSTEM_SOCKET: &str = "/var/run/libvirt/libvirt-sock";

// Labels the provider owns on every console container.
const LABEL_CONSOLE: &str = "lab.console";
const LABEL_DOMAIN: &str = "lab.domain";
const LABEL_HOSTNAME: &str = "lab.hostname";

/// What `type` selects: the program in the container, its port, its path and its default image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsoleKind {
    Serial,
    Vnc,
}

impl ConsoleKind {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "serial" => Some(ConsoleKind::Serial),
            "vnc" => Some(ConsoleKind::Vnc),
            _ => None,
        }
    }

    /// The routes' path prefix; the container itself serves under `<prefix><token>/` only.
    fn path_prefix(self) -> &'static str {
        match self {
            ConsoleKind::Serial => "/console/",
            ConsoleKind::Vnc => "/vnc/",
        }
    }

    fn default_image(self) -> &'static str {
        match self {
            ConsoleKind::Serial => "lab/ttyd-virsh:1",
            ConsoleKind::Vnc => "lab/novnc:1",
        }
    }

    fn port(self) -> u16 {
        match self {
            ConsoleKind::Serial => 7681,
            ConsoleKind::Vnc => 6080,
        }
    }

    /// A path that answers 200 once the console serves (noVNC's page, not the redirect to it).
    fn probe_path(self, token: &str) -> String {
        match self {
            ConsoleKind::Serial => format!("/console/{token}/"),
            ConsoleKind::Vnc => format!("/vnc/{token}/vnc.html"),
        }
    }

    fn what(self) -> &'static str {
        match self {
            ConsoleKind::Serial => "console",
            ConsoleKind::Vnc => "graphical console",
        }
    }
}

/// The kind a state names (validated at plan time; the serial console when unset).
fn kind_of(c: &ConsoleState) -> Result<ConsoleKind, Diagnostics> {
    match c.kind.known() {
        None => Ok(ConsoleKind::Serial),
        Some(k) => ConsoleKind::parse(k).ok_or_else(|| missing(AttrPath::root("type")).into()),
    }
}

/// ttyd with errors-only logging under the secret base path, running virsh's console of the domain
/// (`$1`, one argv word: no shell parsing of it). `--force`: a console left open by an earlier
/// browser tab is taken over rather than refused.
const START_SCRIPT: &str = "exec ttyd --port 7681 --writable --debug 3 --base-path \"/console/$(cat /lab/console/token)\" \
     virsh -c 'qemu+unix:///system?socket=/run/libvirt/libvirt-sock' console --force \"$1\"";

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsoleState {
    pub id: Attr<String>,
    pub name: Attr<String>,
    pub domain: Attr<String>,
    pub gateway: Attr<String>,
    pub hostname: Attr<String>,
    pub host: Attr<String>,
    #[serde(rename = "type")]
    pub kind: Attr<String>,
    pub image: Attr<String>,
    pub libvirt_socket: Attr<String>,
    pub token: Attr<String>,
    pub url: Attr<String>,
    pub ready: Attr<bool>,
    pub timeouts: Option<Timeouts>,
}

// The token (and the URL that carries it) never reach logs, not even through `{:?}`.
impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("domain", &self.domain)
            .field("hostname", &self.hostname)
            .field("host", &self.host)
            .field("type", &self.kind)
            .field("token", &"<sensitive>")
            .finish_non_exhaustive()
    }
}

pub struct ConsoleResource {
    docker: DockerConnection,
    provider: ProviderHandle,
}

impl ConsoleResource {
    pub fn new(provider: ProviderHandle) -> Self {
        ConsoleResource { docker: DockerConnection::new(provider.clone()), provider }
    }

    /// The Docker client of the console's `host` (the VM's host: the container mounts its
    /// libvirt socket).
    fn docker(&self, host: &Attr<String>) -> Result<&DockerClient, Diagnostics> {
        self.docker.get(host, TYPE_NAME)
    }

    /// A graphical console needs a VNC display on its domain: said at create, on `domain`, rather
    /// than by a noVNC page that never connects.
    async fn check_display(&self, host: &Attr<String>, domain: &str) -> Result<(), Diagnostics> {
        let libvirt = self.provider.libvirt_on(host.known().map(String::as_str), TYPE_NAME).await?;
        let found = libvirt.lookup(domain).await.or_diag("Reading the console's domain")?;
        let why = match found {
            None => format!("libvirt has no domain `{domain}`."),
            Some(vm) if vm.summary.graphics.as_ref().is_some_and(|(kind, _)| kind == "vnc") => return Ok(()),
            Some(_) => format!("`{domain}` has no VNC display: set `graphics = true` on its `lab_vm`."),
        };
        Err(Diagnostic::attr_error(AttrPath::root("domain"), "The graphical console has no display to show", why)
            .into())
    }
}

fn schema_block() -> Block {
    let replace = |a: Attribute| a.requires_replace();
    Block {
        description: "A VM's console in the browser, routed by a `lab_gateway` under the VM's hostname. `type = \
                      \"serial\"` (the default) is the rescue console for when SSH is broken: a ttyd container \
                      running `virsh console <domain>` over the libvirt socket, at `<hostname>/console/<token>/`. \
                      `type = \"vnc\"` is the graphical console: noVNC and websockify at `<hostname>/vnc/<token>/`, \
                      reaching the VM's display (`lab_vm.graphics = true`) through libvirt, so VNC itself keeps \
                      listening only on the hypervisor's loopback. Only the path with the random `token` serves \
                      either. Every argument but `timeouts` replaces the console."
            .into(),
        attributes: vec![
            Attribute::string("id").computed().keep_prior().description("Docker container id."),
            replace(
                Attribute::string("name")
                    .required()
                    .description("Container name, also the Traefik router name: 1-63 characters `[a-z0-9-]`."),
            ),
            replace(
                Attribute::string("domain")
                    .required()
                    .description("The libvirt domain whose console this is, usually `lab_vm.<name>.name`."),
            ),
            replace(Attribute::string("gateway").required().description(
                "The `lab_gateway` that routes the console, usually `lab_gateway.<name>.id`: the console joins its \
                 network and gets a router for `<hostname>` and the path `/console/` (`vnc`: `/vnc/`).",
            )),
            replace(Attribute::string("hostname").required().description(
                "Hostname the console is served under, usually `lab_session.<name>.hostname` (the student's \
                 terminal keeps `/`; the console takes `/console/` or `/vnc/`).",
            )),
            replace(Attribute::string("host").optional().description(
                "The provider's `host \"<name>\"` block of the VM: its Docker daemon runs the console, which \
                 mounts that host's libvirt socket, and the `gateway` is that host's; unset: the provider's own \
                 `docker_host` and `libvirt_uri`. A name without a block is a plan-time error.",
            )),
            replace(Attribute::string("type").default_str("serial").description(
                "`serial`: the serial console (ttyd and `virsh console`), under `/console/`. `vnc`: the graphical \
                 console (noVNC), under `/vnc/`; the domain needs a VNC display (`lab_vm.graphics = true`).",
            )),
            replace(Attribute::string("image").optional().computed().description(
                "Image of the console container. For `serial`, one with `ttyd`, `virsh` and `/bin/sh` (default \
                 `lab/ttyd-virsh:1`, which the rig builds from Debian's libvirt-clients: \
                 `acceptance-tests/rig/build-console-rootfs.sh`). For `vnc`, one with Debian's python3, \
                 websockify, python3-libvirt and novnc (default `lab/novnc:1`: \
                 `acceptance-tests/rig/build-novnc-rootfs.sh`).",
            )),
            replace(Attribute::string("libvirt_socket").optional().computed().description(
                "Path of libvirtd's read-write socket on the Docker host, mounted into the container. Default: the \
                 `libvirt_uri` (the provider's, or `host`'s) `socket=` parameter, else for a `/system` URI \
                 `/var/run/libvirt/libvirt-sock` (on that host: the console runs where libvirtd does). Whoever \
                 holds that socket controls libvirt: the container runs only ttyd and `virsh console`.",
            )),
            Attribute::string("token").computed().keep_prior().sensitive().description(
                "The secret path segment (128 random bits, hex), made at create. Never in labels, environment, \
                 command lines or logs.",
            ),
            Attribute::string("url").computed().keep_prior().sensitive().description(
                "Where to open the console: `<gateway scheme>://<hostname>[:port]/console/<token>/` (serial: press \
                 Enter for the guest's login prompt; `Ctrl-]` ends the session) or `.../vnc/<token>/` (noVNC, \
                 connecting at once).",
            ),
            Attribute::bool("ready")
                .computed()
                .description("Whether the console answered HTTP 200 through the gateway at its URL."),
        ],
        blocks: vec![Timeouts::block(
            "Create, including the wait for the URL to answer through the gateway (default `2m`).",
            "Remove (default `1m`).",
        )],
        ..Default::default()
    }
}

fn validate_config(c: &ConsoleState) -> Diagnostics {
    let mut d = Diagnostics::new();
    for (attr, value) in [("name", &c.name), ("domain", &c.domain)] {
        if let Some(v) = value.known() {
            rules::check(&mut d, AttrPath::root(attr), rules::name(v));
        }
    }
    if let Some(h) = c.hostname.known() {
        rules::check(&mut d, AttrPath::root("hostname"), rules::host(h));
    }
    if let Some(k) = c.kind.known() {
        let kind = ConsoleKind::parse(k).map(|_| ()).ok_or_else(|| format!("`{k}`: use \"serial\" or \"vnc\""));
        rules::check(&mut d, AttrPath::root("type"), kind);
    }
    if let Some(i) = c.image.known() {
        rules::check(&mut d, AttrPath::root("image"), rules::image(i));
    }
    if let Some(p) = c.libvirt_socket.known() {
        rules::check(&mut d, AttrPath::root("libvirt_socket"), rules::absolute_path(p));
    }
    if let Err(bad) = timeouts(c) {
        d.extend(bad);
    }
    d
}

fn timeouts(c: &ConsoleState) -> Result<(Duration, Duration), Diagnostics> {
    Timeouts::resolve(c.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))
}

/// The socket libvirtd listens on, on the host a libvirt URI reaches (the console runs on that
/// host's Docker): the URI's `socket=` parameter, or libvirt's system socket for a `/system` URI,
/// local (`qemu:///system`) or remote (`qemu+ssh://root@h1/system`). `None` for session URIs (set
/// `libvirt_socket`).
fn socket_of_uri(uri: &str) -> Option<String> {
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    if let Some(socket) = query.split('&').find_map(|kv| kv.strip_prefix("socket=")) {
        return Some(socket.to_string());
    }
    let path = base.split_once("://").map(|(_, rest)| rest.find('/').map_or("", |i| &rest[i..]))?;
    (base.starts_with("qemu") && path == "/system").then(|| SYSTEM_SOCKET.to_string())
}

/// A fresh token: 128 bits from the OS's CSPRNG (through rand's thread RNG, seeded from it), hex.
fn new_token() -> String {
    rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a console container is made of. Everything here is validated; the token is not in it.
struct ConsoleSpec<'a> {
    kind: ConsoleKind,
    name: &'a str,
    domain: &'a str,
    hostname: &'a str,
    image: &'a str,
    socket: &'a str,
    route: &'a GatewayRoute,
}

impl ConsoleSpec<'_> {
    fn container(&self) -> ContainerSpec {
        let mut labels = BTreeMap::from([
            (MANAGED_LABEL.to_string(), "true".to_string()),
            (LABEL_CONSOLE.to_string(), self.name.to_string()),
            (LABEL_DOMAIN.to_string(), self.domain.to_string()),
            (LABEL_HOSTNAME.to_string(), self.hostname.to_string()),
            (LABEL_GATEWAY.to_string(), self.route.name.clone()),
            ("traefik.enable".to_string(), "true".to_string()),
            ("traefik.docker.network".to_string(), self.route.network.clone()),
            (format!("traefik.http.services.{}.loadbalancer.server.port", self.name), self.kind.port().to_string()),
        ]);
        let mut router = |router: String, entrypoint: &str, tls: bool| {
            let prefix = format!("traefik.http.routers.{router}");
            // `hostname` is a validated host name: no backtick can break out of the rule. The
            // path rule is longer than the terminal's `Host(...)`, so Traefik ranks it first.
            let path = self.kind.path_prefix();
            labels.insert(format!("{prefix}.rule"), format!("Host(`{}`) && PathPrefix(`{path}`)", self.hostname));
            labels.insert(format!("{prefix}.entrypoints"), entrypoint.into());
            labels.insert(format!("{prefix}.service"), self.name.to_string());
            if tls {
                labels.insert(format!("{prefix}.tls"), "true".into());
            }
        };
        if self.route.http {
            router(self.name.to_string(), ENTRYPOINT_HTTP, false);
        }
        if self.route.https {
            router(format!("{}-tls", self.name), ENTRYPOINT_HTTPS, true);
        }
        let entrypoint = match self.kind {
            ConsoleKind::Serial => vec!["/bin/sh".into(), "-c".into(), START_SCRIPT.into(), "console".into()],
            ConsoleKind::Vnc => vec!["/usr/bin/python3".into(), VNC_BRIDGE_PATH.into()],
        };
        ContainerSpec {
            name: self.name.to_string(),
            image: self.image.to_string(),
            entrypoint: Some(entrypoint),
            cmd: vec![self.domain.to_string()],
            labels,
            network: Some(self.route.network.clone()),
            expose: vec![self.kind.port()],
            restart_unless_stopped: true,
            mounts: vec![BindMount {
                host_path: self.socket.to_string(),
                container_path: SOCKET_IN_CONTAINER.into(),
                read_only: false,
            }],
            ..Default::default()
        }
    }

    /// What is uploaded into the container before it starts: the token, and the graphical
    /// console's bridge.
    fn files(&self, token: &str) -> Vec<UploadFile> {
        let file =
            |path: &str, contents: Vec<u8>, mode: u32| UploadFile { path: path.into(), contents, mode, uid: 0, gid: 0 };
        let mut files = vec![file(TOKEN_PATH, token.as_bytes().to_vec(), 0o600)];
        if self.kind == ConsoleKind::Vnc {
            files.push(file(VNC_BRIDGE_PATH, VNC_BRIDGE.as_bytes().to_vec(), 0o644));
        }
        files
    }
}

async fn resolve_gateway(docker: &DockerClient, reference: &str) -> Result<GatewayRoute, Diagnostics> {
    let not_usable = |why: String| -> Diagnostics {
        Diagnostic::attr_error(AttrPath::root("gateway"), "The console's gateway cannot be used", why).into()
    };
    let info = docker
        .inspect_container(reference)
        .await
        .or_diag("Reading the console's gateway")?
        .ok_or_else(|| not_usable(format!("no container `{reference}` on {}", docker.host())))?;
    GatewayRoute::from_container(&info).map_err(not_usable)
}

/// The console answers 200 at its path through the gateway.
async fn probe(kind: ConsoleKind, route: &GatewayRoute, hostname: &str, token: &str) -> Result<(), String> {
    match http_status_at(route.probe_address, hostname, &kind.probe_path(token), None).await {
        Ok(200) => Ok(()),
        // The path is secret: say which route, not which path.
        Ok(status) => Err(format!("the {} route of {hostname} answered HTTP {status}", kind.what())),
        Err(e) => Err(error_chain(&e).replace(token, "<token>")),
    }
}

fn known<'a>(value: &'a Attr<String>, attr: &str) -> Result<&'a str, Diagnostics> {
    value.known().map(String::as_str).ok_or_else(|| missing(AttrPath::root(attr)).into())
}

#[async_trait]
impl Resource for ConsoleResource {
    type State = ConsoleState;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema { version: 0, block: schema_block() }
    }

    async fn validate(&self, config: &ConsoleState) -> Diagnostics {
        validate_config(config)
    }

    async fn plan(&self, req: PlanRequest<ConsoleState>) -> Result<Planned<ConsoleState>, Diagnostics> {
        let mut planned = req.planned;
        validate_config(&planned).into_result()?;
        self.docker.check_host(&planned.host)?;
        if req.config.libvirt_socket.is_null() {
            planned.libvirt_socket = match &req.prior {
                Some(prior) => prior.libvirt_socket.clone(),
                None if planned.host.is_unknown() => Attr::Unknown,
                None => {
                    let settings = self.provider.settings()?;
                    let uri = settings.require_libvirt_uri_on(planned.host.known().map(String::as_str), TYPE_NAME)?;
                    let socket = socket_of_uri(uri).ok_or_else(|| {
                        Diagnostic::attr_error(
                            AttrPath::root("libvirt_socket"),
                            "No local libvirt socket to mount",
                            format!("`libvirt_uri` {uri} names no libvirtd socket: set `libvirt_socket`."),
                        )
                    })?;
                    Attr::Known(socket)
                }
            };
        }
        if req.config.image.is_null() && planned.kind.known().is_some() {
            planned.image = Attr::Known(kind_of(&planned)?.default_image().to_string());
        }
        Ok(Planned::new(planned))
    }

    async fn create(&self, planned: ConsoleState, ctx: &OpContext) -> Result<ConsoleState, Diagnostics> {
        let docker = self.docker(&planned.host)?;
        let route = resolve_gateway(docker, known(&planned.gateway, "gateway")?).await?;
        let image = known(&planned.image, "image")?;
        let kind = kind_of(&planned)?;
        if kind == ConsoleKind::Vnc {
            self.check_display(&planned.host, known(&planned.domain, "domain")?).await?;
        }
        let spec = ConsoleSpec {
            kind,
            name: known(&planned.name, "name")?,
            domain: known(&planned.domain, "domain")?,
            hostname: known(&planned.hostname, "hostname")?,
            image,
            socket: known(&planned.libvirt_socket, "libvirt_socket")?,
            route: &route,
        };
        let container = spec.container();
        docker.ensure_image(image, false).await.or_diag("Preparing the console image")?;
        let image_config = docker.image_config(image).await.or_diag("Preparing the console image")?;
        // A container of ours under the name was left by an earlier create: its token was never
        // recorded, so it is of no use. `claim_name` refuses one that is not ours.
        if let Some(found) = docker_client::claim_name(
            docker,
            None,
            &container,
            &image_config.labels,
            (LABEL_CONSOLE, spec.name),
            TYPE_NAME,
        )
        .await?
        {
            docker.remove_container(&found.id).await.or_diag("Removing the console left by an earlier create")?;
        }
        let token = new_token();
        let (create_timeout, _) = timeouts(&planned)?;
        let mut rollback = Rollback::new();
        let result = async {
            let id = docker.create_container(&container).await.or_diag("Creating the console container")?;
            docker_client::undo_by_removing(&mut rollback, docker, &id, spec.name);
            docker
                .upload_files(&id, &spec.files(&token), image_config.user.is_some())
                .await
                .or_diag("Uploading the token into the console container")?;
            docker.start_container(&id).await.or_diag("Starting the console container")?;
            let started = std::time::Instant::now();
            let what = format!("{} `{}` answering through gateway `{}`", kind.what(), spec.name, route.name);
            let poll = Poll { timeout: create_timeout, interval: PROBE_INTERVAL };
            let info = docker_client::wait_ready(docker, &id, "console", &what, poll, ctx, |info| {
                let (route, hostname, token) = (&route, spec.hostname, token.as_str());
                async move { probe(kind, route, hostname, token).await.map(|()| info) }
            })
            .await?;
            log::debug(&format!("{}: routed_s={:.3}", spec.name, started.elapsed().as_secs_f64()));
            Ok::<ContainerInfo, Diagnostics>(info)
        }
        .await;
        let info = rollback.finish(result).await?;
        let mut state = planned.clone();
        state.id = Attr::Known(info.id);
        state.url = Attr::Known(format!("{}{}{token}/", route.url(spec.hostname), kind.path_prefix()));
        state.token = Attr::Known(token);
        state.ready = Attr::Known(true);
        Ok(state)
    }

    async fn read(&self, current: ConsoleState, _ctx: &OpContext) -> Result<Option<ConsoleState>, Diagnostics> {
        let docker = self.docker(&current.host)?;
        let Some(id) = current.id.known().or(current.name.known()).cloned() else { return Ok(None) };
        let Some(info) = docker.inspect_container(&id).await.or_diag("Reading the console")? else {
            return Ok(None);
        };
        let mut state = current;
        state.id = Attr::Known(info.id.clone());
        // A gateway gone since is no reason to fail the read: the console is just not ready.
        let kind = kind_of(&state)?;
        let ready = match (state.gateway.known(), state.hostname.known(), state.token.known()) {
            (Some(gateway), Some(hostname), Some(token)) if info.running => {
                match resolve_gateway(docker, gateway).await {
                    Ok(route) => probe(kind, &route, hostname, token).await.is_ok(),
                    Err(_) => false,
                }
            }
            _ => false,
        };
        state.ready = Attr::Known(ready);
        Ok(Some(state))
    }

    async fn update(
        &self,
        prior: ConsoleState,
        planned: ConsoleState,
        _ctx: &OpContext,
    ) -> Result<ConsoleState, Diagnostics> {
        // Only `timeouts` changes in place; everything else replaces the console.
        Ok(ConsoleState { timeouts: planned.timeouts, ..prior })
    }

    async fn delete(&self, current: ConsoleState, ctx: &OpContext) -> Result<(), Diagnostics> {
        let docker = self.docker(&current.host)?;
        let Some(id) = current.id.known().or(current.name.known()).cloned() else { return Ok(()) };
        let (_, delete_timeout) = timeouts(&current)?;
        docker_client::delete_within("console", &id, delete_timeout, ctx, docker.remove_container(&id), |e| {
            Diagnostic::from_error("Removing the console container", &e).into()
        })
        .await
    }

    async fn import(&self, _id: &str, _ctx: &OpContext) -> Result<Option<ConsoleState>, Diagnostics> {
        Err(Diagnostic::error(
            "lab_console cannot be imported",
            "Its token lives only in the state of the apply that made it (it is in no label or command line). \
             Remove the container (`docker rm -f <name>`) and apply: a new console gets a new token.",
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> GatewayRoute {
        GatewayRoute {
            name: "edge".into(),
            network: "edge".into(),
            http: true,
            https: true,
            url_scheme: "http".into(),
            url_port: 8080,
            probe_address: None,
            instructor_middleware: None,
        }
    }

    fn spec<'a>(kind: ConsoleKind, name: &'a str, route: &'a GatewayRoute) -> ConsoleSpec<'a> {
        ConsoleSpec {
            kind,
            name,
            domain: "vm-ann",
            hostname: "lab-abc.lab.localhost",
            image: kind.default_image(),
            socket: "/run/lab-rig/libvirt/libvirt-sock",
            route,
        }
    }

    #[test]
    fn the_container_routes_the_console_path_and_holds_no_token() {
        let route = route();
        let spec = spec(ConsoleKind::Serial, "console-ann", &route);
        let c = spec.container();
        assert_eq!(
            c.labels["traefik.http.routers.console-ann.rule"],
            "Host(`lab-abc.lab.localhost`) && PathPrefix(`/console/`)"
        );
        assert_eq!(c.labels["traefik.http.routers.console-ann-tls.entrypoints"], "websecure");
        assert_eq!(c.labels[LABEL_GATEWAY], "edge");
        assert_eq!(c.cmd, ["vm-ann"], "the domain is one argv word after the script");
        assert_eq!(c.mounts[0].container_path, SOCKET_IN_CONTAINER);
        assert!(START_SCRIPT.contains(TOKEN_PATH) && START_SCRIPT.contains(SOCKET_IN_CONTAINER));
        let token = new_token();
        assert_eq!(token.len(), 32);
        assert_ne!(token, new_token());
        let everything = format!("{:?}", c);
        assert!(!everything.contains(&token));
        assert_eq!(spec.files(&token).len(), 1, "a serial console gets its token only");
    }

    #[test]
    fn the_graphical_console_routes_vnc_to_its_bridge() {
        let route = route();
        let spec = spec(ConsoleKind::Vnc, "vnc-ann", &route);
        let c = spec.container();
        assert_eq!(
            c.labels["traefik.http.routers.vnc-ann.rule"],
            "Host(`lab-abc.lab.localhost`) && PathPrefix(`/vnc/`)"
        );
        assert_eq!(c.labels["traefik.http.services.vnc-ann.loadbalancer.server.port"], "6080");
        assert_eq!(c.entrypoint.as_deref(), Some(&["/usr/bin/python3".to_string(), VNC_BRIDGE_PATH.to_string()][..]));
        assert_eq!(c.cmd, ["vm-ann"]);
        assert_eq!(c.expose, [6080]);
        let token = new_token();
        let files = spec.files(&token);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [TOKEN_PATH, VNC_BRIDGE_PATH]);
        assert_eq!(files[0].mode, 0o600);
        assert!(!format!("{c:?}").contains(&token));
        // The bridge's contract with this module.
        for fact in [TOKEN_PATH, SOCKET_IN_CONTAINER, "PORT = 6080", "\"/vnc/%s/\""] {
            assert!(VNC_BRIDGE.contains(fact), "vnc_bridge.py lacks {fact}");
        }
        assert_eq!(ConsoleKind::Vnc.probe_path("t"), "/vnc/t/vnc.html");
    }

    #[test]
    fn the_socket_comes_from_the_libvirt_uri() {
        assert_eq!(
            socket_of_uri("qemu+unix:///system?socket=/run/lab-rig/libvirt/libvirt-sock").as_deref(),
            Some("/run/lab-rig/libvirt/libvirt-sock")
        );
        assert_eq!(socket_of_uri("qemu:///system").as_deref(), Some(SYSTEM_SOCKET));
        assert_eq!(socket_of_uri("qemu+ssh://root@host/system").as_deref(), Some(SYSTEM_SOCKET), "that host's");
        assert_eq!(
            socket_of_uri("qemu+ssh://root@10.0.0.2/system?socket=/run/h1/libvirt-sock&keyfile=/k").as_deref(),
            Some("/run/h1/libvirt-sock")
        );
        assert_eq!(socket_of_uri("qemu:///session"), None);
    }

    #[test]
    fn bad_values_name_their_attribute_and_the_token_is_not_printed() {
        let c = ConsoleState {
            name: Attr::Known("Bad_Name".into()),
            domain: Attr::Known("vm ann".into()),
            hostname: Attr::Known("-x".into()),
            libvirt_socket: Attr::Known("run/sock".into()),
            kind: Attr::Known("rdp".into()),
            token: Attr::Known("0123456789abcdef".into()),
            ..Default::default()
        };
        let d = validate_config(&c);
        let paths: Vec<String> = d.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect();
        assert_eq!(paths, ["name", "domain", "hostname", "type", "libvirt_socket"]);
        assert!(d.0[3].detail.contains("`rdp`: use \"serial\" or \"vnc\""), "{}", d.0[3].detail);
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }
}
