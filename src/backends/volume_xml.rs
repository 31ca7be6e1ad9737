//! libvirt storage volume and pool XML: volumes written with quick-xml's writer (every name and
//! path escaped by construction), volumes and pools read back (`VolumeSummary`, `PoolSummary`).
//!
//! What a `lab_vm` overlay is: a qcow2 volume whose `<backingStore>` names the base image's path
//! and format (a missing format would make qemu probe it, which is unsafe). libvirt's storage
//! driver runs `qemu-img` on the host that owns the pool, so the provider needs no filesystem of
//! its own there.

use std::io::Cursor;
use std::path::PathBuf;

use quick_xml::Writer;
use quick_xml::events::BytesText;

use super::xml_read;

#[derive(Debug, thiserror::Error)]
pub enum VolumeXmlError {
    #[error("writing volume XML for {name}: {source}")]
    Write { name: String, source: std::io::Error },
    #[error("parsing {what} XML: {reason}")]
    Parse { what: &'static str, reason: String },
}

/// A volume to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub capacity_bytes: u64,
    /// `qcow2` or `raw`.
    pub format: String,
    /// (path, format) of the image this one is a thin clone of.
    pub backing: Option<(PathBuf, String)>,
    /// Octal mode of the volume's file (`0444` for a base image nobody may write).
    pub mode: Option<String>,
}

impl VolumeSpec {
    pub fn to_xml(&self) -> Result<String, VolumeXmlError> {
        let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
        self.write(&mut w).map_err(|source| VolumeXmlError::Write { name: self.name.clone(), source })?;
        String::from_utf8(w.into_inner().into_inner())
            .map_err(|e| VolumeXmlError::Parse { what: "volume", reason: e.to_string() })
    }

    fn write(&self, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
        let capacity = self.capacity_bytes.to_string();
        w.create_element("volume").write_inner_content(|w| {
            w.create_element("name").write_text_content(BytesText::new(&self.name))?;
            w.create_element("capacity")
                .with_attribute(("unit", "bytes"))
                .write_text_content(BytesText::new(&capacity))?;
            // Thin: qemu-img allocates as the guest writes.
            w.create_element("allocation").with_attribute(("unit", "bytes")).write_text_content(BytesText::new("0"))?;
            w.create_element("target").write_inner_content(|w| {
                w.create_element("format").with_attribute(("type", self.format.as_str())).write_empty()?;
                if let Some(mode) = &self.mode {
                    w.create_element("permissions").write_inner_content(|w| {
                        w.create_element("mode").write_text_content(BytesText::new(mode))?;
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
            if let Some((path, format)) = &self.backing {
                w.create_element("backingStore").write_inner_content(|w| {
                    w.create_element("path").write_text_content(BytesText::new(&path.to_string_lossy()))?;
                    w.create_element("format").with_attribute(("type", format.as_str())).write_empty()?;
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// A volume as libvirt describes it (`virStorageVolGetXMLDesc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeSummary {
    pub name: String,
    /// Where the volume is on its host: what a domain's `<disk>` names.
    pub path: PathBuf,
    pub format: Option<String>,
    /// Virtual size: what the guest sees.
    pub capacity_bytes: u64,
    /// Bytes the volume takes on the host.
    pub allocation_bytes: u64,
    /// Length of the volume's file (0 when libvirt does not say).
    pub physical_bytes: u64,
    pub backing_path: Option<PathBuf>,
    pub backing_format: Option<String>,
    /// Octal mode of the file (e.g. `0444`), when the pool reports one.
    pub mode: Option<String>,
}

/// A pool as libvirt describes it (`virStoragePoolGetXMLDesc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSummary {
    pub name: String,
    pub kind: String,
    pub target_path: Option<PathBuf>,
    pub capacity_bytes: u64,
    pub available_bytes: u64,
}

/// Sizes in libvirt's units (bytes unless `unit` says otherwise).
fn bytes(value: &str, unit: Option<&str>) -> Result<u64, String> {
    let n: u64 = value.trim().parse().map_err(|e| format!("size `{value}`: {e}"))?;
    let scale: u64 = match unit.unwrap_or("bytes") {
        "b" | "bytes" | "B" => 1,
        "KB" => 1000,
        "k" | "K" | "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        other => return Err(format!("unknown unit `{other}`")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("size `{value} {}` is too large", unit.unwrap_or("bytes")))
}

/// [`xml_read::walk`], its failure said of `what` (a volume or a pool).
fn walk(
    what: &'static str,
    xml: &str,
    on_end: impl FnMut(&[&str], &xml_read::Attrs, String) -> Result<(), String>,
) -> Result<(), VolumeXmlError> {
    xml_read::walk(xml, on_end).map_err(|reason| VolumeXmlError::Parse { what, reason })
}

impl VolumeSummary {
    pub fn parse(xml: &str) -> Result<Self, VolumeXmlError> {
        let mut v = VolumeSummary::default();
        walk("volume", xml, |path, attrs, text| {
            let unit = attrs.get("unit").map(String::as_str);
            match path {
                ["volume", "name"] => v.name = text,
                ["volume", "capacity"] => v.capacity_bytes = bytes(&text, unit)?,
                ["volume", "allocation"] => v.allocation_bytes = bytes(&text, unit)?,
                ["volume", "physical"] => v.physical_bytes = bytes(&text, unit)?,
                ["volume", "target", "path"] => v.path = PathBuf::from(text),
                ["volume", "target", "format"] => v.format = attrs.get("type").cloned(),
                ["volume", "target", "permissions", "mode"] => v.mode = Some(text.trim().to_string()),
                ["volume", "backingStore", "path"] => v.backing_path = Some(PathBuf::from(text)),
                ["volume", "backingStore", "format"] => v.backing_format = attrs.get("type").cloned(),
                _ => {}
            }
            Ok(())
        })?;
        Ok(v)
    }
}

impl PoolSummary {
    pub fn parse(xml: &str) -> Result<Self, VolumeXmlError> {
        let mut p = PoolSummary::default();
        walk("pool", xml, |path, attrs, text| {
            let unit = attrs.get("unit").map(String::as_str);
            match path {
                ["pool"] => p.kind = attrs.get("type").cloned().unwrap_or_default(),
                ["pool", "name"] => p.name = text,
                ["pool", "capacity"] => p.capacity_bytes = bytes(&text, unit)?,
                ["pool", "available"] => p.available_bytes = bytes(&text, unit)?,
                ["pool", "target", "path"] => p.target_path = Some(PathBuf::from(text)),
                _ => {}
            }
            Ok(())
        })?;
        Ok(p)
    }
}

/// A transient dir pool over `dir`, named `name`: what the provider makes for an `overlay_dir` (or
/// a base image's directory) that no pool covers yet. Transient, so libvirt keeps no definition
/// that would outlive it; the files stay, and the next call that needs the pool makes it again.
pub fn dir_pool_xml(name: &str, dir: &std::path::Path) -> Result<String, VolumeXmlError> {
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    w.create_element("pool")
        .with_attribute(("type", "dir"))
        .write_inner_content(|w| {
            w.create_element("name").write_text_content(BytesText::new(name))?;
            w.create_element("target").write_inner_content(|w| {
                w.create_element("path").write_text_content(BytesText::new(&dir.to_string_lossy()))?;
                Ok(())
            })?;
            Ok(())
        })
        .map_err(|source| VolumeXmlError::Write { name: name.to_string(), source })?;
    String::from_utf8(w.into_inner().into_inner())
        .map_err(|e| VolumeXmlError::Parse { what: "pool", reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_xml_names_its_backing_store_and_escapes_names() {
        let spec = VolumeSpec {
            name: "vm-<1>&.qcow2".into(),
            capacity_bytes: 10 << 30,
            format: "qcow2".into(),
            backing: Some((PathBuf::from("/img/a&b/base.qcow2"), "qcow2".into())),
            mode: None,
        };
        let xml = spec.to_xml().unwrap();
        assert!(xml.contains("<name>vm-&lt;1&gt;&amp;.qcow2</name>"), "{xml}");
        assert!(xml.contains("<path>/img/a&amp;b/base.qcow2</path>"), "{xml}");
        assert!(xml.contains(r#"<capacity unit="bytes">10737418240</capacity>"#), "{xml}");
        assert!(!xml.contains("permissions"), "{xml}");
        // What we write reads back as itself.
        let back = VolumeSummary::parse(&xml).unwrap();
        assert_eq!(back.name, spec.name);
        assert_eq!(back.capacity_bytes, 10 << 30);
        assert_eq!(back.format.as_deref(), Some("qcow2"));
        assert_eq!(back.backing_path.as_deref(), Some(std::path::Path::new("/img/a&b/base.qcow2")));
        assert_eq!(back.backing_format.as_deref(), Some("qcow2"));

        let ro = VolumeSpec { mode: Some("0444".into()), backing: None, ..spec };
        let back = VolumeSummary::parse(&ro.to_xml().unwrap()).unwrap();
        assert_eq!((back.mode.as_deref(), back.backing_path), (Some("0444"), None));
    }

    #[test]
    fn libvirts_volume_and_pool_xml_read_back() {
        // As libvirt 9 prints a thin clone in a dir pool.
        let vol = r#"<volume type='file'>
  <name>vm-1.qcow2</name>
  <key>/var/lib/lab/vms/vm-1.qcow2</key>
  <capacity unit='bytes'>2147483648</capacity>
  <allocation unit='bytes'>200704</allocation>
  <physical unit='bytes'>196624</physical>
  <target>
    <path>/var/lib/lab/vms/vm-1.qcow2</path>
    <format type='qcow2'/>
    <permissions>
      <mode>0600</mode>
      <owner>0</owner>
    </permissions>
  </target>
  <backingStore>
    <path>/var/lib/lab/base.qcow2</path>
    <format type='qcow2'/>
  </backingStore>
</volume>"#;
        let v = VolumeSummary::parse(vol).unwrap();
        assert_eq!(v.path, PathBuf::from("/var/lib/lab/vms/vm-1.qcow2"));
        assert_eq!((v.capacity_bytes, v.allocation_bytes, v.physical_bytes), (2 << 30, 200704, 196624));
        assert_eq!(v.mode.as_deref(), Some("0600"));
        assert_eq!(v.backing_path, Some(PathBuf::from("/var/lib/lab/base.qcow2")));

        let pool = r#"<pool type='dir'>
  <name>lab-vms</name>
  <capacity unit='bytes'>105089261568</capacity>
  <allocation unit='bytes'>1</allocation>
  <available unit='KiB'>2</available>
  <target><path>/var/lib/lab/vms</path></target>
</pool>"#;
        let p = PoolSummary::parse(pool).unwrap();
        assert_eq!((p.name.as_str(), p.kind.as_str()), ("lab-vms", "dir"));
        assert_eq!(p.available_bytes, 2048);
        assert_eq!(p.target_path, Some(PathBuf::from("/var/lib/lab/vms")));
        assert!(VolumeSummary::parse("<volume><capacity unit='parsec'>1</capacity></volume>").is_err());
    }

    #[test]
    fn dir_pool_escapes_its_path() {
        let xml = dir_pool_xml("lab-dir-1", std::path::Path::new("/tmp/<x>&y")).unwrap();
        assert!(xml.contains("<path>/tmp/&lt;x&gt;&amp;y</path>"), "{xml}");
        let p = PoolSummary::parse(&xml).unwrap();
        assert_eq!(p.target_path, Some(PathBuf::from("/tmp/<x>&y")));
    }
}
