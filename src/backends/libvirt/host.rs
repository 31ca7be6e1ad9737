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
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;
use virt::sys;

use base64::Engine;

use super::wire::{
    AddressSource, Envelope, GuestAddress, HostInfo, RawNetworkInfo, RawPool, RawVmInfo, RawVolume, Reply, Request,
    UploadReport, VmState,
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
        Request::Networks => {
            let nets = conn.list_all_networks(0).map_err(text)?;
            json(nets.iter().map(network_info).collect::<Result<Vec<_>>>()?)
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
        Request::Pool { pool } => match conn.lookup_storage_pool_by_name(&pool) {
            Ok(p) => {
                refresh(&p);
                json(Some(raw_pool(&p)?))
            }
            Err(e) if e.code() == Enum::Known(ErrorNumber::NoStoragePool) => json(None::<RawPool>),
            Err(e) => Err(text(e)),
        },
        Request::PoolForDir { dir, name, build } => {
            json(pool_for_dir(conn, &dir, &name, build)?.map(|p| raw_pool(&p)).transpose()?)
        }
        Request::VolCreate { pool, xml } => {
            let pool = active_pool(conn, &pool)?;
            let vol = StorageVol::create_xml(&pool, &xml, 0).map_err(text)?;
            json(raw_volume(&pool, &vol)?)
        }
        Request::VolLookup { pool, name } => {
            let pool = active_pool(conn, &pool)?;
            refresh(&pool);
            json(volume_if_any(&pool, &name)?.map(|v| raw_volume(&pool, &v)).transpose()?)
        }
        Request::VolByPath { path } => match conn.lookup_storage_vol_by_path(&path) {
            Ok(vol) => json(Some(raw_volume(&vol.lookup_storage_pool().map_err(text)?, &vol)?)),
            Err(e) if e.code() == Enum::Known(ErrorNumber::NoStorageVolume) => json(None::<RawVolume>),
            Err(e) => Err(text(e)),
        },
        Request::VolDelete { pool, name } => {
            let pool = active_pool(conn, &pool)?;
            refresh(&pool);
            let Some(vol) = volume_if_any(&pool, &name)? else { return json(()) };
            match vol.delete(sys::VIR_STORAGE_VOL_DELETE_NORMAL) {
                Err(e) if e.code() != Enum::Known(ErrorNumber::NoStorageVolume) => Err(text(e)),
                _ => json(()),
            }
        }
        Request::VolUpload { pool, name, data } => {
            let data = base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| e.to_string())?;
            let pool = active_pool(conn, &pool)?;
            let vol = pool.lookup_storage_vol_by_name(&name).map_err(text)?;
            json(upload(conn, &vol, &data)?)
        }
        Request::VolUploadFile { pool, name, path } => {
            let pool = active_pool(conn, &pool)?;
            let vol = pool.lookup_storage_vol_by_name(&name).map_err(text)?;
            json(upload_file(conn, &vol, &name, std::path::Path::new(&path))?)
        }
        Request::VolSha256 { pool, name, length } => {
            let pool = active_pool(conn, &pool)?;
            let vol = pool.lookup_storage_vol_by_name(&name).map_err(text)?;
            json(sha256_of(conn, &vol, length)?)
        }
        Request::VolDownload { pool, name, limit } => {
            let pool = active_pool(conn, &pool)?;
            let vol = pool.lookup_storage_vol_by_name(&name).map_err(text)?;
            json(base64::engine::general_purpose::STANDARD.encode(download(conn, &vol, limit)?))
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

/// Best effort: a pool busy with a volume being built refuses a refresh ("asynchronous jobs
/// running"), and then what libvirt knew a moment ago is still right.
fn refresh(pool: &StoragePool) {
    let _ = pool.refresh(0);
}

fn active_pool(conn: &Connect, name: &str) -> Result<StoragePool> {
    let pool = conn.lookup_storage_pool_by_name(name).map_err(text)?;
    if !pool.is_active().map_err(text)? {
        return Err(format!("storage pool {name} is not active (start it: virsh pool-start {name})"));
    }
    Ok(pool)
}

/// The active pool over `dir`, or a transient dir pool `name` made over it; `None` when `dir`
/// does not exist and `build` is false. Two calls racing to make the same pool both get it.
fn pool_for_dir(conn: &Connect, dir: &str, name: &str, build: bool) -> Result<Option<StoragePool>> {
    let lookup = || match conn.lookup_storage_pool_by_target_path(dir) {
        Ok(pool) if pool.is_active().unwrap_or(false) => Ok(Some(pool)),
        // Someone's pool: not ours to start.
        Ok(pool) => {
            let name = pool.name().unwrap_or_default();
            Err(format!("storage pool {name} over {dir} is defined but not active (start it: virsh pool-start {name})"))
        }
        Err(e) if e.code() == Enum::Known(ErrorNumber::NoStoragePool) => Ok(None),
        Err(e) => Err(text(e)),
    };
    if let Some(pool) = lookup()? {
        refresh(&pool);
        return Ok(Some(pool));
    }
    let xml = super::super::volume_xml::dir_pool_xml(name, std::path::Path::new(dir)).map_err(|e| e.to_string())?;
    let flags = if build { sys::VIR_STORAGE_POOL_CREATE_WITH_BUILD } else { sys::VIR_STORAGE_POOL_CREATE_NORMAL };
    match conn.create_storage_pool_xml(&xml, flags) {
        Ok(pool) => Ok(Some(pool)),
        Err(e) => match lookup()? {
            Some(pool) => Ok(Some(pool)),
            None => match conn.lookup_storage_pool_by_name(name) {
                // Made by a racing call: it is active once that call returns.
                Ok(pool) if pool.is_active().unwrap_or(false) => Ok(Some(pool)),
                // libvirt's words for a directory that is not there ("cannot open directory ...").
                _ if !build && e.to_string().contains("No such file or directory") => Ok(None),
                _ => Err(text(e)),
            },
        },
    }
}

fn volume_if_any(pool: &StoragePool, name: &str) -> Result<Option<StorageVol>> {
    match pool.lookup_storage_vol_by_name(name) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == Enum::Known(ErrorNumber::NoStorageVolume) => Ok(None),
        Err(e) => Err(text(e)),
    }
}

fn network_info(net: &Network) -> Result<RawNetworkInfo> {
    Ok(RawNetworkInfo { active: net.is_active().map_err(text)?, xml: net.xml_desc(0).map_err(text)? })
}

fn raw_pool(pool: &StoragePool) -> Result<RawPool> {
    Ok(RawPool { xml: pool.xml_desc(0).map_err(text)?, persistent: pool.is_persistent().map_err(text)? })
}

fn raw_volume(pool: &StoragePool, vol: &StorageVol) -> Result<RawVolume> {
    Ok(RawVolume { pool: pool.name().map_err(text)?, xml: vol.xml_desc(0).map_err(text)? })
}

/// Write `data` over the start of `vol` through a stream (virStorageVolUpload).
fn upload(conn: &Connect, vol: &StorageVol, data: &[u8]) -> Result<()> {
    let stream = Stream::new(conn, 0).map_err(text)?;
    vol.upload(&stream, 0, data.len() as u64, 0).map_err(text)?;
    let mut rest = data;
    while !rest.is_empty() {
        match stream.send(rest) {
            Ok(n) if n > 0 => rest = &rest[usize::try_from(n).unwrap_or(rest.len()).min(rest.len())..],
            Ok(_) => {
                let _ = stream.abort();
                return Err("the upload stream accepted no data".into());
            }
            Err(e) => {
                let _ = stream.abort();
                return Err(text(e));
            }
        }
    }
    stream.finish().map_err(text)
}

/// Chunks of uploads and checksums: large enough that the per-call cost of the RPC is small.
const CHUNK: usize = 4 << 20;

/// Send `data` whole down `stream`.
fn send_all(stream: &Stream, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        match stream.send(data).map_err(text)? {
            n if n > 0 => data = &data[usize::try_from(n).unwrap_or(data.len()).min(data.len())..],
            _ => return Err("the upload stream accepted no data".into()),
        }
    }
    Ok(())
}

/// Stream the file at `path` into `vol` (virStorageVolUpload), hashing what is sent and logging
/// progress every 10% (and at most every 5 s).
fn upload_file(conn: &Connect, vol: &StorageVol, name: &str, path: &std::path::Path) -> Result<UploadReport> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let total = file.metadata().map_err(|e| format!("reading {}: {e}", path.display()))?.len();
    let started = std::time::Instant::now();
    let stream = Stream::new(conn, 0).map_err(text)?;
    vol.upload(&stream, 0, total, 0).map_err(text)?;
    let mut hasher = sha2::Sha256::new();
    let (mut sent, mut buf) = (0u64, vec![0u8; CHUNK]);
    let (mut next_tenth, mut last_log) = (1u64, started);
    let result = loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(format!("reading {}: {e}", path.display())),
        };
        if let Err(e) = send_all(&stream, &buf[..n]) {
            break Err(e);
        }
        hasher.update(&buf[..n]);
        sent += n as u64;
        if total > 0 && (sent * 10 >= next_tenth * total || last_log.elapsed().as_secs() >= 5) {
            next_tenth = sent * 10 / total + 1;
            last_log = std::time::Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            crate::protocol::log::info(&format!(
                "lab_image {name}: uploaded {} of {} MiB ({}%, {:.1} MiB/s)",
                sent >> 20,
                total >> 20,
                sent * 100 / total,
                sent as f64 / secs / f64::from(1u32 << 20)
            ));
        }
    };
    if let Err(e) = result {
        let _ = stream.abort();
        return Err(e);
    }
    if sent != total {
        let _ = stream.abort();
        return Err(format!("{} changed during the upload: {sent} bytes read, {total} expected", path.display()));
    }
    stream.finish().map_err(text)?;
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(UploadReport { bytes: sent, sha256, seconds: started.elapsed().as_secs_f64() })
}

/// SHA-256 (hex) of the first `length` bytes of `vol`, read through a download stream.
fn sha256_of(conn: &Connect, vol: &StorageVol, length: u64) -> Result<String> {
    use sha2::Digest;
    let stream = Stream::new(conn, 0).map_err(text)?;
    vol.download(&stream, 0, length, 0).map_err(text)?;
    let mut hasher = sha2::Sha256::new();
    let (mut got, mut buf) = (0u64, vec![0u8; CHUNK]);
    loop {
        match stream.recv(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let n = usize::try_from(n).unwrap_or(0).min(buf.len());
                hasher.update(&buf[..n]);
                got += n as u64;
            }
            Err(e) => {
                let _ = stream.abort();
                return Err(text(e));
            }
        }
    }
    stream.finish().map_err(text)?;
    if got != length {
        return Err(format!("the volume holds {got} bytes, {length} expected"));
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The first `limit` bytes of `vol` (all of it when smaller), through a stream (virStorageVolDownload).
fn download(conn: &Connect, vol: &StorageVol, limit: u64) -> Result<Vec<u8>> {
    let stream = Stream::new(conn, 0).map_err(text)?;
    vol.download(&stream, 0, limit, 0).map_err(text)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match stream.recv(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..usize::try_from(n).unwrap_or(0).min(buf.len())]),
            Err(e) => {
                let _ = stream.abort();
                return Err(text(e));
            }
        }
        if out.len() as u64 > limit {
            let _ = stream.abort();
            return Err(format!("the volume sent more than the {limit} bytes asked for"));
        }
    }
    stream.finish().map_err(text)?;
    Ok(out)
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
