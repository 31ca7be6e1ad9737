//! The helper side: libvirt through the `virt` crate, in the separate process
//! `terraform-provider-lab-libvirt` (src/bin). Only that binary links libvirt; mod.rs says why.
//!
//! `virt` is blocking (C library calls over RPC), so every request runs on a thread of its own and
//! replies are written as they finish. End of input (the provider exited or dropped its client)
//! ends the helper.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, OnceLock};

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;
use virt::error::ErrorNumber;
use virt::network::Network;
use virt::sys;

use super::wire::{
    AddressSource, Envelope, GuestAddress, HostInfo, RawNetworkInfo, RawVmInfo, Reply, Request, VmState,
};

type Result<T> = std::result::Result<T, String>;

/// Answer requests from `input` on `output` until `input` ends.
pub fn serve(input: impl BufRead, output: impl Write + Send + 'static) -> std::io::Result<()> {
    // libvirt prints every error to stderr by default; ours travel back in the replies.
    virt::error::clear_error_callback();
    let output = Arc::new(Mutex::new(output));
    let conn: Arc<OnceLock<Connect>> = Arc::new(OnceLock::new());
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Envelope<Request> = match serde_json::from_str(&line) {
            Ok(r) => r,
            // Without an id there is nobody to answer: the provider and helper are out of step.
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        };
        let (output, conn) = (output.clone(), conn.clone());
        let work = move || {
            let body = match handle(&conn, request.body) {
                Ok(value) => Reply::Ok(value),
                Err(message) => Reply::Err(message),
            };
            let reply = Envelope { id: request.id, body };
            if let Ok(mut out) = output.lock() {
                // Nobody left to read means the provider is gone: nothing to do about it.
                let _ = serde_json::to_writer(&mut *out, &reply);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        };
        std::thread::Builder::new().name("libvirt-call".into()).spawn(work)?;
    }
    Ok(())
}

fn handle(conn: &OnceLock<Connect>, request: Request) -> Result<serde_json::Value> {
    if let Request::Connect { uri } = &request
        && conn.get().is_none()
    {
        let opened = Connect::open(Some(uri)).map_err(text)?;
        return match conn.set(opened) {
            Ok(()) => json(()),
            Err(_) => Err("this helper is already connected".into()),
        };
    }
    let conn = conn.get().ok_or("the first request must be connect")?;
    match request {
        Request::Connect { .. } => Err("this helper is already connected".into()),
        Request::IsAlive => json(conn.is_alive().unwrap_or(false)),
        Request::Define { xml } => {
            let dom = conn.define_domain_xml(&xml).map_err(text)?;
            json(dom.uuid_string().map_err(text)?)
        }
        Request::Start { name } => json(domain(conn, &name)?.create().map_err(text)?),
        // ACPI power button; returns at once. Not running is fine.
        Request::Shutdown { name } => match domain(conn, &name)?.shutdown() {
            Err(e) if !is_operation_invalid(&e) => Err(text(e)),
            _ => json(()),
        },
        // Hard power-off. Not running, or gone, is fine.
        Request::Destroy { name } => {
            let Some(dom) = domain_if_any(conn, &name)? else { return json(()) };
            match dom.destroy() {
                Err(e) if !(is_operation_invalid(&e) || is_no_domain(&e)) => Err(text(e)),
                _ => json(()),
            }
        }
        // Remove the definition, with its NVRAM and managed save. Gone already is fine.
        Request::Undefine { name } => {
            let Some(dom) = domain_if_any(conn, &name)? else { return json(()) };
            match dom.undefine_flags(sys::VIR_DOMAIN_UNDEFINE_NVRAM | sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE) {
                Err(e) if !is_no_domain(&e) => Err(text(e)),
                _ => json(()),
            }
        }
        Request::SetAutostart { name, on } => json(domain(conn, &name)?.set_autostart(on).map_err(text)?),
        Request::ChangeMedia { name, device_xml } => json(change_media(&domain(conn, &name)?, &device_xml)?),
        Request::Lookup { name } => json(domain_if_any(conn, &name)?.map(|d| vm_info(&d)).transpose()?),
        Request::LookupUuid { uuid } => {
            let dom = match conn.lookup_domain_by_uuid_string(&uuid) {
                Ok(d) => Some(d),
                Err(e) if is_no_domain(&e) => None,
                Err(e) => return Err(text(e)),
            };
            json(dom.map(|d| vm_info(&d)).transpose()?)
        }
        Request::Addresses { name, source } => json(addresses(&domain(conn, &name)?, source)?),
        Request::NetworkExists { network } => match conn.lookup_network_by_name(&network) {
            Ok(_) => json(true),
            Err(e) if is_no_network(&e) => json(false),
            Err(e) => Err(text(e)),
        },
        Request::HostInfo => {
            let node = conn.node_info().map_err(text)?;
            let free = conn.free_memory().map_err(text)?;
            let available = available_memory_bytes(conn)?.unwrap_or(free);
            json(HostInfo {
                free_memory_bytes: free,
                available_memory_bytes: available,
                total_memory_kib: node.memory,
                cpus: node.cpus,
            })
        }
        Request::DomainNames => {
            let doms = conn.list_all_domains(0).map_err(text)?;
            json(doms.iter().map(|d| d.name().map_err(text)).collect::<Result<Vec<_>>>()?)
        }
        Request::NetworkDefine { xml } => {
            json(conn.define_network_xml(&xml).map_err(text)?.uuid_string().map_err(text)?)
        }
        Request::NetworkStart { name } => {
            let net = conn.lookup_network_by_name(&name).map_err(text)?;
            match net.is_active().map_err(text)? {
                true => json(()),
                false => json(net.create().map_err(text)?),
            }
        }
        Request::NetworkStop { name } => {
            let Some(net) = network_if_any(conn, &name)? else { return json(()) };
            match net.destroy() {
                Err(e) if !(is_operation_invalid(&e) || is_no_network(&e)) => Err(text(e)),
                _ => json(()),
            }
        }
        Request::NetworkUndefine { name } => {
            let Some(net) = network_if_any(conn, &name)? else { return json(()) };
            match net.undefine() {
                Err(e) if !is_no_network(&e) => Err(text(e)),
                _ => json(()),
            }
        }
        Request::NetworkLookup { name } => json(network_if_any(conn, &name)?.map(|n| network_info(&n)).transpose()?),
        Request::NetworkLookupUuid { uuid } => {
            let net = match conn.lookup_network_by_uuid_string(&uuid) {
                Ok(n) => Some(n),
                Err(e) if is_no_network(&e) => None,
                Err(e) => return Err(text(e)),
            };
            json(net.map(|n| network_info(&n)).transpose()?)
        }
    }
}

fn is_no_network(e: &virt::error::Error) -> bool {
    e.code() == Enum::Known(ErrorNumber::NoNetwork)
}

fn network_if_any(conn: &Connect, name: &str) -> Result<Option<Network>> {
    match conn.lookup_network_by_name(name) {
        Ok(n) => Ok(Some(n)),
        Err(e) if is_no_network(&e) => Ok(None),
        Err(e) => Err(text(e)),
    }
}

fn network_info(net: &Network) -> Result<RawNetworkInfo> {
    Ok(RawNetworkInfo { active: net.is_active().map_err(text)?, xml: net.xml_desc(0).map_err(text)? })
}

fn json(value: impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

fn text(e: virt::error::Error) -> String {
    e.to_string()
}

fn is_no_domain(e: &virt::error::Error) -> bool {
    e.code() == Enum::Known(ErrorNumber::NoDomain)
}

fn is_operation_invalid(e: &virt::error::Error) -> bool {
    e.code() == Enum::Known(ErrorNumber::OperationInvalid)
}

fn domain(conn: &Connect, name: &str) -> Result<Domain> {
    conn.lookup_domain_by_name(name).map_err(text)
}

fn domain_if_any(conn: &Connect, name: &str) -> Result<Option<Domain>> {
    match conn.lookup_domain_by_name(name) {
        Ok(d) => Ok(Some(d)),
        Err(e) if is_no_domain(&e) => Ok(None),
        Err(e) => Err(text(e)),
    }
}

/// A media change of a drive that exists: in the running guest too when the domain runs (qemu's
/// tray opens and closes, the guest sees a media change event, no restart), and always in the
/// persistent definition. FORCE: a guest that locked the tray (a mounted disc) does not block it.
fn change_media(dom: &Domain, device_xml: &str) -> Result<()> {
    let mut flags = sys::VIR_DOMAIN_AFFECT_CONFIG | sys::VIR_DOMAIN_DEVICE_MODIFY_FORCE;
    if dom.is_active().map_err(text)? {
        flags |= sys::VIR_DOMAIN_AFFECT_LIVE;
    }
    dom.update_device_flags(device_xml, flags).map_err(text)?;
    Ok(())
}

fn vm_info(dom: &Domain) -> Result<RawVmInfo> {
    let (state, _reason) = dom.state().map_err(text)?;
    Ok(RawVmInfo {
        state: vm_state(state),
        autostart: dom.autostart().map_err(text)?,
        xml: dom.xml_desc(0).map_err(text)?,
    })
}

/// Memory a new guest can have: free memory plus buffers and page cache, which the kernel hands
/// over on demand. `virNodeGetFreeMemory` (all the `virt` crate wraps) is `MemFree` alone: a few
/// hundred MiB on a machine with 20 GiB of cache after a build. `None` when the driver keeps no
/// such statistics (libvirt's test driver).
fn available_memory_bytes(conn: &Connect) -> Result<Option<u64>> {
    let stats = |params: *mut sys::virNodeMemoryStats, n: &mut std::os::raw::c_int| {
        // SAFETY: the connection is open for the helper's life; `params` is null (libvirt only
        // writes the count) or points to `*n` writable entries.
        unsafe { sys::virNodeGetMemoryStats(conn.as_ptr(), sys::VIR_NODE_MEMORY_STATS_ALL_CELLS, params, n, 0) }
    };
    let mut n = 0;
    if stats(std::ptr::null_mut(), &mut n) < 0 {
        let e = virt::error::Error::last_error();
        return if e.code() == Enum::Known(ErrorNumber::NoSupport) { Ok(None) } else { Err(text(e)) };
    }
    let mut params = vec![sys::virNodeMemoryStats { field: [0; 80], value: 0 }; usize::try_from(n).unwrap_or(0)];
    if stats(params.as_mut_ptr(), &mut n) < 0 {
        return Err(text(virt::error::Error::last_error()));
    }
    let reclaimable =
        [sys::VIR_NODE_MEMORY_STATS_FREE, sys::VIR_NODE_MEMORY_STATS_BUFFERS, sys::VIR_NODE_MEMORY_STATS_CACHED];
    let kib: u64 = params
        .iter()
        .take(usize::try_from(n).unwrap_or(0))
        .filter(|p| {
            // SAFETY: libvirt NUL-terminates each field name within its 80 bytes.
            let name = unsafe { std::ffi::CStr::from_ptr(p.field.as_ptr()) };
            reclaimable.contains(&name)
        })
        .map(|p| p.value)
        .sum();
    Ok(Some(kib * 1024))
}

fn vm_state(s: Enum<DomainState, sys::virDomainState>) -> VmState {
    match s {
        Enum::Known(DomainState::Running) | Enum::Known(DomainState::Blocked) => VmState::Running,
        Enum::Known(DomainState::Shutoff) => VmState::ShutOff,
        Enum::Known(DomainState::Shutdown) => VmState::ShuttingDown,
        Enum::Known(DomainState::Paused) | Enum::Known(DomainState::PMSuspended) => VmState::Paused,
        Enum::Known(DomainState::Crashed) => VmState::Crashed,
        _ => VmState::Other,
    }
}

/// IPv4 addresses of a running domain. Empty while the guest has none yet.
fn addresses(dom: &Domain, source: AddressSource) -> Result<Vec<GuestAddress>> {
    let src = match source {
        AddressSource::Lease => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
        AddressSource::Agent => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    };
    let ifaces = dom.interface_addresses(src, 0).map_err(text)?;
    Ok(ifaces
        .into_iter()
        .flat_map(|iface| {
            let mac = iface.hwaddr;
            iface.addrs.into_iter().filter_map(move |a| {
                a.addr.parse::<std::net::Ipv4Addr>().ok().map(|ip| GuestAddress { mac: mac.clone(), ip })
            })
        })
        .filter(|a| !a.ip.is_loopback())
        .collect())
}
