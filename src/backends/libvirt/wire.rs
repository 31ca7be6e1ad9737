//! What the provider and its libvirt helper process say to each other: one JSON object per line,
//! requests on the helper's stdin, replies (matched by `id`) on its stdout. Replies can come back
//! in any order: the helper runs each request on its own thread.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: u64,
    pub body: T,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// First request of every helper: open the one connection all later requests use.
    Connect {
        uri: String,
    },
    IsAlive,
    Define {
        xml: String,
    },
    Start {
        name: String,
    },
    Shutdown {
        name: String,
    },
    Destroy {
        name: String,
    },
    Undefine {
        name: String,
    },
    SetAutostart {
        name: String,
        on: bool,
    },
    /// Put the medium of `device_xml` (a CD-ROM `<disk>`) into the domain's drive of the same
    /// target: in the running guest and in the persistent definition.
    ChangeMedia {
        name: String,
        device_xml: String,
    },
    Lookup {
        name: String,
    },
    LookupUuid {
        uuid: String,
    },
    Addresses {
        name: String,
        source: AddressSource,
    },
    NetworkExists {
        network: String,
    },
    HostInfo,
    DomainNames,
    /// Every network of the host, defined or transient, active or not.
    Networks,
    /// Define (persist) a network from XML; replies with its UUID.
    NetworkDefine {
        xml: String,
    },
    /// Start a defined network; running already is fine.
    NetworkStart {
        name: String,
    },
    /// Stop a network; not running, or gone, is fine.
    NetworkStop {
        name: String,
    },
    /// Remove a network's definition; gone already is fine.
    NetworkUndefine {
        name: String,
    },
    NetworkLookup {
        name: String,
    },
    NetworkLookupUuid {
        uuid: String,
    },
    /// The pool named `pool`, refreshed (files changed behind libvirt's back show up, or go).
    Pool {
        pool: String,
    },
    /// The active pool whose target is `dir`; when none, a transient dir pool `name` over it
    /// (made with `build`: the directory is created when missing).
    PoolForDir {
        dir: String,
        name: String,
        build: bool,
    },
    /// Create a volume in `pool` from volume XML.
    VolCreate {
        pool: String,
        xml: String,
    },
    /// `None` when `pool` has no volume `name`.
    VolLookup {
        pool: String,
        name: String,
    },
    /// The volume at `path`, in whichever active pool holds it; `None` when no pool does.
    VolByPath {
        path: String,
    },
    /// Delete a volume. Gone already is fine.
    VolDelete {
        pool: String,
        name: String,
    },
    /// Write `data` (base64) over the start of a volume, through a libvirt stream.
    VolUpload {
        pool: String,
        name: String,
        data: String,
    },
    /// The first bytes of a volume (at most `limit`), base64, through a libvirt stream.
    VolDownload {
        pool: String,
        name: String,
        limit: u64,
    },
    /// Stream the local file at `path` (on the machine running the helper) into a volume, from
    /// its start, logging progress; replies an `UploadReport`.
    VolUploadFile {
        pool: String,
        name: String,
        path: String,
    },
    /// The SHA-256 (hex) of a volume's first `length` bytes, read through a download stream.
    VolSha256 {
        pool: String,
        name: String,
        length: u64,
    },
}

/// What an upload of a file sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadReport {
    pub bytes: u64,
    /// SHA-256 (hex) of the bytes sent, computed as they were read.
    pub sha256: String,
    pub seconds: f64,
}

impl Request {
    /// Whether asking again has the same effect as asking once, so a call cut off by a lost
    /// connection may be repeated on a new one. Not `Start`: a start that reached libvirtd before
    /// the connection went fails the second time ("already running"); nor `VolCreate` ("volume
    /// already exists": the caller looks the volume up instead).
    pub fn safe_to_repeat(&self) -> bool {
        !matches!(self, Request::Start { .. } | Request::Connect { .. } | Request::VolCreate { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok(serde_json::Value),
    /// libvirt's own message (the helper already turned "no such domain" into `Ok` where that is
    /// an answer, not a failure).
    Err(String),
}

/// Where guest addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    /// The libvirt network's dnsmasq leases (virNetworkGetDHCPLeases under the hood).
    Lease,
    /// qemu-guest-agent inside the guest.
    Agent,
}

/// The life-cycle state of a domain, as `lab_vm.state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
}

/// A pool as libvirt reports it; the provider side parses the XML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawPool {
    pub xml: String,
    /// False for the transient pools the provider makes over a directory.
    pub persistent: bool,
}

/// A volume as libvirt reports it, with the pool that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawVolume {
    pub pool: String,
    pub xml: String,
}

/// A defined domain as libvirt reports it; the provider side parses the XML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawVmInfo {
    pub state: VmState,
    pub autostart: bool,
    /// Live XML (inactive XML when shut off).
    pub xml: String,
}

/// A defined network as libvirt reports it; the provider side parses the XML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawNetworkInfo {
    pub active: bool,
    pub xml: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestAddress {
    pub mac: Option<String>,
    pub ip: std::net::Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// `MemFree`: memory no one uses, not even the page cache.
    pub free_memory_bytes: u64,
    /// What a new guest can have: free plus buffers and page cache (reclaimed on demand).
    pub available_memory_bytes: u64,
    pub total_memory_kib: u64,
    pub cpus: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_one_json_object_each() {
        let req = Envelope { id: 7, body: Request::SetAutostart { name: "vm-<a>".into(), on: true } };
        let line = serde_json::to_string(&req).unwrap();
        assert_eq!(line, r#"{"id":7,"body":{"op":"set_autostart","name":"vm-<a>","on":true}}"#);
        assert_eq!(serde_json::from_str::<Envelope<Request>>(&line).unwrap(), req);
        let unit = serde_json::to_string(&Envelope { id: 1, body: Request::HostInfo }).unwrap();
        assert_eq!(unit, r#"{"id":1,"body":{"op":"host_info"}}"#);

        let reply = Envelope { id: 7, body: Reply::Err("Domain not found".into()) };
        let line = serde_json::to_string(&reply).unwrap();
        assert_eq!(line, r#"{"id":7,"body":{"err":"Domain not found"}}"#);
        assert_eq!(serde_json::from_str::<Envelope<Reply>>(&line).unwrap(), reply);
        let big = Envelope { id: u64::MAX, body: Reply::Ok(serde_json::json!({"free_memory_bytes": u64::MAX})) };
        let line = serde_json::to_string(&big).unwrap();
        assert_eq!(serde_json::from_str::<Envelope<Reply>>(&line).unwrap(), big);
    }
}
