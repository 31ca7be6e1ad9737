//! libvirt through the `virt` crate. `virt` is blocking (C library calls over RPC): every call
//! runs on tokio's blocking pool so the gRPC server keeps answering meanwhile.

use std::net::Ipv4Addr;

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;
use virt::error::ErrorNumber;
use virt::sys;

use super::domain_xml::{DomainSummary, DomainXmlError};

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("{what}: {source}")]
    Call { what: String, source: virt::error::Error },
    #[error("{what}: {source}")]
    Xml { what: String, source: DomainXmlError },
    #[error("{what}: the blocking task failed: {reason}")]
    Task { what: String, reason: String },
}

impl LibvirtError {
    fn call(what: impl Into<String>) -> impl FnOnce(virt::error::Error) -> Self {
        let what = what.into();
        move |source| LibvirtError::Call { what, source }
    }
}

fn is_no_domain(e: &virt::error::Error) -> bool {
    e.code() == Enum::Known(ErrorNumber::NoDomain)
}

fn is_operation_invalid(e: &virt::error::Error) -> bool {
    e.code() == Enum::Known(ErrorNumber::OperationInvalid)
}

/// The life-cycle state of a domain, as `lab_vm.state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    Running,
    ShutOff,
    ShuttingDown,
    Paused,
    Crashed,
    Other,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Running => "running",
            VmState::ShutOff => "shutoff",
            VmState::ShuttingDown => "shutdown",
            VmState::Paused => "paused",
            VmState::Crashed => "crashed",
            VmState::Other => "other",
        }
    }
    fn from_virt(s: Enum<DomainState, sys::virDomainState>) -> Self {
        match s {
            Enum::Known(DomainState::Running) | Enum::Known(DomainState::Blocked) => VmState::Running,
            Enum::Known(DomainState::Shutoff) => VmState::ShutOff,
            Enum::Known(DomainState::Shutdown) => VmState::ShuttingDown,
            Enum::Known(DomainState::Paused) | Enum::Known(DomainState::PMSuspended) => VmState::Paused,
            Enum::Known(DomainState::Crashed) => VmState::Crashed,
            _ => VmState::Other,
        }
    }
}

/// A defined domain as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    pub state: VmState,
    pub autostart: bool,
    /// Parsed live XML (inactive XML when shut off).
    pub summary: DomainSummary,
}

/// Where guest addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// The libvirt network's dnsmasq leases (virNetworkGetDHCPLeases under the hood).
    Lease,
    /// qemu-guest-agent inside the guest.
    Agent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAddress {
    pub mac: Option<String>,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostInfo {
    pub free_memory_bytes: u64,
    pub total_memory_kib: u64,
    pub cpus: u32,
}

/// One connection, cloned cheaply (libvirt refcounts it); safe to share between threads.
#[derive(Clone)]
pub struct Libvirt {
    conn: Connect,
    uri: String,
}

impl Libvirt {
    pub async fn connect(uri: &str) -> Result<Self, LibvirtError> {
        let owned = uri.to_string();
        let conn = blocking(format!("connecting to libvirt at {uri}"), move || {
            // libvirt prints every error to stderr by default; ours are returned and reported.
            virt::error::clear_error_callback();
            Connect::open(Some(&owned)).map_err(LibvirtError::call(format!("connecting to libvirt at {owned}")))
        })
        .await?;
        Ok(Libvirt { conn, uri: uri.to_string() })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether the connection still answers (libvirtd restarts drop it).
    pub async fn is_alive(&self) -> bool {
        let conn = self.conn.clone();
        blocking("checking the libvirt connection", move || Ok(conn.is_alive().unwrap_or(false))).await.unwrap_or(false)
    }

    /// Run `f` with this connection on the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        what: String,
        f: impl FnOnce(&Connect, &str) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let conn = self.conn.clone();
        let w = what.clone();
        blocking(what, move || f(&conn, &w)).await
    }

    /// Define (persist) a domain from XML; returns its UUID.
    pub async fn define(&self, xml: String) -> Result<String, LibvirtError> {
        self.with_conn("defining domain".into(), move |conn, what| {
            let dom = conn.define_domain_xml(&xml).map_err(LibvirtError::call(what))?;
            dom.uuid_string().map_err(LibvirtError::call(what))
        })
        .await
    }

    pub async fn start(&self, name: &str) -> Result<(), LibvirtError> {
        self.on_domain(format!("starting domain {name}"), name, |dom, what| {
            dom.create().map(|_| ()).map_err(LibvirtError::call(what))
        })
        .await
    }

    /// ACPI power button; returns at once (the guest shuts down in its own time).
    pub async fn shutdown(&self, name: &str) -> Result<(), LibvirtError> {
        self.on_domain(format!("shutting down domain {name}"), name, |dom, what| match dom.shutdown() {
            Ok(()) => Ok(()),
            Err(e) if is_operation_invalid(&e) => Ok(()), // not running
            Err(e) => Err(LibvirtError::call(what)(e)),
        })
        .await
    }

    /// Hard power-off. Not running, or gone, is fine.
    pub async fn destroy(&self, name: &str) -> Result<(), LibvirtError> {
        let name = name.to_string();
        self.with_conn(format!("destroying domain {name}"), move |conn, what| {
            let dom = match conn.lookup_domain_by_name(&name) {
                Ok(d) => d,
                Err(e) if is_no_domain(&e) => return Ok(()),
                Err(e) => return Err(LibvirtError::call(what)(e)),
            };
            match dom.destroy() {
                Ok(()) => Ok(()),
                Err(e) if is_operation_invalid(&e) || is_no_domain(&e) => Ok(()),
                Err(e) => Err(LibvirtError::call(what)(e)),
            }
        })
        .await
    }

    /// Remove the definition, with its NVRAM and managed save. Gone already is fine.
    pub async fn undefine(&self, name: &str) -> Result<(), LibvirtError> {
        let name = name.to_string();
        self.with_conn(format!("undefining domain {name}"), move |conn, what| {
            let dom = match conn.lookup_domain_by_name(&name) {
                Ok(d) => d,
                Err(e) if is_no_domain(&e) => return Ok(()),
                Err(e) => return Err(LibvirtError::call(what)(e)),
            };
            let flags = sys::VIR_DOMAIN_UNDEFINE_NVRAM | sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
            match dom.undefine_flags(flags) {
                Ok(()) => Ok(()),
                Err(e) if is_no_domain(&e) => Ok(()),
                Err(e) => Err(LibvirtError::call(what)(e)),
            }
        })
        .await
    }

    pub async fn set_autostart(&self, name: &str, on: bool) -> Result<(), LibvirtError> {
        self.on_domain(format!("setting autostart={on} on domain {name}"), name, move |dom, what| {
            dom.set_autostart(on).map(|_| ()).map_err(LibvirtError::call(what))
        })
        .await
    }

    /// `None` when no domain has that name.
    pub async fn lookup(&self, name: &str) -> Result<Option<VmInfo>, LibvirtError> {
        let name = name.to_string();
        self.with_conn(format!("looking up domain {name}"), move |conn, what| match conn.lookup_domain_by_name(&name) {
            Ok(dom) => vm_info(&dom, what).map(Some),
            Err(e) if is_no_domain(&e) => Ok(None),
            Err(e) => Err(LibvirtError::call(what)(e)),
        })
        .await
    }

    /// `None` when no domain has that UUID.
    pub async fn lookup_uuid(&self, uuid: &str) -> Result<Option<VmInfo>, LibvirtError> {
        let uuid = uuid.to_string();
        self.with_conn(format!("looking up domain with UUID {uuid}"), move |conn, what| {
            match conn.lookup_domain_by_uuid_string(&uuid) {
                Ok(dom) => vm_info(&dom, what).map(Some),
                Err(e) if is_no_domain(&e) => Ok(None),
                Err(e) => Err(LibvirtError::call(what)(e)),
            }
        })
        .await
    }

    /// IPv4 addresses of a running domain. Empty while the guest has none yet.
    pub async fn addresses(&self, name: &str, source: AddressSource) -> Result<Vec<GuestAddress>, LibvirtError> {
        let src = match source {
            AddressSource::Lease => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            AddressSource::Agent => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
        };
        self.on_domain(format!("reading addresses of domain {name} ({source:?})"), name, move |dom, what| {
            let ifaces = dom.interface_addresses(src, 0).map_err(LibvirtError::call(what))?;
            Ok(ifaces
                .into_iter()
                .flat_map(|iface| {
                    let mac = iface.hwaddr.clone();
                    iface.addrs.into_iter().filter_map(move |a| {
                        a.addr.parse::<Ipv4Addr>().ok().map(|ip| GuestAddress { mac: mac.clone(), ip })
                    })
                })
                .filter(|a| !a.ip.is_loopback())
                .collect())
        })
        .await
    }

    pub async fn network_exists(&self, network: &str) -> Result<bool, LibvirtError> {
        let network = network.to_string();
        self.with_conn(format!("looking up network {network}"), move |conn, what| {
            match conn.lookup_network_by_name(&network) {
                Ok(_) => Ok(true),
                Err(e) if e.code() == Enum::Known(ErrorNumber::NoNetwork) => Ok(false),
                Err(e) => Err(LibvirtError::call(what)(e)),
            }
        })
        .await
    }

    pub async fn host_info(&self) -> Result<HostInfo, LibvirtError> {
        self.with_conn("reading host memory and CPUs".into(), |conn, what| {
            let node = conn.node_info().map_err(LibvirtError::call(what))?;
            let free = conn.free_memory().map_err(LibvirtError::call(what))?;
            Ok(HostInfo { free_memory_bytes: free, total_memory_kib: node.memory, cpus: node.cpus })
        })
        .await
    }

    /// Names of all domains, defined or running.
    pub async fn domain_names(&self) -> Result<Vec<String>, LibvirtError> {
        self.with_conn("listing domains".into(), |conn, what| {
            let doms = conn.list_all_domains(0).map_err(LibvirtError::call(what))?;
            doms.iter().map(|d| d.name().map_err(LibvirtError::call(what))).collect()
        })
        .await
    }

    async fn on_domain<T: Send + 'static>(
        &self,
        what: String,
        name: &str,
        f: impl FnOnce(&Domain, &str) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let name = name.to_string();
        self.with_conn(what, move |conn, what| {
            let dom = conn.lookup_domain_by_name(&name).map_err(LibvirtError::call(what))?;
            f(&dom, what)
        })
        .await
    }
}

fn vm_info(dom: &Domain, what: &str) -> Result<VmInfo, LibvirtError> {
    let (state, _reason) = dom.state().map_err(LibvirtError::call(what))?;
    let autostart = dom.autostart().map_err(LibvirtError::call(what))?;
    let xml = dom.xml_desc(0).map_err(LibvirtError::call(what))?;
    let summary = DomainSummary::parse(&xml).map_err(|source| LibvirtError::Xml { what: what.to_string(), source })?;
    Ok(VmInfo { state: VmState::from_virt(state), autostart, summary })
}

async fn blocking<T: Send + 'static>(
    what: impl Into<String>,
    f: impl FnOnce() -> Result<T, LibvirtError> + Send + 'static,
) -> Result<T, LibvirtError> {
    let what = what.into();
    tokio::task::spawn_blocking(f).await.map_err(|e| LibvirtError::Task { what, reason: e.to_string() })?
}
