//! `lab_vm.cdrom`: an ISO image in the VM's CD-ROM drive, inserted, changed and ejected in place.
//!
//! Every domain is defined with the drive (an empty tray when `cdrom` is unset: an IDE drive cannot
//! be hot-plugged, its medium can), so a change is a media change through libvirt's device update:
//! live in a running guest, no restart, and in the definition. A domain defined before the drive
//! existed gets it by a redefinition (and a restart) on its first `cdrom`.

use std::path::Path;

use crate::backends::domain_xml::DomainSummary;
use crate::backends::libvirt::Libvirt;
use crate::protocol::{AttrPath, DiagResultExt, Diagnostic, Diagnostics};
use crate::validate as rules;

use super::LabVmState;
use super::config::VmConfig;

const ATTR: &str = "cdrom";

/// Plan-time check of the value alone (no host access).
pub(super) fn validate(c: &LabVmState, d: &mut Diagnostics) {
    if let Some(iso) = c.cdrom.known() {
        rules::check(d, AttrPath::root(ATTR), rules::absolute_path(iso));
    }
}

/// Plan-time check on the libvirt host (only when it is this host): the ISO is a file that can be
/// opened for reading. It is never opened for writing, here or by qemu (`<readonly/>`).
pub(super) fn check_on_host(planned: &LabVmState) -> Result<(), Diagnostic> {
    let Some(iso) = planned.cdrom.known() else { return Ok(()) };
    let problem = match std::fs::metadata(iso) {
        Ok(m) if m.is_file() => match std::fs::File::open(iso) {
            Ok(_) => return Ok(()),
            Err(e) => format!("`{iso}` cannot be read: {e}"),
        },
        Ok(_) => format!("`{iso}` is not a file (an ISO image is expected)"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("`{iso}` does not exist on the libvirt host"),
        Err(e) => format!("`{iso}` cannot be read: {e}"),
    };
    Err(Diagnostic::attr_error(AttrPath::root(ATTR), "ISO image not usable", problem))
}

/// Whether `cdrom` can only be applied by redefining the domain: it has no drive yet.
pub(super) fn needs_drive(cfg: &VmConfig, found: &DomainSummary) -> bool {
    cfg.cdrom.is_some() && !found.cdrom_drive
}

/// Insert, change or eject the medium when the domain's drive holds something else than `cfg`
/// asks for (compared with libvirt, not the prior state: a change made out of band is undone).
pub(super) async fn apply(lv: &Libvirt, cfg: &VmConfig, found: &DomainSummary) -> Result<(), Diagnostics> {
    if !found.cdrom_drive || found.cdrom == cfg.cdrom {
        return Ok(());
    }
    lv.change_media(&cfg.name, cfg.cdrom.as_deref()).await.or_diag("Changing the CD-ROM medium")?;
    Ok(())
}

/// What the domain's drive holds, for read (drift) and import.
pub(super) fn read(found: &DomainSummary) -> Option<String> {
    found.cdrom.as_deref().map(Path::to_string_lossy).map(|p| p.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Attr;
    use crate::resources::vm::test_support::*;

    #[test]
    fn a_relative_iso_path_is_an_error_on_cdrom() {
        let mut c = config();
        c.cdrom = Attr::Known("isos/tools.iso".into());
        let mut d = Diagnostics::new();
        validate(&c, &mut d);
        assert_eq!(paths(&d), ["cdrom"]);
        c.cdrom = Attr::Known("/isos/tools.iso".into());
        let mut d = Diagnostics::new();
        validate(&c, &mut d);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn the_host_check_wants_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let iso = dir.path().join("tools.iso");
        std::fs::write(&iso, b"CD001").unwrap();
        let mut c = config();
        for (path, ok) in [
            (iso.to_string_lossy().into_owned(), true),
            (dir.path().to_string_lossy().into_owned(), false),
            (dir.path().join("missing.iso").to_string_lossy().into_owned(), false),
        ] {
            c.cdrom = Attr::Known(path.clone());
            let got = check_on_host(&c);
            assert_eq!(got.is_ok(), ok, "{path}: {got:?}");
            if let Err(diag) = got {
                assert_eq!(diag.attribute.map(|a| a.to_string()).as_deref(), Some("cdrom"));
            }
        }
        c.cdrom = Attr::Unknown;
        assert!(check_on_host(&c).is_ok(), "an unknown path is checked at apply");
    }
}
