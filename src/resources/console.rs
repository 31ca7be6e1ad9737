//! `lab_console`: a VM's serial console in the browser, the rescue path when SSH is broken. A ttyd
//! container runs `virsh console <domain>` over the libvirt socket, bind-mounted from the Docker
//! host, and its gateway routes `<hostname>/console/` to it. ttyd serves only under
//! `/console/<token>/`, a random token made at create: whoever lacks it gets 404. The token is
//! uploaded into the container as a file before it starts and read there by the start command, so
//! it is in no label, environment variable, `docker inspect` command line or log (ttyd logs errors
//! only: it would log each request's path otherwise). In state it is sensitive, and so is `url`.
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
pub const DEFAULT_IMAGE: &str = "lab/ttyd-virsh:1";
const TTYD_PORT: u16 = 7681;
/// Where the token file lands in the container, and where libvirt's socket is mounted.
const TOKEN_PATH: &str = "/lab/console/token";
const SOCKET_IN_CONTAINER: &str = "/run/libvirt/libvirt-sock";
/// The routes' path prefix; ttyd itself serves under `<prefix><token>/` only.
pub const PATH_PREFIX: &str = "/console/";
const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// libvirt's system socket when the URI names none (`qemu:///system`).
const SYSTEM_SOCKET: &str = "/var/run/libvirt/libvirt-sock";

// Labels the provider owns on every console container.
const LABEL_CONSOLE: &str = "lab.console";
const LABEL_DOMAIN: &str = "lab.domain";
const LABEL_HOSTNAME: &str = "lab.hostname";

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

    fn docker(&self) -> Result<&DockerClient, Diagnostics> {
        // A console runs on the provider's own Docker host (it has no `host` argument yet).
        self.docker.get(&Attr::Null, TYPE_NAME)
    }
}

fn schema_block() -> Block {
    let replace = |a: Attribute| a.requires_replace();
    Block {
        description: "A VM's serial console in the browser, for when SSH is broken: a ttyd container running \
                      `virsh console <domain>` over the libvirt socket, routed by a `lab_gateway` under \
                      `<hostname>/console/<token>/`. Only that path, with the random `token`, serves it. Every \
                      argument but `timeouts` replaces the console."
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
                    .description("The libvirt domain whose serial console this is, usually `lab_vm.<name>.name`."),
            ),
            replace(Attribute::string("gateway").required().description(
                "The `lab_gateway` that routes the console, usually `lab_gateway.<name>.id`: the console joins its \
                 network and gets a router for `<hostname>` and the path `/console/`.",
            )),
            replace(Attribute::string("hostname").required().description(
                "Hostname the console is served under, usually `lab_session.<name>.hostname` (the student's \
                 terminal keeps `/`; the console takes `/console/`).",
            )),
            replace(Attribute::string("image").default_str(DEFAULT_IMAGE).description(
                "Image with `ttyd`, `virsh` and `/bin/sh` (the rig builds `lab/ttyd-virsh:1` from Debian's \
                 libvirt-clients: `acceptance-tests/rig/build-console-rootfs.sh`).",
            )),
            replace(Attribute::string("libvirt_socket").optional().computed().description(
                "Path of libvirtd's read-write socket on the Docker host, mounted into the container. Default: the \
                 provider's `libvirt_uri` `socket=` parameter, else `/var/run/libvirt/libvirt-sock`. Whoever \
                 holds that socket controls libvirt: the container runs only ttyd and `virsh console`.",
            )),
            Attribute::string("token").computed().keep_prior().sensitive().description(
                "The secret path segment (128 random bits, hex), made at create. Never in labels, environment, \
                 command lines or logs.",
            ),
            Attribute::string("url").computed().keep_prior().sensitive().description(
                "Where to open the console: `<gateway scheme>://<hostname>[:port]/console/<token>/`. Press Enter \
                 for the guest's login prompt; `Ctrl-]` ends the session.",
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

/// The socket a libvirt URI connects to on this host: its `socket=` parameter, or libvirt's
/// system socket for `qemu:///system`. `None` for remote or session URIs (set `libvirt_socket`).
fn socket_of_uri(uri: &str) -> Option<String> {
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    if let Some(socket) = query.split('&').find_map(|kv| kv.strip_prefix("socket=")) {
        return Some(socket.to_string());
    }
    matches!(base, "qemu:///system" | "qemu+unix:///system").then(|| SYSTEM_SOCKET.to_string())
}

/// A fresh token: 128 bits from the OS's CSPRNG (through rand's thread RNG, seeded from it), hex.
fn new_token() -> String {
    rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a console container is made of. Everything here is validated; the token is not in it.
struct ConsoleSpec<'a> {
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
            (format!("traefik.http.services.{}.loadbalancer.server.port", self.name), TTYD_PORT.to_string()),
        ]);
        let mut router = |router: String, entrypoint: &str, tls: bool| {
            let prefix = format!("traefik.http.routers.{router}");
            // `hostname` is a validated host name: no backtick can break out of the rule. The
            // path rule is longer than the terminal's `Host(...)`, so Traefik ranks it first.
            labels
                .insert(format!("{prefix}.rule"), format!("Host(`{}`) && PathPrefix(`{PATH_PREFIX}`)", self.hostname));
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
        ContainerSpec {
            name: self.name.to_string(),
            image: self.image.to_string(),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), START_SCRIPT.into(), "console".into()]),
            cmd: vec![self.domain.to_string()],
            labels,
            network: Some(self.route.network.clone()),
            expose: vec![TTYD_PORT],
            restart_unless_stopped: true,
            mounts: vec![BindMount {
                host_path: self.socket.to_string(),
                container_path: SOCKET_IN_CONTAINER.into(),
                read_only: false,
            }],
            ..Default::default()
        }
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
async fn probe(route: &GatewayRoute, hostname: &str, token: &str) -> Result<(), String> {
    let path = format!("{PATH_PREFIX}{token}/");
    match http_status_at(route.probe_address, hostname, &path, None).await {
        Ok(200) => Ok(()),
        // The path is secret: say which route, not which path.
        Ok(status) => Err(format!("the console route of {hostname} answered HTTP {status}")),
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
        if req.config.libvirt_socket.is_null() {
            planned.libvirt_socket = match &req.prior {
                Some(prior) => prior.libvirt_socket.clone(),
                None => {
                    let settings = self.provider.settings()?;
                    let uri = settings.require_libvirt_uri(TYPE_NAME)?;
                    let socket = socket_of_uri(uri).ok_or_else(|| {
                        Diagnostic::attr_error(
                            AttrPath::root("libvirt_socket"),
                            "No local libvirt socket to mount",
                            format!("`libvirt_uri` {uri} names no socket on this host: set `libvirt_socket`."),
                        )
                    })?;
                    Attr::Known(socket)
                }
            };
        }
        Ok(Planned::new(planned))
    }

    async fn create(&self, planned: ConsoleState, ctx: &OpContext) -> Result<ConsoleState, Diagnostics> {
        let docker = self.docker()?;
        let route = resolve_gateway(docker, known(&planned.gateway, "gateway")?).await?;
        let image = known(&planned.image, "image")?;
        let spec = ConsoleSpec {
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
            let token_file = UploadFile {
                path: TOKEN_PATH.into(),
                contents: token.clone().into_bytes(),
                mode: 0o600,
                uid: 0,
                gid: 0,
            };
            docker
                .upload_files(&id, &[token_file], image_config.user.is_some())
                .await
                .or_diag("Uploading the token into the console container")?;
            docker.start_container(&id).await.or_diag("Starting the console container")?;
            let started = std::time::Instant::now();
            let what = format!("console `{}` answering through gateway `{}`", spec.name, route.name);
            let poll = Poll { timeout: create_timeout, interval: PROBE_INTERVAL };
            let info = docker_client::wait_ready(docker, &id, "console", &what, poll, ctx, |info| {
                let (route, hostname, token) = (&route, spec.hostname, token.as_str());
                async move { probe(route, hostname, token).await.map(|()| info) }
            })
            .await?;
            log::debug(&format!("{}: routed_s={:.3}", spec.name, started.elapsed().as_secs_f64()));
            Ok::<ContainerInfo, Diagnostics>(info)
        }
        .await;
        let info = rollback.finish(result).await?;
        let mut state = planned.clone();
        state.id = Attr::Known(info.id);
        state.url = Attr::Known(format!("{}{PATH_PREFIX}{token}/", route.url(spec.hostname)));
        state.token = Attr::Known(token);
        state.ready = Attr::Known(true);
        Ok(state)
    }

    async fn read(&self, current: ConsoleState, _ctx: &OpContext) -> Result<Option<ConsoleState>, Diagnostics> {
        let docker = self.docker()?;
        let Some(id) = current.id.known().or(current.name.known()).cloned() else { return Ok(None) };
        let Some(info) = docker.inspect_container(&id).await.or_diag("Reading the console")? else {
            return Ok(None);
        };
        let mut state = current;
        state.id = Attr::Known(info.id.clone());
        // A gateway gone since is no reason to fail the read: the console is just not ready.
        let ready = match (state.gateway.known(), state.hostname.known(), state.token.known()) {
            (Some(gateway), Some(hostname), Some(token)) if info.running => {
                match resolve_gateway(docker, gateway).await {
                    Ok(route) => probe(&route, hostname, token).await.is_ok(),
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
        let docker = self.docker()?;
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

    #[test]
    fn the_container_routes_the_console_path_and_holds_no_token() {
        let route = route();
        let spec = ConsoleSpec {
            name: "console-ann",
            domain: "vm-ann",
            hostname: "lab-abc.lab.localhost",
            image: DEFAULT_IMAGE,
            socket: "/run/lab-rig/libvirt/libvirt-sock",
            route: &route,
        };
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
    }

    #[test]
    fn the_socket_comes_from_the_libvirt_uri() {
        assert_eq!(
            socket_of_uri("qemu+unix:///system?socket=/run/lab-rig/libvirt/libvirt-sock").as_deref(),
            Some("/run/lab-rig/libvirt/libvirt-sock")
        );
        assert_eq!(socket_of_uri("qemu:///system").as_deref(), Some(SYSTEM_SOCKET));
        assert_eq!(socket_of_uri("qemu+ssh://root@host/system"), None);
        assert_eq!(socket_of_uri("qemu:///session"), None);
    }

    #[test]
    fn bad_values_name_their_attribute_and_the_token_is_not_printed() {
        let c = ConsoleState {
            name: Attr::Known("Bad_Name".into()),
            domain: Attr::Known("vm ann".into()),
            hostname: Attr::Known("-x".into()),
            libvirt_socket: Attr::Known("run/sock".into()),
            token: Attr::Known("0123456789abcdef".into()),
            ..Default::default()
        };
        let d = validate_config(&c);
        let paths: Vec<String> = d.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect();
        assert_eq!(paths, ["name", "domain", "hostname", "libvirt_socket"]);
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }
}
