//! libvirt as the provider uses it: a typed async API whose calls run in a helper process,
//! `terraform-provider-lab-libvirt`, shipped next to the provider binary.
//!
//! Why a second process: linking libvirt costs every process that loads it about 12 ms in the
//! dynamic loader (57 shared libraries) before `main` runs, and Terraform starts the provider
//! three to five times per command, mostly for work that needs no libvirt at all. So only the
//! helper links libvirt (host.rs, through the `virt` crate); the provider starts it on the first
//! `lab_vm` call that needs libvirt and talks to it in JSON lines (wire.rs). A side effect: a
//! libvirt call that hangs or crashes takes down the helper, not the gRPC server.

pub mod host;
pub mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use base64::Engine;

use super::domain_xml::{DomainSummary, DomainXmlError, cdrom_device_xml};
use super::network_xml::{NetworkSummary, NetworkXmlError};
use super::volume_xml::{PoolSummary, VolumeSpec, VolumeSummary, VolumeXmlError};
pub use wire::{AddressSource, GuestAddress, HostInfo, UploadReport, VmState};
use wire::{Envelope, RawNetworkInfo, RawPool, RawVmInfo, RawVolume, Reply, Request};

/// File name of the helper binary; it lives in the provider binary's directory.
pub const HELPER_NAME: &str = "terraform-provider-lab-libvirt";

/// How long a lost connection waits for libvirtd to answer again (a restart takes 1-5 s), and how
/// often it tries.
const RECONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const RECONNECT_POLL: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("{what}: {message}")]
    Call { what: String, message: String },
    #[error("{what}: {source}")]
    Xml { what: String, source: DomainXmlError },
    #[error("{what}: {source}")]
    NetworkXml { what: String, source: NetworkXmlError },
    #[error("{what}: {source}")]
    VolumeXml { what: String, source: VolumeXmlError },
    /// libvirtd does not answer at `uri` (stopped, restarting, or a wrong socket).
    #[error(
        "{what}: libvirtd at {uri} does not answer ({message}). Check that libvirtd is running \
         (e.g. `systemctl status libvirtd`), then run terraform again"
    )]
    Unreachable { what: String, uri: String, message: String },
    #[error("{what}: libvirt helper {}: {reason}", helper.display())]
    Helper { what: String, helper: PathBuf, reason: String },
}

/// A defined domain as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    pub state: VmState,
    pub autostart: bool,
    /// Parsed live XML (inactive XML when shut off).
    pub summary: DomainSummary,
}

/// A defined network as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub active: bool,
    /// Parsed live XML (inactive XML when stopped).
    pub summary: NetworkSummary,
}

/// A storage pool on the connection's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub summary: PoolSummary,
    /// False for the transient pools made over a directory (`pool_for_dir`).
    pub persistent: bool,
}

/// A storage volume, with the pool that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub pool: String,
    pub summary: VolumeSummary,
}

/// One libvirt connection (one helper process at a time), cloned cheaply; safe to share between
/// tasks. A connection that dies under it (libvirtd restarted or stopped, the helper killed) is
/// noticed at the next call that fails: a new helper connects and the call is made again when it
/// is safe to repeat. The helper goes away with the last clone.
#[derive(Clone)]
pub struct Libvirt {
    inner: Arc<Connection>,
}

struct Connection {
    uri: String,
    helper_path: PathBuf,
    helper: Mutex<Arc<Helper>>,
    /// One reconnect at a time: calls that fail together share the new helper.
    reconnecting: tokio::sync::Mutex<()>,
}

impl Libvirt {
    /// Connect through the helper installed next to the running executable.
    pub async fn connect(uri: &str) -> Result<Self, LibvirtError> {
        let what = format!("connecting to libvirt at {uri}");
        let exe = std::env::current_exe().map_err(|e| LibvirtError::Helper {
            what: what.clone(),
            helper: PathBuf::from(HELPER_NAME),
            reason: format!("cannot tell where the provider binary is: {e}"),
        })?;
        let helper = exe.parent().unwrap_or(Path::new(".")).join(HELPER_NAME);
        Self::connect_with(&helper, uri).await
    }

    /// Connect through the helper binary at `helper` (tests use cargo's path to it).
    pub async fn connect_with(helper: &Path, uri: &str) -> Result<Self, LibvirtError> {
        let process = open(helper, uri).await?;
        let inner = Connection {
            uri: uri.to_string(),
            helper_path: helper.to_path_buf(),
            helper: Mutex::new(Arc::new(process)),
            reconnecting: tokio::sync::Mutex::new(()),
        };
        Ok(Libvirt { inner: Arc::new(inner) })
    }

    pub fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// The current helper's process id (for tests and logs); `None` once it has been reaped.
    pub fn helper_pid(&self) -> Option<u32> {
        self.current().child.id()
    }

    /// Whether the connection answers now (libvirtd restarts drop it; so does a dead helper).
    /// Calls reconnect by themselves; this only looks.
    pub async fn is_alive(&self) -> bool {
        is_alive(&self.current()).await
    }

    /// Define (persist) a domain from XML; returns its UUID.
    pub async fn define(&self, xml: String) -> Result<String, LibvirtError> {
        self.call("defining domain".into(), Request::Define { xml }).await
    }

    /// A start the connection was lost under may or may not have reached libvirtd: on the new
    /// connection, a running domain means it did, and otherwise it is made again.
    pub async fn start(&self, name: &str) -> Result<(), LibvirtError> {
        let what = format!("starting domain {name}");
        let before = self.current();
        match self.call(what.clone(), Request::Start { name: name.into() }).await {
            Err(_) if !Arc::ptr_eq(&before, &self.current()) => match self.lookup(name).await? {
                Some(info) if info.state == VmState::Running => Ok(()),
                _ => self.call(what, Request::Start { name: name.into() }).await,
            },
            done => done,
        }
    }

    /// ACPI power button; returns at once (the guest shuts down in its own time).
    pub async fn shutdown(&self, name: &str) -> Result<(), LibvirtError> {
        self.call(format!("shutting down domain {name}"), Request::Shutdown { name: name.into() }).await
    }

    /// Hard power-off. Not running, or gone, is fine.
    pub async fn destroy(&self, name: &str) -> Result<(), LibvirtError> {
        self.call(format!("destroying domain {name}"), Request::Destroy { name: name.into() }).await
    }

    /// Remove the definition, with its NVRAM and managed save. Gone already is fine.
    pub async fn undefine(&self, name: &str) -> Result<(), LibvirtError> {
        self.call(format!("undefining domain {name}"), Request::Undefine { name: name.into() }).await
    }

    pub async fn set_autostart(&self, name: &str, on: bool) -> Result<(), LibvirtError> {
        let what = format!("setting autostart={on} on domain {name}");
        self.call(what, Request::SetAutostart { name: name.into(), on }).await
    }

    /// Insert `iso` into the domain's CD-ROM drive, or eject it (`None`): live when the domain
    /// runs, and in its definition. The domain must have the drive (every `DomainSpec` does).
    pub async fn change_media(&self, name: &str, iso: Option<&Path>) -> Result<(), LibvirtError> {
        let what = match iso {
            Some(iso) => format!("inserting {} into the CD-ROM drive of domain {name}", iso.display()),
            None => format!("ejecting the CD-ROM of domain {name}"),
        };
        let device_xml = cdrom_device_xml(iso).map_err(|source| LibvirtError::Xml { what: what.clone(), source })?;
        self.call(what, Request::ChangeMedia { name: name.into(), device_xml }).await
    }

    /// `None` when no domain has that name.
    pub async fn lookup(&self, name: &str) -> Result<Option<VmInfo>, LibvirtError> {
        let what = format!("looking up domain {name}");
        let raw: Option<RawVmInfo> = self.call(what.clone(), Request::Lookup { name: name.into() }).await?;
        raw.map(|r| vm_info(r, what)).transpose()
    }

    /// `None` when no domain has that UUID.
    pub async fn lookup_uuid(&self, uuid: &str) -> Result<Option<VmInfo>, LibvirtError> {
        let what = format!("looking up domain with UUID {uuid}");
        let raw: Option<RawVmInfo> = self.call(what.clone(), Request::LookupUuid { uuid: uuid.into() }).await?;
        raw.map(|r| vm_info(r, what)).transpose()
    }

    /// IPv4 addresses of a running domain. Empty while the guest has none yet.
    pub async fn addresses(&self, name: &str, source: AddressSource) -> Result<Vec<GuestAddress>, LibvirtError> {
        let what = format!("reading addresses of domain {name} ({source:?})");
        self.call(what, Request::Addresses { name: name.into(), source }).await
    }

    pub async fn network_exists(&self, network: &str) -> Result<bool, LibvirtError> {
        self.call(format!("looking up network {network}"), Request::NetworkExists { network: network.into() }).await
    }

    pub async fn host_info(&self) -> Result<HostInfo, LibvirtError> {
        self.call("reading host memory and CPUs".into(), Request::HostInfo).await
    }

    /// Names of all domains, defined or running.
    pub async fn domain_names(&self) -> Result<Vec<String>, LibvirtError> {
        self.call("listing domains".into(), Request::DomainNames).await
    }

    /// Define (persist) a network from XML; returns its UUID.
    pub async fn define_network(&self, xml: String) -> Result<String, LibvirtError> {
        self.call("defining network".into(), Request::NetworkDefine { xml }).await
    }

    /// Start a defined network (its bridge, dnsmasq and firewall rules). Running already is fine.
    pub async fn start_network(&self, name: &str) -> Result<(), LibvirtError> {
        self.call(format!("starting network {name}"), Request::NetworkStart { name: name.into() }).await
    }

    /// Stop a network: its bridge goes, guests attached to it lose their link. Stopped or gone is fine.
    pub async fn stop_network(&self, name: &str) -> Result<(), LibvirtError> {
        self.call(format!("stopping network {name}"), Request::NetworkStop { name: name.into() }).await
    }

    /// Remove a network's definition. Gone already is fine.
    pub async fn undefine_network(&self, name: &str) -> Result<(), LibvirtError> {
        self.call(format!("undefining network {name}"), Request::NetworkUndefine { name: name.into() }).await
    }

    /// Every network on the host.
    pub async fn networks(&self) -> Result<Vec<NetworkInfo>, LibvirtError> {
        let what = "listing networks".to_string();
        let raw: Vec<RawNetworkInfo> = self.call(what.clone(), Request::Networks).await?;
        raw.into_iter().map(|r| network_info(r, what.clone())).collect()
    }

    /// `None` when no network has that name.
    pub async fn lookup_network(&self, name: &str) -> Result<Option<NetworkInfo>, LibvirtError> {
        let what = format!("looking up network {name}");
        let raw: Option<RawNetworkInfo> = self.call(what.clone(), Request::NetworkLookup { name: name.into() }).await?;
        raw.map(|r| network_info(r, what)).transpose()
    }

    /// `None` when no network has that UUID.
    pub async fn lookup_network_uuid(&self, uuid: &str) -> Result<Option<NetworkInfo>, LibvirtError> {
        let what = format!("looking up network with UUID {uuid}");
        let raw: Option<RawNetworkInfo> =
            self.call(what.clone(), Request::NetworkLookupUuid { uuid: uuid.into() }).await?;
        raw.map(|r| network_info(r, what)).transpose()
    }

    /// The pool `name`, refreshed; `None` when the host has no such pool.
    pub async fn pool(&self, name: &str) -> Result<Option<Pool>, LibvirtError> {
        let what = format!("looking up storage pool {name}");
        let raw: Option<RawPool> = self.call(what.clone(), Request::Pool { pool: name.into() }).await?;
        raw.map(|r| pool(r, what)).transpose()
    }

    /// The active pool over directory `dir`, or else a transient dir pool named `name` made over it.
    /// `build` creates the directory when it is missing; without it, a missing directory is `None`.
    pub async fn pool_for_dir(&self, dir: &Path, name: &str, build: bool) -> Result<Option<Pool>, LibvirtError> {
        let what = format!("finding a storage pool over {}", dir.display());
        let dir = dir.to_string_lossy().into_owned();
        let request = Request::PoolForDir { dir, name: name.into(), build };
        let raw: Option<RawPool> = self.call(what.clone(), request).await?;
        raw.map(|r| pool(r, what)).transpose()
    }

    /// Create a volume in `pool`. A create the connection was lost under may have reached
    /// libvirtd: on the new connection, a volume of that name means it did.
    pub async fn create_volume(&self, pool: &str, spec: &VolumeSpec) -> Result<Volume, LibvirtError> {
        let what = format!("creating volume {} in pool {pool}", spec.name);
        let xml = spec.to_xml().map_err(|source| LibvirtError::VolumeXml { what: what.clone(), source })?;
        let before = self.current();
        let request = Request::VolCreate { pool: pool.into(), xml };
        match self.call::<RawVolume>(what.clone(), request).await {
            Ok(raw) => volume(raw, what),
            Err(e) if !Arc::ptr_eq(&before, &self.current()) => match self.volume(pool, &spec.name).await? {
                Some(made) => Ok(made),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// The volume `name` in `pool` (refreshed first); `None` when there is none.
    pub async fn volume(&self, pool: &str, name: &str) -> Result<Option<Volume>, LibvirtError> {
        let what = format!("looking up volume {name} in pool {pool}");
        let request = Request::VolLookup { pool: pool.into(), name: name.into() };
        let raw: Option<RawVolume> = self.call(what.clone(), request).await?;
        raw.map(|r| volume(r, what)).transpose()
    }

    /// The volume at `path` in whichever active pool holds it; `None` when none does.
    pub async fn volume_by_path(&self, path: &Path) -> Result<Option<Volume>, LibvirtError> {
        let what = format!("looking up the volume at {}", path.display());
        let request = Request::VolByPath { path: path.to_string_lossy().into_owned() };
        let raw: Option<RawVolume> = self.call(what.clone(), request).await?;
        raw.map(|r| volume(r, what)).transpose()
    }

    /// Delete a volume. Gone already is fine.
    pub async fn delete_volume(&self, pool: &str, name: &str) -> Result<(), LibvirtError> {
        let what = format!("deleting volume {name} in pool {pool}");
        self.call(what, Request::VolDelete { pool: pool.into(), name: name.into() }).await
    }

    /// Write `data` over the start of a volume (a libvirt upload stream).
    pub async fn upload_volume(&self, pool: &str, name: &str, data: &[u8]) -> Result<(), LibvirtError> {
        let what = format!("uploading {} bytes into volume {name} in pool {pool}", data.len());
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        self.call(what, Request::VolUpload { pool: pool.into(), name: name.into(), data }).await
    }

    /// The first `limit` bytes of a volume (all of a smaller one), through a download stream.
    pub async fn download_volume(&self, pool: &str, name: &str, limit: u64) -> Result<Vec<u8>, LibvirtError> {
        let what = format!("downloading volume {name} in pool {pool}");
        let request = Request::VolDownload { pool: pool.into(), name: name.into(), limit };
        let data: String = self.call(what.clone(), request).await?;
        base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| LibvirtError::Helper {
            what,
            helper: self.inner.helper_path.clone(),
            reason: format!("unexpected reply: {e}"),
        })
    }

    /// Stream the local file at `path` into the volume `name` of `pool`, from its start (the
    /// helper reads the file: it runs where the provider does). Progress goes to the log.
    pub async fn upload_file(&self, pool: &str, name: &str, path: &Path) -> Result<UploadReport, LibvirtError> {
        let what = format!("uploading {} into volume {name} in pool {pool}", path.display());
        let request =
            Request::VolUploadFile { pool: pool.into(), name: name.into(), path: path.to_string_lossy().into_owned() };
        self.call(what, request).await
    }

    /// SHA-256 (hex) of the first `length` bytes of a volume, read back through libvirt.
    pub async fn volume_sha256(&self, pool: &str, name: &str, length: u64) -> Result<String, LibvirtError> {
        let what = format!("reading back volume {name} in pool {pool}");
        self.call(what, Request::VolSha256 { pool: pool.into(), name: name.into(), length }).await
    }

    fn current(&self) -> Arc<Helper> {
        self.inner.helper.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `request` on the current helper; if it fails because the connection is gone, once more on
    /// a new one (or, for a request that is not safe to repeat, the error after reconnecting).
    async fn call<T: DeserializeOwned>(&self, what: String, request: Request) -> Result<T, LibvirtError> {
        let helper = self.current();
        let first = ask(&helper, what.clone(), request.clone()).await;
        match first {
            Err(LibvirtError::Helper { .. } | LibvirtError::Call { .. }) if !is_alive(&helper).await => {
                let fresh = self.reconnect(&helper, &what).await?;
                if request.safe_to_repeat() { ask(&fresh, what, request).await } else { first }
            }
            done => done,
        }
    }

    /// A new helper and connection in place of `dead` (unless another call made one already).
    async fn reconnect(&self, dead: &Arc<Helper>, what: &str) -> Result<Arc<Helper>, LibvirtError> {
        let _one = self.inner.reconnecting.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, dead) {
            return Ok(current);
        }
        // A restarting libvirtd is back within seconds: wait for it rather than fail the create
        // (and its rollback) in the middle.
        let started = std::time::Instant::now();
        let fresh = loop {
            match open(&self.inner.helper_path, &self.inner.uri).await {
                Ok(fresh) => break Arc::new(fresh),
                Err(LibvirtError::Unreachable { .. }) if started.elapsed() < RECONNECT_WAIT => {
                    tokio::time::sleep(RECONNECT_POLL).await;
                }
                Err(LibvirtError::Unreachable { uri, message, .. }) => {
                    let what = format!("{what}: the connection was lost, and for {RECONNECT_WAIT:?} reconnecting");
                    return Err(LibvirtError::Unreachable { what, uri, message });
                }
                Err(other) => return Err(other),
            }
        };
        *self.inner.helper.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }
}

/// A new helper, connected to `uri`.
async fn open(helper: &Path, uri: &str) -> Result<Helper, LibvirtError> {
    let what = format!("connecting to libvirt at {uri}");
    let process = Helper::spawn(helper).map_err(|reason| LibvirtError::Helper {
        what: what.clone(),
        helper: helper.to_path_buf(),
        reason,
    })?;
    match ask::<()>(&process, what.clone(), Request::Connect { uri: uri.to_string() }).await {
        Err(LibvirtError::Call { message, .. }) => {
            Err(LibvirtError::Unreachable { what, uri: uri.to_string(), message })
        }
        other => other.map(|()| process),
    }
}

async fn is_alive(helper: &Helper) -> bool {
    ask(helper, "checking the libvirt connection".into(), Request::IsAlive).await.unwrap_or(false)
}

async fn ask<T: DeserializeOwned>(helper: &Helper, what: String, request: Request) -> Result<T, LibvirtError> {
    let helper_error =
        |what: String, reason: String| LibvirtError::Helper { what, helper: helper.path.clone(), reason };
    match helper.ask(request).await {
        Ok(Reply::Ok(value)) => {
            serde_json::from_value(value).map_err(|e| helper_error(what, format!("unexpected reply: {e}")))
        }
        Ok(Reply::Err(message)) => Err(LibvirtError::Call { what, message }),
        Err(reason) => Err(helper_error(what, reason)),
    }
}

fn vm_info(raw: RawVmInfo, what: String) -> Result<VmInfo, LibvirtError> {
    let summary = DomainSummary::parse(&raw.xml).map_err(|source| LibvirtError::Xml { what, source })?;
    Ok(VmInfo { state: raw.state, autostart: raw.autostart, summary })
}

fn network_info(raw: RawNetworkInfo, what: String) -> Result<NetworkInfo, LibvirtError> {
    let summary = NetworkSummary::parse(&raw.xml).map_err(|source| LibvirtError::NetworkXml { what, source })?;
    Ok(NetworkInfo { active: raw.active, summary })
}

fn pool(raw: RawPool, what: String) -> Result<Pool, LibvirtError> {
    let summary = PoolSummary::parse(&raw.xml).map_err(|source| LibvirtError::VolumeXml { what, source })?;
    Ok(Pool { summary, persistent: raw.persistent })
}

fn volume(raw: RawVolume, what: String) -> Result<Volume, LibvirtError> {
    let summary = VolumeSummary::parse(&raw.xml).map_err(|source| LibvirtError::VolumeXml { what, source })?;
    Ok(Volume { pool: raw.pool, summary })
}

/// The running helper: one writer task owns its stdin (so a cancelled call never leaves half a
/// line behind), one reader task hands each reply to the call waiting for its id.
struct Helper {
    path: PathBuf,
    lines: mpsc::UnboundedSender<Vec<u8>>,
    calls: Arc<Mutex<Calls>>,
    next_id: AtomicU64,
    /// Killed when the last `Libvirt` clone goes (`kill_on_drop`).
    child: tokio::process::Child,
}

#[derive(Default)]
struct Calls {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once the helper's output ended: why no more replies will come.
    ended: Option<String>,
}

impl Helper {
    fn spawn(path: &Path) -> Result<Self, String> {
        let mut child = tokio::process::Command::new(path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            // Out of the terminal's process group: Ctrl-C reaches Terraform, which asks the
            // provider to stop; the helper must live on to run the rollback's libvirt calls.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                format!("cannot start it ({e}); it ships in the provider's zip, next to the provider binary")
            })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("started without pipes".into());
        };
        let (lines, mut to_write) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(line) = to_write.recv().await {
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    break; // the reader sees the helper end and fails the waiting calls
                }
            }
        });
        let calls = Arc::new(Mutex::new(Calls::default()));
        let replies = calls.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            let ended = loop {
                match reader.next_line().await {
                    Ok(Some(line)) => match serde_json::from_str::<Envelope<Reply>>(&line) {
                        Ok(reply) => {
                            let waiting = replies.lock().ok().and_then(|mut c| c.waiting.remove(&reply.id));
                            // A caller that gave up (cancelled) is no longer listening: fine.
                            if let Some(tx) = waiting {
                                let _ = tx.send(reply.body);
                            }
                        }
                        Err(e) => break format!("it wrote something that is not a reply ({e})"),
                    },
                    Ok(None) => break "it exited".to_string(),
                    Err(e) => break format!("reading its output failed: {e}"),
                }
            };
            if let Ok(mut c) = replies.lock() {
                c.ended = Some(ended);
                c.waiting.clear(); // dropping the senders wakes every waiting call
            }
        });
        Ok(Helper { path: path.to_path_buf(), lines, calls, next_id: AtomicU64::new(1), child })
    }

    async fn ask(&self, request: Request) -> Result<Reply, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut line = serde_json::to_vec(&Envelope { id, body: request }).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let (tx, rx) = oneshot::channel();
        {
            let mut calls = self.calls.lock().map_err(|_| "its reply table is poisoned".to_string())?;
            if let Some(ended) = &calls.ended {
                return Err(ended.clone());
            }
            calls.waiting.insert(id, tx);
        }
        if self.lines.send(line).is_err() {
            return Err(self.ended());
        }
        rx.await.map_err(|_| self.ended())
    }

    fn ended(&self) -> String {
        self.calls.lock().ok().and_then(|c| c.ended.clone()).unwrap_or_else(|| "it exited".into())
    }
}
