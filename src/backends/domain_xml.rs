//! libvirt domain XML, built with quick-xml's writer so every user-provided string is escaped by
//! construction (never `format!` into XML), and read back (`DomainSummary::parse`) for refresh and
//! import.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use quick_xml::Writer;
use quick_xml::events::BytesText;

use super::xml_read;

/// Namespace of the provider's own `<metadata>` element: what libvirt does not store itself
/// (base image, guest user, hostname, seed) so import and refresh can recover it.
pub const LAB_XMLNS: &str = "https://classroom.lab/xmlns/vm/1";

#[derive(Debug, thiserror::Error)]
pub enum DomainXmlError {
    #[error("writing domain XML for {name}: {source}")]
    Write { name: String, source: std::io::Error },
    #[error("parsing domain XML: {0}")]
    Parse(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DomainType {
    #[default]
    Kvm,
    /// TCG emulation: slow, but works without usable KVM (CI, nested virtualisation).
    Qemu,
}

impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Kvm => "kvm",
            DomainType::Qemu => "qemu",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kvm" => Some(DomainType::Kvm),
            "qemu" => Some(DomainType::Qemu),
            _ => None,
        }
    }
}

/// Kernel, initrd and command line given to qemu directly (no bootloader in the image).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectBoot {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
}

/// Provider metadata stored in the domain (`<metadata><lab:vm>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabMetadata {
    pub base_image: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// The user's kernel command line, before the provider appends `lab.hostname=`/`lab.authkey=`.
    pub cmdline: Option<String>,
    /// The NoCloud seed's instance id (it follows the seed's content), when the domain has a seed.
    pub seed_id: Option<String>,
}

/// Everything `lab_vm` puts into a domain definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    pub name: String,
    pub uuid: Option<String>,
    pub domain_type: DomainType,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// The qcow2 overlay, attached as virtio `vda`.
    pub disk: PathBuf,
    /// NoCloud seed (a vfat image), attached read-only as virtio `vdb`.
    pub seed: Option<PathBuf>,
    pub boot: Option<DirectBoot>,
    pub network: String,
    pub mac: Option<String>,
    /// `<port isolated='yes'/>`: guests on the same bridge cannot reach each other.
    pub isolated: bool,
    pub graphics: bool,
    /// ISO image in the domain's CD-ROM drive; the drive itself is always there (see `write_cdrom`).
    pub cdrom: Option<PathBuf>,
    pub metadata: LabMetadata,
}

/// Target of the CD-ROM drive every domain gets: the IDE bus of the `pc` machine is built into
/// qemu, so the drive needs no controller of its own.
pub const CDROM_TARGET: &str = "hdc";

impl DomainSpec {
    pub fn new(name: &str, disk: PathBuf, network: &str) -> Self {
        DomainSpec {
            name: name.to_string(),
            uuid: None,
            domain_type: DomainType::Kvm,
            memory_mib: 1024,
            vcpus: 1,
            disk,
            seed: None,
            boot: None,
            network: network.to_string(),
            mac: None,
            isolated: true,
            graphics: false,
            cdrom: None,
            metadata: LabMetadata::default(),
        }
    }

    pub fn to_xml(&self) -> Result<String, DomainXmlError> {
        let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
        self.write(&mut w).map_err(|source| DomainXmlError::Write { name: self.name.clone(), source })?;
        String::from_utf8(w.into_inner().into_inner()).map_err(|e| DomainXmlError::Parse(e.to_string()))
    }

    /// What a defined domain holds differently from this spec, by field name (empty: it is
    /// this definition). The UUID and MAC are not compared: libvirt and the create choose them.
    pub fn differences(&self, found: &DomainSummary) -> Vec<&'static str> {
        let boot = self.boot.as_ref();
        let checks = [
            ("domain_type", found.domain_type == self.domain_type.as_str()),
            ("memory", found.memory_kib == self.memory_mib * 1024),
            ("vcpus", found.vcpus == self.vcpus),
            ("disk", found.disk.as_ref() == Some(&self.disk)),
            ("seed", found.seed == self.seed),
            ("kernel", found.kernel.as_ref() == boot.map(|b| &b.kernel)),
            ("initrd", found.initrd.as_ref() == boot.and_then(|b| b.initrd.as_ref())),
            ("cmdline", found.cmdline.as_ref() == boot.and_then(|b| b.cmdline.as_ref())),
            ("network", found.network.as_ref() == Some(&self.network)),
            ("isolated", found.isolated == self.isolated),
            ("graphics", found.graphics.is_some() == self.graphics),
            ("cdrom", found.cdrom_drive && found.cdrom == self.cdrom),
            ("metadata", found.metadata == self.metadata),
        ];
        checks.into_iter().filter(|(_, same)| !same).map(|(field, _)| field).collect()
    }

    fn write(&self, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
        let memory = self.memory_mib.to_string();
        let vcpus = self.vcpus.to_string();
        w.create_element("domain").with_attribute(("type", self.domain_type.as_str())).write_inner_content(|w| {
            text(w, "name", &self.name)?;
            if let Some(uuid) = &self.uuid {
                text(w, "uuid", uuid)?;
            }
            self.write_metadata(w)?;
            w.create_element("memory").with_attribute(("unit", "MiB")).write_text_content(BytesText::new(&memory))?;
            text(w, "vcpu", &vcpus)?;
            w.create_element("os").write_inner_content(|w| {
                w.create_element("type")
                    .with_attributes([("arch", "x86_64"), ("machine", "pc")])
                    .write_text_content(BytesText::new("hvm"))?;
                if let Some(boot) = &self.boot {
                    text(w, "kernel", &boot.kernel.to_string_lossy())?;
                    if let Some(initrd) = &boot.initrd {
                        text(w, "initrd", &initrd.to_string_lossy())?;
                    }
                    if let Some(cmdline) = &boot.cmdline {
                        text(w, "cmdline", cmdline)?;
                    }
                } else {
                    w.create_element("boot").with_attribute(("dev", "hd")).write_empty()?;
                }
                Ok(())
            })?;
            w.create_element("features").write_inner_content(|w| {
                w.create_element("acpi").write_empty()?;
                Ok(())
            })?;
            if self.domain_type == DomainType::Kvm {
                w.create_element("cpu").with_attribute(("mode", "host-passthrough")).write_empty()?;
            }
            w.create_element("on_poweroff").write_text_content(BytesText::new("destroy"))?;
            w.create_element("on_crash").write_text_content(BytesText::new("destroy"))?;
            w.create_element("devices").write_inner_content(|w| self.write_devices(w))?;
            Ok(())
        })?;
        Ok(())
    }

    fn write_metadata(&self, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
        let m = &self.metadata;
        w.create_element("metadata").write_inner_content(|w| {
            w.create_element("lab:vm").with_attribute(("xmlns:lab", LAB_XMLNS)).write_inner_content(|w| {
                for (tag, value) in [
                    ("lab:base_image", &m.base_image),
                    ("lab:user", &m.user),
                    ("lab:hostname", &m.hostname),
                    ("lab:cmdline", &m.cmdline),
                    ("lab:seed_id", &m.seed_id),
                ] {
                    if let Some(v) = value {
                        text(w, tag, v)?;
                    }
                }
                Ok(())
            })?;
            Ok(())
        })?;
        Ok(())
    }

    fn write_devices(&self, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
        let disk = self.disk.to_string_lossy();
        w.create_element("disk").with_attributes([("type", "file"), ("device", "disk")]).write_inner_content(|w| {
            w.create_element("driver")
                .with_attributes([("name", "qemu"), ("type", "qcow2"), ("discard", "unmap")])
                .write_empty()?;
            w.create_element("source").with_attribute(("file", disk.as_ref())).write_empty()?;
            w.create_element("target").with_attributes([("dev", "vda"), ("bus", "virtio")]).write_empty()?;
            Ok(())
        })?;
        if let Some(seed) = &self.seed {
            let seed = seed.to_string_lossy();
            // virtio like the overlay: cloud kernels (Debian's) have virtio_blk but no AHCI for SATA.
            w.create_element("disk").with_attributes([("type", "file"), ("device", "disk")]).write_inner_content(
                |w| {
                    w.create_element("driver").with_attributes([("name", "qemu"), ("type", "raw")]).write_empty()?;
                    w.create_element("source").with_attribute(("file", seed.as_ref())).write_empty()?;
                    w.create_element("target").with_attributes([("dev", "vdb"), ("bus", "virtio")]).write_empty()?;
                    w.create_element("readonly").write_empty()?;
                    Ok(())
                },
            )?;
        }
        write_cdrom(w, self.cdrom.as_deref())?;
        w.create_element("interface").with_attribute(("type", "network")).write_inner_content(|w| {
            w.create_element("source").with_attribute(("network", self.network.as_str())).write_empty()?;
            if let Some(mac) = &self.mac {
                w.create_element("mac").with_attribute(("address", mac.as_str())).write_empty()?;
            }
            w.create_element("model").with_attribute(("type", "virtio")).write_empty()?;
            if self.isolated {
                w.create_element("port").with_attribute(("isolated", "yes")).write_empty()?;
            }
            Ok(())
        })?;
        // Serial console on a pty: `virsh console <name>` reaches it.
        w.create_element("serial").with_attribute(("type", "pty")).write_inner_content(|w| {
            w.create_element("target").with_attribute(("port", "0")).write_empty()?;
            Ok(())
        })?;
        w.create_element("console").with_attribute(("type", "pty")).write_inner_content(|w| {
            w.create_element("target").with_attributes([("type", "serial"), ("port", "0")]).write_empty()?;
            Ok(())
        })?;
        // qemu-guest-agent channel: address discovery through the agent when the guest runs one.
        w.create_element("channel").with_attribute(("type", "unix")).write_inner_content(|w| {
            w.create_element("target")
                .with_attributes([("type", "virtio"), ("name", "org.qemu.guest_agent.0")])
                .write_empty()?;
            Ok(())
        })?;
        if self.graphics {
            w.create_element("graphics")
                .with_attributes([("type", "vnc"), ("autoport", "yes"), ("listen", "127.0.0.1")])
                .write_empty()?;
        }
        w.create_element("memballoon").with_attribute(("model", "none")).write_empty()?;
        Ok(())
    }
}

/// The CD-ROM drive, with `iso` in it or empty. Every domain has the drive from its definition on:
/// an IDE drive cannot be hot-plugged, but its medium can be changed in a running guest
/// (`virDomainUpdateDeviceFlags` with [`cdrom_device_xml`]). Read-only: the ISO is never written.
fn write_cdrom(w: &mut Writer<Cursor<Vec<u8>>>, iso: Option<&Path>) -> std::io::Result<()> {
    w.create_element("disk").with_attributes([("type", "file"), ("device", "cdrom")]).write_inner_content(|w| {
        w.create_element("driver").with_attributes([("name", "qemu"), ("type", "raw")]).write_empty()?;
        if let Some(iso) = iso {
            w.create_element("source").with_attribute(("file", iso.to_string_lossy().as_ref())).write_empty()?;
        }
        w.create_element("target").with_attributes([("dev", CDROM_TARGET), ("bus", "ide")]).write_empty()?;
        w.create_element("readonly").write_empty()?;
        Ok(())
    })?;
    Ok(())
}

/// The CD-ROM drive's `<disk>` element alone, with `iso` inserted (or none: ejected), as
/// `virDomainUpdateDeviceFlags` takes it.
pub fn cdrom_device_xml(iso: Option<&Path>) -> Result<String, DomainXmlError> {
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    write_cdrom(&mut w, iso).map_err(|source| DomainXmlError::Write { name: "the CD-ROM drive".into(), source })?;
    String::from_utf8(w.into_inner().into_inner()).map_err(|e| DomainXmlError::Parse(e.to_string()))
}

fn text(w: &mut Writer<Cursor<Vec<u8>>>, tag: &str, value: &str) -> std::io::Result<()> {
    w.create_element(tag).write_text_content(BytesText::new(value))?;
    Ok(())
}

/// What the provider reads back from a defined domain (`virDomainGetXMLDesc`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainSummary {
    pub name: String,
    pub uuid: String,
    pub domain_type: String,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub disk: Option<PathBuf>,
    pub seed: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
    pub network: Option<String>,
    pub mac: Option<String>,
    pub isolated: bool,
    /// `(type, port)` of the first `<graphics>` device, when the domain has one.
    pub graphics: Option<(String, Option<String>)>,
    /// pty path of the serial console while the domain runs.
    pub console_pty: Option<String>,
    /// The domain has a CD-ROM drive (domains defined before `cdrom` existed have none).
    pub cdrom_drive: bool,
    /// The ISO in the first CD-ROM drive; `None` when the tray is empty.
    pub cdrom: Option<PathBuf>,
    /// The domain carries this provider's ownership marker: a `<metadata>` child `<lab:vm>` that
    /// declares `xmlns:lab` as [`LAB_XMLNS`] (what `DomainSpec::to_xml` writes).
    pub lab_marker: bool,
    pub metadata: LabMetadata,
}

impl DomainSummary {
    pub fn parse(xml: &str) -> Result<Self, DomainXmlError> {
        let mut s = DomainSummary::default();
        // The disk being read (its children end first): source file, read-only. The seed is the
        // read-only disk, the overlay the first writable one.
        let mut disk: (Option<PathBuf>, bool) = (None, false);
        xml_read::walk(xml, |path, attrs, text| {
            let attr = |key: &str| attrs.get(key).cloned();
            match path {
                ["domain"] => s.domain_type = attr("type").unwrap_or_default(),
                ["domain", "name"] => s.name = text,
                ["domain", "uuid"] => s.uuid = text,
                ["domain", "memory"] => {
                    let n: u64 = text.trim().parse().map_err(|e| format!("<memory> `{}`: {e}", text.trim()))?;
                    s.memory_kib = match attrs.get("unit").map_or("KiB", String::as_str) {
                        "MiB" | "M" => n * 1024,
                        "GiB" | "G" => n * 1024 * 1024,
                        "b" | "bytes" => n / 1024,
                        _ => n,
                    };
                }
                ["domain", "vcpu"] => {
                    s.vcpus = text.trim().parse().map_err(|e| format!("<vcpu> `{}`: {e}", text.trim()))?;
                }
                ["domain", "os", "kernel"] => s.kernel = Some(PathBuf::from(text)),
                ["domain", "os", "initrd"] => s.initrd = Some(PathBuf::from(text)),
                ["domain", "os", "cmdline"] => s.cmdline = Some(text),
                ["domain", "metadata", "lab:vm"] => {
                    s.lab_marker = attrs.get("xmlns:lab").is_some_and(|ns| ns == LAB_XMLNS);
                }
                ["domain", "metadata", "lab:vm", "lab:base_image"] => s.metadata.base_image = Some(text),
                ["domain", "metadata", "lab:vm", "lab:user"] => s.metadata.user = Some(text),
                ["domain", "metadata", "lab:vm", "lab:hostname"] => s.metadata.hostname = Some(text),
                ["domain", "metadata", "lab:vm", "lab:cmdline"] => s.metadata.cmdline = Some(text),
                ["domain", "metadata", "lab:vm", "lab:seed_id"] => s.metadata.seed_id = Some(text),
                ["domain", "devices", "disk", "source"] => disk.0 = attr("file").map(PathBuf::from),
                ["domain", "devices", "disk", "readonly"] => disk.1 = true,
                ["domain", "devices", "disk"] => {
                    let (file, readonly) = std::mem::take(&mut disk);
                    match (attrs.get("device").map(String::as_str), readonly) {
                        (Some("disk"), true) if s.seed.is_none() => s.seed = file,
                        (Some("disk"), false) if s.disk.is_none() => s.disk = file,
                        (Some("cdrom"), _) if !s.cdrom_drive => (s.cdrom_drive, s.cdrom) = (true, file),
                        _ => {}
                    }
                }
                ["domain", "devices", "interface", "source"] if s.network.is_none() => s.network = attr("network"),
                ["domain", "devices", "interface", "mac"] if s.mac.is_none() => s.mac = attr("address"),
                ["domain", "devices", "interface", "port"] => {
                    s.isolated = attrs.get("isolated").is_some_and(|v| v == "yes");
                }
                ["domain", "devices", "graphics"] if s.graphics.is_none() => {
                    s.graphics = Some((attr("type").unwrap_or_default(), attr("port")));
                }
                ["domain", "devices", "console"] if s.console_pty.is_none() => s.console_pty = attr("tty"),
                _ => {}
            }
            Ok(())
        })
        .map_err(DomainXmlError::Parse)?;
        if s.name.is_empty() {
            return Err(DomainXmlError::Parse("no <name> in domain XML".into()));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DomainSpec {
        let mut s = DomainSpec::new("vm-1", PathBuf::from("/var/lib/lab/vm-1.qcow2"), "labnet");
        s.uuid = Some("6f1c9a5e-3c39-4f59-9a51-0c8e3f3d2a11".into());
        s.domain_type = DomainType::Qemu;
        s.memory_mib = 512;
        s.vcpus = 2;
        s.mac = Some("52:54:00:12:34:56".into());
        s.seed = Some(PathBuf::from("/var/lib/lab/vm-1-seed.img"));
        s.boot = Some(DirectBoot {
            kernel: "/img/vmlinuz".into(),
            initrd: Some("/img/initrd.img".into()),
            cmdline: Some("root=/dev/vda console=ttyS0".into()),
        });
        s.metadata = LabMetadata {
            base_image: Some("/img/base.qcow2".into()),
            user: Some("student".into()),
            hostname: Some("vm-1".into()),
            cmdline: Some("console=ttyS0".into()),
            seed_id: Some("vm-1-0123456789ab".into()),
        };
        s
    }

    #[test]
    fn round_trips_every_field() {
        let s = spec();
        let xml = s.to_xml().unwrap();
        assert!(xml.contains("<port isolated=\"yes\"/>"), "{xml}");
        let back = DomainSummary::parse(&xml).unwrap();
        assert_eq!(back.name, "vm-1");
        assert_eq!(back.uuid, s.uuid.clone().unwrap());
        assert_eq!(back.domain_type, "qemu");
        assert_eq!(back.memory_kib, 512 * 1024);
        assert_eq!(back.vcpus, 2);
        assert_eq!(back.disk, Some(s.disk.clone()));
        assert_eq!(back.seed, s.seed);
        let seed_disk = "<source file=\"/var/lib/lab/vm-1-seed.img\"/>\n      <target dev=\"vdb\" bus=\"virtio\"/>\n      <readonly/>";
        assert!(xml.contains(seed_disk), "the seed is not a read-only virtio disk:\n{xml}");
        assert_eq!(back.kernel.as_deref(), Some(std::path::Path::new("/img/vmlinuz")));
        assert_eq!(back.initrd.as_deref(), Some(std::path::Path::new("/img/initrd.img")));
        assert_eq!(back.cmdline.as_deref(), Some("root=/dev/vda console=ttyS0"));
        assert_eq!(back.network.as_deref(), Some("labnet"));
        assert_eq!(back.mac.as_deref(), Some("52:54:00:12:34:56"));
        assert!(back.isolated);
        assert_eq!(back.metadata, s.metadata);
        assert_eq!(back.graphics, None);
    }

    #[test]
    fn the_ownership_marker_is_the_lab_element_in_our_namespace() {
        let xml = spec().to_xml().unwrap();
        assert!(DomainSummary::parse(&xml).unwrap().lab_marker, "{xml}");
        // Someone else's domain: no metadata, or a `lab:vm` element of another namespace.
        let plain = "<domain type='kvm'><name>vm-1</name><metadata><lab:vm xmlns:lab='https://example.org/x'/></metadata></domain>";
        assert!(!DomainSummary::parse(plain).unwrap().lab_marker);
        assert!(!DomainSummary::parse("<domain type='kvm'><name>vm-1</name></domain>").unwrap().lab_marker);
        let other = "<domain><name>a</name><metadata><other:vm xmlns:other='https://classroom.lab/xmlns/vm/1'/></metadata></domain>";
        assert!(!DomainSummary::parse(other).unwrap().lab_marker, "only the element the provider writes counts");
    }

    #[test]
    fn differences_name_each_field_a_domain_holds_otherwise() {
        let s = spec();
        let mut back = DomainSummary::parse(&s.to_xml().unwrap()).unwrap();
        assert_eq!(s.differences(&back), Vec::<&str>::new());
        // Chosen at create, not part of the definition the plan describes.
        back.uuid = "another".into();
        back.mac = Some("52:54:00:00:00:02".into());
        assert_eq!(s.differences(&back), Vec::<&str>::new());
        back.memory_kib = 1024 * 1024;
        back.seed = None;
        back.cmdline = Some("root=/dev/vda".into());
        back.metadata.seed_id = Some("vm-1-ffffffffffff".into());
        assert_eq!(s.differences(&back), ["memory", "seed", "cmdline", "metadata"]);
    }

    #[test]
    fn hostile_strings_are_escaped_and_round_trip() {
        let mut s = spec();
        let evil = r#"x</name><devices><disk file='/etc/shadow'/>&amp;"'<"#;
        s.name = evil.into();
        s.boot.as_mut().unwrap().cmdline = Some(format!("quiet lab.note={evil}"));
        s.metadata.hostname = Some(evil.into());
        s.network = "net'\"<&>".into();
        s.disk = PathBuf::from("/tmp/a&b<c>'d\".qcow2");
        let xml = s.to_xml().unwrap();
        assert!(!xml.contains("<disk file='/etc/shadow'/>"), "{xml}");
        let back = DomainSummary::parse(&xml).unwrap();
        assert_eq!(back.name, evil);
        assert_eq!(back.cmdline, Some(format!("quiet lab.note={evil}")));
        assert_eq!(back.metadata.hostname.as_deref(), Some(evil));
        assert_eq!(back.network.as_deref(), Some("net'\"<&>"));
        assert_eq!(back.disk, Some(s.disk.clone()));
        // Exactly one disk of each kind (overlay, seed, CD-ROM): the injected element did not become a device.
        assert_eq!(xml.matches("<disk ").count(), 3, "{xml}");
    }

    #[test]
    fn every_domain_has_a_read_only_cdrom_drive_empty_or_with_its_iso() {
        let mut s = spec();
        let empty = DomainSummary::parse(&s.to_xml().unwrap()).unwrap();
        assert!(empty.cdrom_drive);
        assert_eq!(empty.cdrom, None);
        s.cdrom = Some(PathBuf::from("/iso/tools&<'1'>.iso"));
        let xml = s.to_xml().unwrap();
        let back = DomainSummary::parse(&xml).unwrap();
        assert_eq!(back.cdrom, s.cdrom);
        assert_eq!(s.differences(&back), Vec::<&str>::new());
        assert_eq!(s.differences(&empty), ["cdrom"]);
        // Not the seed, not the overlay.
        assert_eq!(back.disk, Some(s.disk.clone()));
        assert_eq!(back.seed, s.seed);
        // A domain of an older provider, without the drive, differs even with no ISO planned.
        s.cdrom = None;
        let no_drive = DomainSummary { cdrom_drive: false, ..empty.clone() };
        assert_eq!(s.differences(&no_drive), ["cdrom"]);

        let device = cdrom_device_xml(Some(Path::new("/iso/b.iso"))).unwrap();
        assert_eq!(
            device,
            "<disk type=\"file\" device=\"cdrom\">\n  <driver name=\"qemu\" type=\"raw\"/>\n  \
             <source file=\"/iso/b.iso\"/>\n  <target dev=\"hdc\" bus=\"ide\"/>\n  <readonly/>\n</disk>"
        );
        let eject = cdrom_device_xml(None).unwrap();
        assert!(!eject.contains("<source") && eject.contains("<readonly/>"), "{eject}");
        assert!(xml.contains("<target dev=\"hdc\" bus=\"ide\"/>"), "{xml}");
    }

    #[test]
    fn options_off() {
        let mut s = spec();
        s.isolated = false;
        s.seed = None;
        s.boot = None;
        s.graphics = true;
        s.domain_type = DomainType::Kvm;
        let xml = s.to_xml().unwrap();
        assert!(!xml.contains("isolated"), "{xml}");
        assert!(xml.contains("<boot dev=\"hd\"/>"), "{xml}");
        assert!(xml.contains("host-passthrough"), "{xml}");
        let back = DomainSummary::parse(&xml).unwrap();
        assert!(!back.isolated);
        assert_eq!(back.seed, None);
        assert_eq!(back.kernel, None);
        assert_eq!(back.graphics, Some(("vnc".into(), None)));
    }

    #[test]
    fn parses_libvirt_output_shapes() {
        // libvirt writes memory in KiB, adds a console pty and a vnc port once running.
        let xml = r#"<domain type='qemu' id='3'>
  <name>vmtest-a</name><uuid>0e9f6c5a-0000-4000-8000-000000000001</uuid>
  <memory unit='KiB'>524288</memory><vcpu placement='static'>1</vcpu>
  <devices>
    <disk type='file' device='disk'><source file='/v/a.qcow2' index='1'/><backingStore type='file'><source file='/b.qcow2'/></backingStore></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/v/a-seed.img' index='2'/><backingStore/><target dev='vdb' bus='virtio'/><readonly/><alias name='virtio-disk1'/></disk>
    <disk type='file' device='cdrom'><source file='/iso/other.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
    <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='labnet' portid='x' bridge='virbr0'/><port isolated='yes'/></interface>
    <console type='pty' tty='/dev/pts/7'><source path='/dev/pts/7'/><target type='serial' port='0'/></console>
    <graphics type='vnc' port='5900' autoport='yes' listen='127.0.0.1'/>
  </devices>
</domain>"#;
        let s = DomainSummary::parse(xml).unwrap();
        assert_eq!(s.memory_kib, 524288);
        assert_eq!(s.disk.as_deref(), Some(std::path::Path::new("/v/a.qcow2")));
        assert_eq!(s.seed.as_deref(), Some(std::path::Path::new("/v/a-seed.img")));
        assert_eq!(s.console_pty.as_deref(), Some("/dev/pts/7"));
        assert_eq!(s.graphics, Some(("vnc".into(), Some("5900".into()))));
        assert!(s.cdrom_drive);
        assert_eq!(s.cdrom.as_deref(), Some(std::path::Path::new("/iso/other.iso")));
        assert!(s.isolated);
        assert!(DomainSummary::parse("<domain/>").is_err());
    }
}
