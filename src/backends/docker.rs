//! Docker containers and networks through bollard: connect, create, upload files before start,
//! start, stop, remove, inspect, find by label, run a command in a running container (exec),
//! image presence (pull only when asked); networks created, inspected and removed.
//!
//! Typed in and out: `ContainerSpec` describes a container to make, `ContainerInfo` is what
//! inspect reports. Nothing here knows about Terraform.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
    UploadToContainerOptions,
};
use futures::TryStreamExt;

/// Seconds bollard waits for one API request.
const REQUEST_TIMEOUT_SECS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("unsupported Docker host `{host}`: use unix:///path/docker.sock, tcp://host:port or ssh://user@host")]
    UnsupportedHost { host: String },
    #[error("connecting to the Docker daemon at {host}{}", unreachable_hint(source))]
    Connect {
        host: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("{action} container `{container}` on {host}{}", unreachable_hint(source))]
    Container {
        action: &'static str,
        container: String,
        host: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error(
        "image `{image}` is not present on the Docker host {host}: load it there (docker pull/load/import) \
         or ask for a pull"
    )]
    ImageMissing { image: String, host: String },
    #[error("{action} image `{image}` on {host}{}", unreachable_hint(source))]
    Image {
        action: &'static str,
        image: String,
        host: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("building the archive of {path} for container `{container}`")]
    Archive {
        path: String,
        container: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid path `{path}` for a file uploaded into a container: {why}")]
    UploadPath { path: String, why: &'static str },
    #[error("{action} network `{network}` on {host}{}", unreachable_hint(source))]
    Network {
        action: &'static str,
        network: String,
        host: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("network `{network}` on {host} still has containers attached: {}", containers.join(", "))]
    NetworkInUse { network: String, host: String, containers: Vec<String> },
}

/// What a command run in a container printed, and its exit code (None: Docker did not say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// How long `remove_network` waits for the endpoints of containers just removed to go.
const ENDPOINT_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// TLS material for `tcp://` daemons, as Docker lays it out in `DOCKER_CERT_PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem`, `key.pem` in `dir` (the Docker CLI's convention).
    pub fn in_dir(dir: &Path) -> Self {
        TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") }
    }
}

/// Where the daemon is, parsed from a `DOCKER_HOST`-style URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    Unix(String),
    Tcp { url: String, tls: Option<TlsFiles> },
    Ssh(String),
}

impl DockerHost {
    /// `tls` applies to `tcp://` only (the daemon's TLS client material).
    pub fn parse(host: &str, tls: Option<TlsFiles>) -> Result<Self, DockerError> {
        let unsupported = || DockerError::UnsupportedHost { host: host.to_string() };
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(unsupported());
            }
            Ok(DockerHost::Unix(host.to_string()))
        } else if let Some(rest) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("https://")) {
            if rest.is_empty() {
                return Err(unsupported());
            }
            Ok(DockerHost::Tcp { url: format!("tcp://{rest}"), tls })
        } else if let Some(rest) = host.strip_prefix("ssh://") {
            if rest.is_empty() {
                return Err(unsupported());
            }
            Ok(DockerHost::Ssh(host.to_string()))
        } else {
            Err(unsupported())
        }
    }

    /// The host part of a `tcp://host:port` or `ssh://user@host:port` URL (None for `unix://`).
    pub fn remote_host(&self) -> Option<String> {
        let rest = match self {
            DockerHost::Unix(_) => return None,
            DockerHost::Tcp { url, .. } => url.strip_prefix("tcp://")?,
            DockerHost::Ssh(url) => url.strip_prefix("ssh://")?,
        };
        let authority = rest.split('/').next()?;
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => host_port.split(':').next()?,
        };
        (!host.is_empty()).then(|| host.to_string())
    }
}

/// A port of the container published on the Docker host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPublish {
    pub container_port: u16,
    pub host_ip: String,
    /// None: the daemon picks a free port (read it back with `inspect`).
    pub host_port: Option<u16>,
}

/// Everything needed to create a container. Files are uploaded separately before start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    /// Docker network to join instead of the default bridge.
    pub network: Option<String>,
    /// Networks joined besides `network` (a lab's network, for its VMs).
    pub extra_networks: Vec<String>,
    pub publish: Vec<PortPublish>,
    /// Ports exposed without publishing (e.g. for a reverse proxy on the same network).
    pub expose: Vec<u16>,
    /// Restart the container when the daemon restarts (`unless-stopped`).
    pub restart_unless_stopped: bool,
    /// Host paths bind-mounted into the container.
    pub mounts: Vec<BindMount>,
}

impl ContainerSpec {
    /// How `info` (a container found under this spec's name) differs from what creating this
    /// spec would give: the names of the parts that differ, empty when it is this spec's
    /// container. `image_labels` are the labels the container inherits from its image.
    pub fn mismatches(&self, info: &ContainerInfo, image_labels: &BTreeMap<String, String>) -> Vec<&'static str> {
        let mut differ = Vec::new();
        let mut check = |same: bool, part: &'static str| {
            if !same {
                differ.push(part);
            }
        };
        check(info.image == self.image, "image");
        check(self.entrypoint.as_ref().is_none_or(|e| *e == info.entrypoint), "entrypoint");
        check(info.cmd == self.cmd, "command");
        let mut expected_labels = image_labels.clone();
        expected_labels.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        check(info.labels == expected_labels, "labels");
        check(self.hostname.as_ref().is_none_or(|h| info.hostname.as_ref() == Some(h)), "hostname");
        let network = self.network.as_deref().unwrap_or(DEFAULT_NETWORK);
        let wanted = 1 + self.extra_networks.len();
        let joined = std::iter::once(network).chain(self.extra_networks.iter().map(String::as_str));
        check(info.networks.len() == wanted && joined.into_iter().all(|n| info.networks.contains_key(n)), "network");
        let sorted_ports = |ports: &[PortPublish]| {
            let mut ports = ports.to_vec();
            ports.sort_by(|a, b| {
                (a.container_port, &a.host_ip, a.host_port).cmp(&(b.container_port, &b.host_ip, b.host_port))
            });
            ports
        };
        check(sorted_ports(&info.requested_publish) == sorted_ports(&self.publish), "published ports");
        let sorted_mounts = |mounts: &[BindMount]| {
            let mut mounts = mounts.to_vec();
            mounts.sort_by(|a, b| a.container_path.cmp(&b.container_path));
            mounts
        };
        check(sorted_mounts(&info.mounts) == sorted_mounts(&self.mounts), "mounts");
        differ
    }
}

/// The network a container without `ContainerSpec::network` joins.
const DEFAULT_NETWORK: &str = "bridge";

/// A path of the Docker host, bind-mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// What inspect says about a network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Names of the containers attached to it.
    pub containers: Vec<String>,
    /// `com.docker.network.bridge.name`, when the network names its bridge.
    pub bridge: Option<String>,
    /// The first IPAM subnet.
    pub subnet: Option<String>,
    pub internal: bool,
}

/// Where `create_network_on_bridge` puts a network: an existing bridge and its subnet, with the
/// host's address on it as the gateway and `ip_range` (inside `subnet`) for the containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBridge {
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub ip_range: String,
    /// No route beyond the bridge: containers reach only what is on it.
    pub internal: bool,
}

/// A file to place in a container before it starts.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// Absolute path in the container, e.g. `/lab/ssh/id`.
    pub path: String,
    pub contents: Vec<u8>,
    /// File mode, e.g. 0o600. The parent directory gets the matching directory mode (0o700).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

// File contents may be secrets: never print them.
impl std::fmt::Debug for UploadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadFile")
            .field("path", &self.path)
            .field("len", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .field("uid", &self.uid)
            .finish()
    }
}

/// The parts of an image's config a container inherits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `None` for root/unset, else e.g. `1000:1000` or `ttyd`.
    pub user: Option<String>,
    /// Labels every container of this image carries too.
    pub labels: BTreeMap<String, String>,
}

/// What inspect says about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    pub running: bool,
    /// `created`, `running`, `exited`, ...
    pub status: String,
    pub exit_code: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub hostname: Option<String>,
    /// Network name -> the container's IPv4 address on it (None while stopped).
    pub networks: BTreeMap<String, Option<IpAddr>>,
    /// Published ports as bound by the daemon (actual host ports, also when it picked them).
    pub published: Vec<PortPublish>,
    /// Port bindings as requested at create (`host_port: None` where Docker was left to pick).
    pub requested_publish: Vec<PortPublish>,
    /// The environment, as `KEY=value` strings.
    pub env: Vec<String>,
    /// Bind mounts, as the daemon reports them.
    pub mounts: Vec<BindMount>,
    /// Set when the daemon is remote (`tcp://`, `ssh://`): the address of its host, where ports
    /// published on all addresses are reached. The container's own `networks` addresses are then
    /// private to that host, not reachable from here.
    pub remote: Option<IpAddr>,
}

impl ContainerInfo {
    /// Created but never started: files meant to be uploaded before the start may be missing.
    pub fn never_started(&self) -> bool {
        self.status == "created"
    }
}

/// A connection to one Docker daemon. Cheap to clone (bollard shares the HTTP client).
#[derive(Debug, Clone)]
pub struct DockerClient {
    docker: Docker,
    host: String,
    /// The host name of a `tcp://` or `ssh://` daemon: where its published ports listen.
    remote_host: Option<String>,
    /// `remote_host` resolved once at connect (None when it does not resolve).
    remote_ip: Option<IpAddr>,
}

impl DockerClient {
    /// Connect (lazily: the first request opens the connection) to `host`.
    pub fn connect(host: &DockerHost) -> Result<Self, DockerError> {
        let version = bollard::API_DEFAULT_VERSION;
        let (label, result) = match host {
            DockerHost::Unix(url) => (url.clone(), Docker::connect_with_unix(url, REQUEST_TIMEOUT_SECS, version)),
            DockerHost::Tcp { url, tls: None } => {
                (url.clone(), Docker::connect_with_http(url, REQUEST_TIMEOUT_SECS, version))
            }
            DockerHost::Tcp { url, tls: Some(tls) } => {
                // bollard builds its rustls config from the process-wide provider; another part of
                // the provider may have installed it already, which is fine.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                let result = Docker::connect_with_ssl(url, &tls.key, &tls.cert, &tls.ca, REQUEST_TIMEOUT_SECS, version);
                (format!("{url} (TLS, CA {})", tls.ca.display()), result)
            }
            DockerHost::Ssh(url) => (url.clone(), Docker::connect_with_ssh(url, REQUEST_TIMEOUT_SECS, version, None)),
        };
        let docker = result.map_err(|source| DockerError::Connect { host: label.clone(), source: Box::new(source) })?;
        let remote_host = host.remote_host();
        let remote_ip = remote_host.as_deref().and_then(|h| {
            h.parse().ok().or_else(|| {
                use std::net::ToSocketAddrs;
                (h, 0).to_socket_addrs().ok()?.next().map(|a| a.ip())
            })
        });
        Ok(DockerClient { docker, host: label, remote_host, remote_ip })
    }

    /// The daemon's address, for messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host name of a remote (`tcp://`, `ssh://`) daemon, where the ports it publishes on
    /// all addresses are reached; None for a local socket.
    pub fn remote_host(&self) -> Option<&str> {
        self.remote_host.as_deref()
    }

    /// Check that the daemon answers.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|source| DockerError::Connect { host: self.host.clone(), source: Box::new(source) })
    }

    fn container_err(&self, action: &'static str, container: &str) -> impl FnOnce(BollardError) -> DockerError {
        let (container, host) = (container.to_string(), self.host.clone());
        move |source| DockerError::Container { action, container, host, source: Box::new(source) }
    }

    /// Whether `image` is present on the daemon (no pull).
    pub async fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(source) => Err(DockerError::Image {
                action: "inspecting",
                image: image.to_string(),
                host: self.host.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// Make sure `image` is there: pull it when `pull` is set, else fail with a clear message.
    pub async fn ensure_image(&self, image: &str, pull: bool) -> Result<(), DockerError> {
        if self.image_present(image).await? {
            return Ok(());
        }
        if !pull {
            return Err(DockerError::ImageMissing { image: image.to_string(), host: self.host.clone() });
        }
        let options = CreateImageOptions { from_image: Some(image.to_string()), ..Default::default() };
        self.docker.create_image(Some(options), None, None).try_for_each(|_progress| async { Ok(()) }).await.map_err(
            |source| DockerError::Image {
                action: "pulling",
                image: image.to_string(),
                host: self.host.clone(),
                source: Box::new(source),
            },
        )
    }

    /// Create (not start) a container; returns its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let options = CreateContainerOptions { name: Some(spec.name.clone()), ..Default::default() };
        let response = self
            .docker
            .create_container(Some(options), create_body(spec))
            .await
            .map_err(self.container_err("creating", &spec.name))?;
        // The other networks before the first start, one by one: Docker takes several endpoints
        // at create only from API 1.44 on. A container that cannot join them all is removed.
        for network in &spec.extra_networks {
            let request = bollard::models::NetworkConnectRequest {
                container: response.id.clone(),
                endpoint_config: Some(EndpointSettings::default()),
            };
            if let Err(e) = self.docker.connect_network(network, request).await {
                let _ = self.remove_container(&response.id).await;
                return Err(self.network_err("connecting a container to", network)(e));
            }
        }
        Ok(response.id)
    }

    /// What a container inherits from its image: the user it runs as and its labels.
    pub async fn image_config(&self, image: &str) -> Result<ImageConfig, DockerError> {
        let inspect = self.docker.inspect_image(image).await.map_err(|source| DockerError::Image {
            action: "inspecting",
            image: image.to_string(),
            host: self.host.clone(),
            source: Box::new(source),
        })?;
        let config = inspect.config.unwrap_or_default();
        Ok(ImageConfig {
            user: config.user.filter(|u| !u.is_empty() && u != "root" && u != "0" && u != "0:0"),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
        })
    }

    /// Place files into a created container (before start, so the process never sees them missing).
    /// Parent directories are created with mode 0700 and the file's owner. With
    /// `owner_from_container_user`, the daemon instead gives everything to the container's
    /// configured user (it resolves user names against the container's own /etc/passwd).
    pub async fn upload_files(
        &self,
        container: &str,
        files: &[UploadFile],
        owner_from_container_user: bool,
    ) -> Result<(), DockerError> {
        let archive = build_archive(files).map_err(|e| match e {
            ArchiveError::Path { path, why } => DockerError::UploadPath { path, why },
            ArchiveError::Io { path, source } => {
                DockerError::Archive { path, container: container.to_string(), source }
            }
        })?;
        let options = UploadToContainerOptions {
            path: "/".into(),
            copy_uidgid: owner_from_container_user.then(|| "true".to_string()),
            ..Default::default()
        };
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(self.container_err("uploading files into", container))
    }

    pub async fn start_container(&self, container: &str) -> Result<(), DockerError> {
        match self.docker.start_container(container, None).await {
            // 304: already running.
            Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            other => other.map_err(self.container_err("starting", container)),
        }
    }

    /// Stop with SIGTERM, then SIGKILL after `grace`. Already stopped or gone: Ok.
    pub async fn stop_container(&self, container: &str, grace: Duration) -> Result<(), DockerError> {
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptions { t: Some(t), signal: None };
        match self.docker.stop_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.container_err("stopping", container)(e)),
        }
    }

    /// Remove (forcefully, with anonymous volumes). Returns false when it was already gone.
    pub async fn remove_container(&self, container: &str) -> Result<bool, DockerError> {
        let options = RemoveContainerOptions { force: true, v: true, link: false };
        match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            // 409 "removal already in progress": it is going away.
            Err(BollardError::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") =>
            {
                Ok(true)
            }
            Err(e) => Err(self.container_err("removing", container)(e)),
        }
    }

    /// Inspect by id or name; `None` when no such container exists.
    pub async fn inspect_container(&self, container: &str) -> Result<Option<ContainerInfo>, DockerError> {
        match self.docker.inspect_container(container, None).await {
            Ok(response) => Ok(Some(ContainerInfo { remote: self.remote_ip, ..container_info(response) })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.container_err("inspecting", container)(e)),
        }
    }

    /// Run `argv` in a running container (no shell, no tty) and collect what it printed. A command
    /// that cannot start (not in the image) is an `ExecOutput` with Docker's exit code 126/127.
    pub async fn exec(&self, container: &str, argv: &[&str]) -> Result<ExecOutput, DockerError> {
        let err = || self.container_err("running a command in", container);
        let options = CreateExecOptions {
            cmd: Some(argv.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self.docker.create_exec(container, options).await.map_err(err())?;
        let mut out = ExecOutput::default();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await.map_err(err())?
        {
            while let Some(chunk) = output.try_next().await.map_err(err())? {
                match chunk {
                    LogOutput::StdOut { message } => out.stdout.push_str(&String::from_utf8_lossy(&message)),
                    LogOutput::StdErr { message } => out.stderr.push_str(&String::from_utf8_lossy(&message)),
                    _ => {}
                }
            }
        }
        out.exit_code = self.docker.inspect_exec(&exec.id).await.map_err(err())?.exit_code;
        Ok(out)
    }

    /// Ids and names of all containers (running or not) carrying label `key=value`.
    pub async fn find_by_label(&self, key: &str, value: &str) -> Result<Vec<(String, String)>, DockerError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{key}={value}")])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(self.container_err("listing", &format!("label {key}={value}")))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let name = c.names.and_then(|n| n.into_iter().next()).unwrap_or_default();
                (c.id.unwrap_or_default(), name.trim_start_matches('/').to_string())
            })
            .collect())
    }
}

/// Networks: the gateway's own, which its terminals join.
impl DockerClient {
    fn network_err(&self, action: &'static str, network: &str) -> impl FnOnce(BollardError) -> DockerError {
        let (network, host) = (network.to_string(), self.host.clone());
        move |source| DockerError::Network { action, network, host, source: Box::new(source) }
    }

    /// A bridge network; returns its id.
    pub async fn create_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<String, DockerError> {
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        let created = self.docker.create_network(request).await.map_err(self.network_err("creating", name))?;
        Ok(created.id)
    }

    /// A bridge network on `on.bridge`, a Linux bridge someone else made (a libvirt network's):
    /// containers on it share that bridge's link with whatever else is plugged in. Docker leaves
    /// a bridge it did not create in place when the network is removed. Returns its id.
    pub async fn create_network_on_bridge(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        on: &OnBridge,
    ) -> Result<String, DockerError> {
        let options = HashMap::from([
            ("com.docker.network.bridge.name".to_string(), on.bridge.clone()),
            ("com.docker.network.bridge.enable_ip_masquerade".to_string(), "false".to_string()),
        ]);
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(on.internal),
            options: Some(options),
            ipam: Some(bollard::models::Ipam {
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some(on.subnet.clone()),
                    gateway: Some(on.gateway.clone()),
                    ip_range: Some(on.ip_range.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        let created = self.docker.create_network(request).await.map_err(self.network_err("creating", name))?;
        Ok(created.id)
    }

    /// Inspect by id or name; `None` when no such network exists.
    pub async fn inspect_network(&self, network: &str) -> Result<Option<NetworkInfo>, DockerError> {
        match self.docker.inspect_network(network, None).await {
            Ok(n) => {
                let mut containers: Vec<String> =
                    n.containers.unwrap_or_default().into_values().filter_map(|c| c.name).collect();
                containers.sort();
                let bridge = n.options.as_ref().and_then(|o| o.get("com.docker.network.bridge.name").cloned());
                let subnet = n.ipam.as_ref().and_then(|i| i.config.as_ref()).and_then(|c| c.first()?.subnet.clone());
                Ok(Some(NetworkInfo {
                    id: n.id.unwrap_or_default(),
                    name: n.name.unwrap_or_default(),
                    labels: n.labels.unwrap_or_default().into_iter().collect(),
                    containers,
                    bridge,
                    subnet,
                    internal: n.internal.unwrap_or(false),
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.network_err("inspecting", network)(e)),
        }
    }

    /// Remove a network no container is attached to. Returns false when it was already gone;
    /// a network still in use is an error naming the containers (they are not touched).
    pub async fn remove_network(&self, network: &str) -> Result<bool, DockerError> {
        // The daemon releases a removed container's endpoint after `rm` returns: for a moment the
        // network is "in use" by no container. Only containers still attached make it an error.
        let deadline = tokio::time::Instant::now() + ENDPOINT_RELEASE_WAIT;
        loop {
            match self.docker.remove_network(network).await {
                Ok(()) => return Ok(true),
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(BollardError::DockerResponseServerError { status_code: 403 | 409, .. }) => {
                    let containers = self.inspect_network(network).await?.map(|n| n.containers).unwrap_or_default();
                    if !containers.is_empty() || tokio::time::Instant::now() >= deadline {
                        return Err(DockerError::NetworkInUse {
                            network: network.to_string(),
                            host: self.host.clone(),
                            containers,
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => return Err(self.network_err("removing", network)(e)),
            }
        }
    }
}

/// What to do when the daemon did not answer at all (stopped, restarting, a wrong socket), said
/// after the error of whichever call met it first.
fn unreachable_hint(source: &BollardError) -> &'static str {
    let unreachable = match source {
        BollardError::HyperLegacyError { err } => err.is_connect(),
        BollardError::IOError { err } => {
            matches!(err.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused)
        }
        BollardError::SocketNotFoundError(_) => true,
        _ => false,
    };
    if unreachable {
        ": the Docker daemon (dockerd) does not answer there; check that dockerd is running \
         (e.g. `systemctl status docker`), then run terraform again"
    } else {
        ""
    }
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

fn port_key(port: u16) -> String {
    format!("{port}/tcp")
}

/// The create request for `spec`.
pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut exposed: Vec<String> = spec.expose.iter().map(|p| port_key(*p)).collect();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.publish {
        let key = port_key(p.container_port);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(PortBinding {
            host_ip: Some(p.host_ip.clone()),
            host_port: Some(p.host_port.map(|n| n.to_string()).unwrap_or_default()),
        });
    }
    let host_config = HostConfig {
        network_mode: spec.network.clone(),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        restart_policy: spec.restart_unless_stopped.then_some(bollard::models::RestartPolicy {
            name: Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        // Nothing in a terminal container needs more than the defaults minus these.
        cap_drop: Some(vec!["NET_RAW".into(), "MKNOD".into(), "AUDIT_WRITE".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        init: Some(false),
        mounts: (!spec.mounts.is_empty()).then(|| {
            spec.mounts
                .iter()
                .map(|m| bollard::models::Mount {
                    typ: Some(bollard::models::MountType::BIND),
                    source: Some(m.host_path.clone()),
                    target: Some(m.container_path.clone()),
                    read_only: Some(m.read_only),
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    };
    // `extra_networks` are joined after create (`create_container`).
    let networking_config = spec.network.as_ref().map(|net| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(net.clone(), EndpointSettings::default())])),
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        cmd: Some(spec.cmd.clone()),
        labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        hostname: spec.hostname.clone(),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

#[derive(Debug)]
enum ArchiveError {
    Path { path: String, why: &'static str },
    Io { path: String, source: std::io::Error },
}

/// A tar archive (rooted at `/`) holding `files` with their modes and owners, and their parent
/// directories (0700, same owner).
fn build_archive(files: &[UploadFile]) -> Result<Vec<u8>, ArchiveError> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs_done = std::collections::BTreeSet::new();
    for file in files {
        let relative = archive_path(&file.path)?;
        let io_err = |source| ArchiveError::Io { path: file.path.clone(), source };
        // Parent directories, outermost first.
        let parents: Vec<&Path> = relative.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()).collect();
        for dir in parents.into_iter().rev() {
            if !dirs_done.insert(dir.to_path_buf()) {
                continue;
            }
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o700);
            header.set_uid(file.uid);
            header.set_gid(file.gid);
            header.set_size(0);
            header.set_mtime(0);
            builder.append_data(&mut header, dir, std::io::empty()).map_err(io_err)?;
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(file.mode);
        header.set_uid(file.uid);
        header.set_gid(file.gid);
        header.set_size(file.contents.len() as u64);
        header.set_mtime(0);
        builder.append_data(&mut header, &relative, file.contents.as_slice()).map_err(io_err)?;
    }
    builder.into_inner().map_err(|source| ArchiveError::Io { path: "archive".into(), source })
}

/// `/lab/ssh/id` -> `lab/ssh/id`; only plain absolute paths (no `..`, no `.`, no empty parts).
fn archive_path(path: &str) -> Result<PathBuf, ArchiveError> {
    let bad = |why| Err(ArchiveError::Path { path: path.to_string(), why });
    let Some(rest) = path.strip_prefix('/') else {
        return bad("must be absolute");
    };
    if rest.is_empty() || rest.ends_with('/') {
        return bad("must name a file");
    }
    if rest.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return bad("must not contain empty, `.` or `..` parts");
    }
    Ok(PathBuf::from(rest))
}

fn container_info(r: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    let state = r.state.unwrap_or_default();
    let config = r.config.unwrap_or_default();
    let settings = r.network_settings.unwrap_or_default();
    let networks = settings
        .networks
        .unwrap_or_default()
        .into_iter()
        .map(|(name, ep)| (name, ep.ip_address.filter(|ip| !ip.is_empty()).and_then(|ip| ip.parse().ok())))
        .collect();
    let requested_publish = port_list(r.host_config.and_then(|h| h.port_bindings));
    let published = port_list(settings.ports);
    let mounts = r
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ.as_deref() == Some("bind"))
        .map(|m| BindMount {
            host_path: m.source.unwrap_or_default(),
            container_path: m.destination.unwrap_or_default(),
            read_only: m.rw == Some(false),
        })
        .collect();
    ContainerInfo {
        id: r.id.unwrap_or_default(),
        name: r.name.unwrap_or_default().trim_start_matches('/').to_string(),
        image: config.image.unwrap_or_default(),
        running: state.running.unwrap_or(false),
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        exit_code: state.exit_code,
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        entrypoint: config.entrypoint.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
        hostname: config.hostname,
        networks,
        published,
        requested_publish,
        env: config.env.unwrap_or_default(),
        mounts,
        remote: None,
    }
}

impl ContainerInfo {
    /// Where a port published on `host_ip` is reached from here: a specific address as is; all
    /// addresses (or none given) at the remote daemon's host, or loopback for a local daemon.
    pub fn published_at(&self, host_ip: &str) -> IpAddr {
        match host_ip.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => ip,
            _ => self.remote.unwrap_or(IpAddr::from([127, 0, 0, 1])),
        }
    }

    /// The container's address on its first network, when reachable from here (local daemons).
    pub fn network_address(&self) -> Option<IpAddr> {
        if self.remote.is_some() {
            return None;
        }
        self.networks.values().flatten().next().copied()
    }
}

/// Port bindings as a sorted list; an empty host port (Docker picks one) reads as `None`.
fn port_list(map: Option<HashMap<String, Option<Vec<PortBinding>>>>) -> Vec<PortPublish> {
    let mut list = Vec::new();
    for (key, bindings) in map.unwrap_or_default() {
        let Some(container_port) = key.split('/').next().and_then(|p| p.parse().ok()) else { continue };
        for b in bindings.unwrap_or_default() {
            list.push(PortPublish {
                container_port,
                host_ip: b.host_ip.unwrap_or_default(),
                host_port: b.host_port.and_then(|p| p.parse().ok()),
            });
        }
    }
    list.sort_by(|a, b| (a.container_port, &a.host_ip).cmp(&(b.container_port, &b.host_ip)));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            DockerHost::parse("unix:///run/labtest/docker.sock", None).unwrap(),
            DockerHost::Unix("unix:///run/labtest/docker.sock".into())
        );
        let tls = TlsFiles::in_dir(Path::new("/certs"));
        assert_eq!(
            DockerHost::parse("tcp://10.0.0.5:2376", Some(tls.clone())).unwrap(),
            DockerHost::Tcp { url: "tcp://10.0.0.5:2376".into(), tls: Some(tls) }
        );
        assert!(matches!(DockerHost::parse("ssh://me@box", None).unwrap(), DockerHost::Ssh(_)));
        let remote = |h: &str| DockerHost::parse(h, None).unwrap().remote_host();
        assert_eq!(remote("ssh://root@10.77.1.2"), Some("10.77.1.2".into()));
        assert_eq!(remote("ssh://root@hv1.example.edu:2222"), Some("hv1.example.edu".into()));
        assert_eq!(remote("tcp://[fd00::2]:2376"), Some("fd00::2".into()));
        assert_eq!(remote("unix:///run/docker.sock"), None);
        for bad in ["", "npipe:////./pipe/docker", "unix://", "docker.sock", "tcp://"] {
            let err = DockerHost::parse(bad, None).unwrap_err();
            assert!(err.to_string().contains("unsupported Docker host"), "{bad}: {err}");
        }
    }

    #[test]
    fn tls_connect_names_the_host_and_missing_material() {
        let tls = TlsFiles::in_dir(Path::new("/nonexistent-lab-certs"));
        let host = DockerHost::parse("tcp://127.0.0.1:2376", Some(tls)).unwrap();
        let err = DockerClient::connect(&host).unwrap_err();
        let text = format!("{err}: {}", std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default());
        assert!(text.contains("tcp://127.0.0.1:2376") && text.contains("/nonexistent-lab-certs/ca.pem"), "{text}");
    }

    #[test]
    fn create_body_publishes_and_joins_network() {
        let spec = ContainerSpec {
            name: "t1".into(),
            image: "lab/ttyd-ssh:1".into(),
            cmd: vec!["ttyd".into(), "-W".into()],
            labels: BTreeMap::from([("lab.managed".into(), "true".into())]),
            network: Some("labnet".into()),
            publish: vec![PortPublish { container_port: 7681, host_ip: "127.0.0.1".into(), host_port: Some(8001) }],
            expose: vec![7681],
            ..Default::default()
        };
        let body = create_body(&spec);
        assert_eq!(body.exposed_ports, Some(vec!["7681/tcp".to_string()]));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("labnet"));
        let binding = &hc.port_bindings.unwrap()["7681/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("8001"));
        assert!(body.networking_config.unwrap().endpoints_config.unwrap().contains_key("labnet"));
        assert_eq!(body.labels.unwrap()["lab.managed"], "true");
    }

    #[test]
    fn a_found_container_matches_its_spec_only_when_every_part_is_the_same() {
        let spec = ContainerSpec {
            name: "t1".into(),
            image: "lab/ttyd-ssh:1".into(),
            entrypoint: Some(vec!["ttyd".into()]),
            cmd: vec!["--port".into(), "7681".into()],
            labels: BTreeMap::from([("lab.managed".into(), "true".into())]),
            hostname: Some("t1".into()),
            publish: vec![PortPublish { container_port: 7681, host_ip: "127.0.0.1".into(), host_port: None }],
            mounts: vec![BindMount { host_path: "/s".into(), container_path: "/d".into(), read_only: true }],
            ..Default::default()
        };
        let image_labels = BTreeMap::from([("from.image".to_string(), "1".to_string())]);
        let mut labels = spec.labels.clone();
        labels.extend(image_labels.clone());
        let found = ContainerInfo {
            name: "t1".into(),
            image: spec.image.clone(),
            entrypoint: vec!["ttyd".into()],
            cmd: spec.cmd.clone(),
            labels,
            hostname: Some("t1".into()),
            networks: BTreeMap::from([("bridge".into(), None)]),
            requested_publish: spec.publish.clone(),
            mounts: spec.mounts.clone(),
            ..Default::default()
        };
        assert_eq!(spec.mismatches(&found, &image_labels), Vec::<&str>::new());
        let mut other = found.clone();
        other.labels.insert("lab.ssh_key_sha256".into(), "00".into());
        other.cmd.push("--writable".into());
        other.networks = BTreeMap::from([("labgw".into(), None)]);
        assert_eq!(spec.mismatches(&other, &image_labels), ["command", "labels", "network"]);
        let mut other = found.clone();
        other.image = "lab/ttyd-ssh:2".into();
        other.requested_publish[0].host_port = Some(8001);
        other.mounts[0].read_only = false;
        assert_eq!(spec.mismatches(&other, &image_labels), ["image", "published ports", "mounts"]);
        // A lab network joined besides the first: both must be there, and nothing more.
        let mut lab = spec.clone();
        lab.extra_networks = vec!["lab-ada".into()];
        assert_eq!(lab.mismatches(&found, &image_labels), ["network"]);
        let mut both = found.clone();
        both.networks.insert("lab-ada".into(), None);
        assert_eq!(lab.mismatches(&both, &image_labels), Vec::<&str>::new());
        assert_eq!(spec.mismatches(&both, &image_labels), ["network"]);
    }

    #[test]
    fn archive_holds_file_with_mode_and_owner() {
        let files =
            [UploadFile { path: "/lab/ssh/id".into(), contents: b"KEY".to_vec(), mode: 0o600, uid: 1000, gid: 1000 }];
        let bytes = build_archive(&files).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u32, u64, bool)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (e.path().unwrap().display().to_string(), h.mode().unwrap(), h.uid().unwrap(), h.entry_type().is_dir())
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("lab".into(), 0o700, 1000, true),
                ("lab/ssh".into(), 0o700, 1000, true),
                ("lab/ssh/id".into(), 0o600, 1000, false)
            ]
        );
        // Debug output never carries the contents.
        assert!(!format!("{:?}", files[0]).contains("KEY"));
    }

    #[test]
    fn archive_rejects_odd_paths() {
        for bad in ["relative", "/", "/a/../etc/passwd", "/a//b", "/dir/"] {
            let files = [UploadFile { path: bad.into(), contents: vec![], mode: 0o600, uid: 0, gid: 0 }];
            assert!(build_archive(&files).is_err(), "{bad} accepted");
        }
    }
}
