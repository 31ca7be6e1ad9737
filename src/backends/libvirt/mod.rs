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

use super::domain_xml::{DomainSummary, DomainXmlError};
pub use wire::{AddressSource, GuestAddress, HostInfo, VmState};
use wire::{Envelope, RawVmInfo, Reply, Request};

/// File name of the helper binary; it lives in the provider binary's directory.
pub const HELPER_NAME: &str = "terraform-provider-lab-libvirt";

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("{what}: {message}")]
    Call { what: String, message: String },
    #[error("{what}: {source}")]
    Xml { what: String, source: DomainXmlError },
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

/// One libvirt connection (one helper process), cloned cheaply; safe to share between tasks.
/// The helper goes away with the last clone.
#[derive(Clone)]
pub struct Libvirt {
    helper: Arc<Helper>,
    uri: String,
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
        let what = format!("connecting to libvirt at {uri}");
        let process = Helper::spawn(helper).map_err(|reason| LibvirtError::Helper {
            what: what.clone(),
            helper: helper.to_path_buf(),
            reason,
        })?;
        let libvirt = Libvirt { helper: Arc::new(process), uri: uri.to_string() };
        libvirt.call::<()>(what, Request::Connect { uri: uri.to_string() }).await?;
        Ok(libvirt)
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The helper's process id (for tests and logs); `None` once it has been reaped.
    pub fn helper_pid(&self) -> Option<u32> {
        self.helper.child.id()
    }

    /// Whether the connection still answers (libvirtd restarts drop it; so does a dead helper).
    pub async fn is_alive(&self) -> bool {
        self.call("checking the libvirt connection".into(), Request::IsAlive).await.unwrap_or(false)
    }

    /// Define (persist) a domain from XML; returns its UUID.
    pub async fn define(&self, xml: String) -> Result<String, LibvirtError> {
        self.call("defining domain".into(), Request::Define { xml }).await
    }

    pub async fn start(&self, name: &str) -> Result<(), LibvirtError> {
        self.call(format!("starting domain {name}"), Request::Start { name: name.into() }).await
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

    async fn call<T: DeserializeOwned>(&self, what: String, request: Request) -> Result<T, LibvirtError> {
        let helper_error =
            |what: String, reason: String| LibvirtError::Helper { what, helper: self.helper.path.clone(), reason };
        match self.helper.ask(request).await {
            Ok(Reply::Ok(value)) => {
                serde_json::from_value(value).map_err(|e| helper_error(what, format!("unexpected reply: {e}")))
            }
            Ok(Reply::Err(message)) => Err(LibvirtError::Call { what, message }),
            Err(reason) => Err(helper_error(what, reason)),
        }
    }
}

fn vm_info(raw: RawVmInfo, what: String) -> Result<VmInfo, LibvirtError> {
    let summary = DomainSummary::parse(&raw.xml).map_err(|source| LibvirtError::Xml { what, source })?;
    Ok(VmInfo { state: raw.state, autostart: raw.autostart, summary })
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
