//! What a `lab_vm` state becomes: the resolved `VmConfig`, its domain spec, kernel command line
//! and NoCloud seed, and the paths of its files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::backends::domain_xml::{DirectBoot, DomainSpec, DomainType, LabMetadata};
use crate::backends::seed::NoCloudSeed;
use crate::lifecycle::Timeouts;
use crate::protocol::{AttrPath, Diagnostics};

use super::{
    DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT, DEFAULT_MEMORY_MB, DEFAULT_OVERLAY_DIR, DEFAULT_VCPUS, LabVmState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitFor {
    Ssh,
    Ip,
    None,
}

/// The planned configuration with defaults applied and paths derived: what create and update use.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct VmConfig {
    pub(super) name: String,
    pub(super) base_image: PathBuf,
    /// The pool named for the VM's volumes; `None`: the dir pool over `overlay_dir`.
    pub(super) storage_pool: Option<String>,
    pub(super) overlay_dir: PathBuf,
    /// Where the volumes are on the host: in `overlay_dir` until `placed` in a named pool.
    pub(super) overlay_path: PathBuf,
    pub(super) seed_path: PathBuf,
    pub(super) memory_mb: i64,
    pub(super) vcpus: i64,
    pub(super) network: String,
    pub(super) domain_type: DomainType,
    pub(super) disk_size_bytes: Option<u64>,
    pub(super) keys: Vec<String>,
    pub(super) user: String,
    pub(super) hostname: String,
    pub(super) cloud_init: Option<String>,
    pub(super) kernel: Option<PathBuf>,
    pub(super) initrd: Option<PathBuf>,
    pub(super) cmdline: Option<String>,
    pub(super) running: bool,
    pub(super) autostart: bool,
    pub(super) isolated: bool,
    pub(super) graphics: bool,
    /// ISO in the CD-ROM drive (media.rs: changed in place, not by redefinition).
    pub(super) cdrom: Option<PathBuf>,
    pub(super) wait_for: WaitFor,
    pub(super) create_timeout: Duration,
    pub(super) delete_timeout: Duration,
}

impl VmConfig {
    pub(super) fn from_state(s: &LabVmState) -> Result<Self, Diagnostics> {
        let missing = |attr: &str| crate::validate::missing(AttrPath::root(attr));
        let name = s.name.known().cloned().ok_or_else(|| missing("name"))?;
        let overlay_dir = s.overlay_dir.known().cloned().unwrap_or_else(|| DEFAULT_OVERLAY_DIR.into());
        let (create_timeout, delete_timeout) = parse_timeouts(s)?;
        Ok(VmConfig {
            base_image: PathBuf::from(s.base_image.known().ok_or_else(|| missing("base_image"))?),
            storage_pool: s.storage_pool.known().cloned(),
            overlay_path: overlay_path(&overlay_dir, &name),
            seed_path: seed_path(&overlay_dir, &name),
            overlay_dir: PathBuf::from(overlay_dir),
            memory_mb: s.memory_mb.known().copied().unwrap_or(DEFAULT_MEMORY_MB),
            vcpus: s.vcpus.known().copied().unwrap_or(DEFAULT_VCPUS),
            network: s.network.known().cloned().unwrap_or_else(|| "default".into()),
            domain_type: s.domain_type.known().and_then(|t| DomainType::parse(t)).unwrap_or_default(),
            disk_size_bytes: s.disk_size_gb.known().map(|g| (*g as u64) << 30),
            keys: s
                .ssh_authorized_keys
                .known()
                .map(|keys| keys.iter().filter_map(|k| k.known().map(|k| key_line(k).to_string())).collect())
                .unwrap_or_default(),
            user: s.user.known().cloned().unwrap_or_else(|| "student".into()),
            hostname: s.hostname.known().cloned().unwrap_or_else(|| name.clone()),
            cloud_init: s.cloud_init.known().cloned(),
            kernel: s.kernel.known().map(PathBuf::from),
            initrd: s.initrd.known().map(PathBuf::from),
            cmdline: s.cmdline.known().cloned(),
            running: s.running.known().copied().unwrap_or(true),
            autostart: s.autostart.known().copied().unwrap_or(false),
            isolated: s.isolated.known().copied().unwrap_or(true),
            graphics: s.graphics.known().copied().unwrap_or(false),
            cdrom: s.cdrom.known().map(PathBuf::from),
            wait_for: match s.wait_for.known().map(String::as_str) {
                Some("ip") => WaitFor::Ip,
                Some("none") => WaitFor::None,
                _ => WaitFor::Ssh,
            },
            create_timeout,
            delete_timeout,
            name,
        })
    }

    /// The paths of the VM's volumes in the directory of the pool they are in.
    pub(super) fn placed(&mut self, dir: &Path) {
        self.overlay_path = dir.join(super::storage::overlay_volume(&self.name));
        self.seed_path = dir.join(super::storage::seed_volume(&self.name));
    }

    /// Whether the domain definition (or seed) must be rewritten to go from `old` to `self`.
    pub(super) fn definition_differs(&self, old: &VmConfig) -> bool {
        (self.memory_mb, self.vcpus, &self.keys, &self.user, &self.hostname, &self.cloud_init)
            != (old.memory_mb, old.vcpus, &old.keys, &old.user, &old.hostname, &old.cloud_init)
            || (&self.kernel, &self.initrd, &self.cmdline, self.isolated, self.graphics)
                != (&old.kernel, &old.initrd, &old.cmdline, old.isolated, old.graphics)
    }

    /// The kernel command line the guest gets: the user's, plus the lab image conventions.
    pub(super) fn effective_cmdline(&self) -> String {
        let mut words: Vec<String> = self.cmdline.iter().cloned().collect();
        words.push(format!("lab.hostname={}", self.hostname));
        if !self.keys.is_empty() {
            let keys = self.keys.join("\n") + "\n";
            words.push(format!("lab.authkey={}", base64::engine::general_purpose::STANDARD.encode(keys)));
        }
        words.join(" ")
    }

    pub(super) fn seed(&self, user_data: &str) -> NoCloudSeed {
        // The instance id follows the seed's content, so cloud-init re-runs when it changes.
        let mut h = Sha256::new();
        for part in [user_data, &self.hostname, &self.user, &self.keys.join("\n")] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest: String = h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
        NoCloudSeed {
            instance_id: format!("{}-{digest}", self.name),
            hostname: self.hostname.clone(),
            user_data: user_data.to_string(),
            public_keys: self.keys.clone(),
        }
    }

    pub(super) fn domain_spec(&self, uuid: Option<String>, mac: String, seed: Option<PathBuf>) -> DomainSpec {
        let mut spec = DomainSpec::new(&self.name, self.overlay_path.clone(), &self.network);
        spec.uuid = uuid;
        spec.domain_type = self.domain_type;
        spec.memory_mib = self.memory_mb as u64;
        spec.vcpus = self.vcpus as u32;
        spec.seed = seed;
        spec.boot = self.kernel.as_ref().map(|kernel| DirectBoot {
            kernel: kernel.clone(),
            initrd: self.initrd.clone(),
            cmdline: Some(self.effective_cmdline()),
        });
        spec.mac = Some(mac);
        spec.isolated = self.isolated;
        spec.graphics = self.graphics;
        spec.cdrom = self.cdrom.clone();
        spec.metadata = LabMetadata {
            base_image: Some(self.base_image.to_string_lossy().into_owned()),
            user: Some(self.user.clone()),
            hostname: Some(self.hostname.clone()),
            cmdline: self.cmdline.clone(),
            seed_id: self.cloud_init.as_ref().filter(|_| spec.seed.is_some()).map(|u| self.seed(u).instance_id),
        };
        spec
    }
}

/// An authorized_keys entry without the line break `file("key.pub")` ends with.
pub(super) fn key_line(entry: &str) -> &str {
    entry.strip_suffix('\n').map(|k| k.strip_suffix('\r').unwrap_or(k)).unwrap_or(entry)
}

/// The keys a domain was given through `lab.authkey=` (for import).
pub(super) fn keys_from_cmdline(cmdline: &str) -> Option<Vec<String>> {
    let b64 = cmdline.split_whitespace().find_map(|w| w.strip_prefix("lab.authkey="))?;
    let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()?;
    Some(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
}

pub(super) fn overlay_path(dir: &str, name: &str) -> PathBuf {
    Path::new(dir).join(super::storage::overlay_volume(name))
}

pub(super) fn seed_path(dir: &str, name: &str) -> PathBuf {
    Path::new(dir).join(super::storage::seed_volume(name))
}

/// A locally administered MAC in QEMU's `52:54:00` range; stored in state and the domain, so
/// it is stable for the VM's life (and so is its DHCP lease).
pub(super) fn random_mac() -> String {
    let b: [u8; 3] = rand::rng().random();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// `qemu:///system`, `qemu+unix:///system?socket=...`: no host part, so paths are on this host.
pub(super) fn uri_is_local(uri: &str) -> bool {
    uri.split_once("://").is_some_and(|(_, rest)| rest.starts_with('/'))
}

pub(super) fn parse_timeouts(s: &LabVmState) -> Result<(Duration, Duration), Diagnostics> {
    Timeouts::resolve(s.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::domain_xml::DomainSummary;
    use crate::resources::vm::test_support::*;

    #[test]
    fn cmdline_gets_hostname_and_keys() {
        let mut c = config();
        c.kernel = Attr::Known("/img/vmlinuz".into());
        c.cmdline = Attr::Known("root=/dev/vda quiet".into());
        // As `file("k.pub")` gives it: the trailing newline is not doubled.
        c.ssh_authorized_keys = Attr::Known(vec![Attr::Known("ssh-ed25519 AAAA k\n".into())]);
        let cfg = VmConfig::from_state(&c).unwrap();
        let line = cfg.effective_cmdline();
        let b64 = base64::engine::general_purpose::STANDARD.encode("ssh-ed25519 AAAA k\n");
        assert_eq!(line, format!("root=/dev/vda quiet lab.hostname=vm-1 lab.authkey={b64}"));
        let spec = cfg.domain_spec(None, "52:54:00:00:00:01".into(), None);
        let back = DomainSummary::parse(&spec.to_xml().unwrap()).unwrap();
        assert_eq!(back.cmdline.as_deref(), Some(line.as_str()));
        assert_eq!(keys_from_cmdline(&line), Some(vec!["ssh-ed25519 AAAA k".to_string()]));
        assert_eq!(keys_from_cmdline("quiet"), None);
        assert_eq!(back.metadata.cmdline.as_deref(), Some("root=/dev/vda quiet"));
        assert_eq!(back.memory_kib, 512 * 1024);
        assert_eq!(back.domain_type, "qemu");
    }

    #[test]
    fn definition_changes_are_detected() {
        let a = VmConfig::from_state(&config()).unwrap();
        let mut c = config();
        c.running = Attr::Known(false);
        c.autostart = Attr::Known(true);
        assert!(!VmConfig::from_state(&c).unwrap().definition_differs(&a), "running/autostart need no redefine");
        c.cdrom = Attr::Known("/iso/tools.iso".into());
        let with_iso = VmConfig::from_state(&c).unwrap();
        assert!(!with_iso.definition_differs(&a), "a medium is changed in place, not redefined");
        assert_eq!(with_iso.domain_spec(None, String::new(), None).cdrom, Some(PathBuf::from("/iso/tools.iso")));
        c.memory_mb = Attr::Known(1024);
        assert!(VmConfig::from_state(&c).unwrap().definition_differs(&a));
    }

    #[test]
    fn seed_instance_id_follows_content() {
        let cfg = VmConfig::from_state(&config()).unwrap();
        let a = cfg.seed("#cloud-config\n");
        assert_eq!(a, cfg.seed("#cloud-config\n"));
        assert_ne!(a.instance_id, cfg.seed("#cloud-config\nx: 1\n").instance_id);
    }

    #[test]
    fn misc_helpers() {
        let mac = random_mac();
        assert!(mac.starts_with("52:54:00:") && mac.len() == 17, "{mac}");
    }
}
