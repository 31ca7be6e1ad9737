//! What a create finds under its own names that Terraform never recorded, because a killed apply
//! lost the state before it was written: a domain, or an overlay or seed volume without one. The
//! rule is lifecycle.rs's (above `exists_unowned`): ours and matching the plan is adopted, ours and
//! different is removed and made anew, not ours is never touched. Volumes are read through libvirt
//! (storage.rs), so this works on any host the connection reaches.

use std::path::Path;

use crate::backends::domain_xml::DomainSummary;
use crate::backends::libvirt::{Libvirt, VmInfo, Volume};
use crate::protocol::log;
use crate::protocol::{AttrPath, DiagResultExt, Diagnostic, Diagnostics};

use super::config::VmConfig;
use super::storage::{self, Placement};

/// A domain found under the planned name.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FoundDomain {
    /// It carries this provider's marker and holds the planned definition, on an overlay over the
    /// planned base image: adopt it.
    Matches,
    /// It carries the marker but differs in the fields named: remove it, then create anew.
    Differs(Vec<&'static str>),
    /// No marker: never adopted, changed or removed.
    Unowned,
}

/// Judge `found` against the plan; `backing` is the backing file of the domain's overlay.
pub(super) fn judge(cfg: &VmConfig, found: &DomainSummary, backing: Option<&Path>) -> FoundDomain {
    if !found.lab_marker {
        return FoundDomain::Unowned;
    }
    let seed = cfg.cloud_init.as_ref().map(|_| cfg.seed_path.clone());
    let mut differs = cfg.domain_spec(None, String::new(), seed).differences(found);
    if backing != Some(cfg.base_image.as_path()) {
        differs.push("overlay backing file");
    }
    if differs.is_empty() { FoundDomain::Matches } else { FoundDomain::Differs(differs) }
}

/// `judge`, reading the backing file of the domain's overlay first.
pub(super) async fn judge_domain(lv: &Libvirt, cfg: &VmConfig, found: &DomainSummary) -> FoundDomain {
    let backing = match &found.disk {
        Some(disk) => overlay_at(lv, disk).await.and_then(|v| v.summary.backing_path),
        None => None,
    };
    judge(cfg, found, backing.as_deref())
}

/// The qcow2 volume at `path`; `None` when it is not a qcow2 image, or cannot be read (then it is
/// not taken for ours).
async fn overlay_at(lv: &Libvirt, path: &Path) -> Option<Volume> {
    let vol = storage::volume_at(lv, path).await.ok()??;
    (vol.summary.format.as_deref() == Some("qcow2")).then_some(vol)
}

/// Whether `vol` is a NoCloud seed written for the VM `name`: its instance id is `<name>-` and
/// the 12 hex digits of the content digest (`VmConfig::seed`).
async fn is_seed_of(lv: &Libvirt, vol: &Volume, name: &str) -> Result<bool, Diagnostics> {
    Ok(seed_id_is_of(storage::seed_instance_id(lv, vol).await?.as_deref(), name))
}

fn seed_id_is_of(id: Option<&str>, name: &str) -> bool {
    id.and_then(|id| id.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|digest| digest.len() == 12 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Remove a domain of ours that differs from the plan: power it off, undefine it, and remove its
/// overlay (when it is a thin clone of the base image the domain records) and its seed (when it
/// is this VM's seed). Its disks could be anywhere the domain names, hence those checks.
pub(super) async fn remove_domain(lv: &Libvirt, found: &VmInfo) -> Result<(), Diagnostics> {
    let s = &found.summary;
    lv.destroy(&s.name).await.or_diag("Stopping a leftover domain")?;
    lv.undefine(&s.name).await.or_diag("Undefining a leftover domain")?;
    if let Some(disk) = &s.disk {
        let base = s.metadata.base_image.as_deref().map(Path::new);
        match overlay_at(lv, disk).await {
            Some(vol) if base.is_some() && vol.summary.backing_path.as_deref() == base => {
                lv.delete_volume(&vol.pool, &vol.summary.name).await.or_diag("Removing a leftover overlay")?;
            }
            _ => log::warn(&format!(
                "{}: leaving {}: not a thin clone of the domain's base image",
                s.name,
                disk.display()
            )),
        }
    }
    if let Some(seed) = &s.seed
        && let Some(vol) = storage::volume_at(lv, seed).await.or_diag("Looking up a leftover seed")?
        && is_seed_of(lv, &vol, &s.name).await?
    {
        lv.delete_volume(&vol.pool, &vol.summary.name).await.or_diag("Removing a leftover seed")?;
    }
    Ok(())
}

/// Volumes under the planned names while no domain has the name: what a create killed between
/// its overlay and define steps left, or what an out-of-band `virsh undefine` did. Removed only
/// when they are provably this VM's: the overlay is a qcow2 thin clone of the planned base image
/// (so it holds only what a guest of this VM wrote over that base; no other image at that name
/// has that backing file by chance), the seed carries this VM's instance id. Anything else under
/// those names is someone's data: the create stops and says so.
pub(super) async fn clear_stale_volumes(lv: &Libvirt, cfg: &VmConfig, place: &Placement) -> Result<(), Diagnostics> {
    let overlay = storage::overlay_volume(&cfg.name);
    if let Some(vol) = lv.volume(&place.pool, &overlay).await.or_diag("Looking up a leftover overlay")? {
        let backing = (vol.summary.format.as_deref() == Some("qcow2")).then_some(vol.summary.backing_path.clone());
        if let Some(why) = overlay_not_ours(backing.flatten().as_deref(), &cfg.base_image) {
            return Err(not_ours(cfg, &vol.summary.path, &why).into());
        }
        log::debug(&format!("{}: removing leftover overlay {}", cfg.name, vol.summary.path.display()));
        lv.delete_volume(&place.pool, &overlay).await.or_diag("Removing a leftover overlay")?;
    }
    let seed = storage::seed_volume(&cfg.name);
    if let Some(vol) = lv.volume(&place.pool, &seed).await.or_diag("Looking up a leftover seed")? {
        if !is_seed_of(lv, &vol, &cfg.name).await? {
            return Err(not_ours(cfg, &vol.summary.path, "is not a NoCloud seed made for this VM").into());
        }
        log::debug(&format!("{}: removing leftover seed {}", cfg.name, vol.summary.path.display()));
        lv.delete_volume(&place.pool, &seed).await.or_diag("Removing a leftover seed")?;
    }
    Ok(())
}

/// Why an overlay volume backed by `backing` (`None`: not a qcow2 thin clone) is not one of
/// this VM's over `base`; `None` when it is.
fn overlay_not_ours(backing: Option<&Path>, base: &Path) -> Option<String> {
    match backing {
        Some(b) if b == base => None,
        Some(b) => Some(format!("is a thin clone of `{}`, not of `base_image`", b.display())),
        None => Some("is not a qcow2 thin clone, not of `base_image`".into()),
    }
}

fn not_ours(cfg: &VmConfig, path: &Path, why: &str) -> Diagnostic {
    Diagnostic::attr_error(
        AttrPath::root("name"),
        "A disk of another VM is in the way",
        format!(
            "`{}` exists and {why}, so it was not made for `{}` and is left alone. Move or remove it, or \
             choose another `name`, `overlay_dir` or `storage_pool`.",
            path.display(),
            cfg.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Attr;
    use crate::resources::vm::test_support::config;

    fn planned() -> VmConfig {
        let mut c = config();
        c.kernel = Attr::Known("/img/vmlinuz".into());
        c.cloud_init = Attr::Known("#cloud-config\n".into());
        VmConfig::from_state(&c).unwrap()
    }

    fn defined(cfg: &VmConfig) -> DomainSummary {
        let spec = cfg.domain_spec(None, "52:54:00:00:00:01".into(), Some(cfg.seed_path.clone()));
        DomainSummary::parse(&spec.to_xml().unwrap()).unwrap()
    }

    #[test]
    fn a_domain_of_ours_is_adopted_only_when_it_is_the_plan() {
        let cfg = planned();
        let base = cfg.base_image.clone();
        let found = defined(&cfg);
        assert_eq!(judge(&cfg, &found, Some(&base)), FoundDomain::Matches);
        // The same domain over another base image, or over an unreadable overlay.
        let other = Path::new("/img/other.qcow2");
        assert_eq!(judge(&cfg, &found, Some(other)), FoundDomain::Differs(vec!["overlay backing file"]));
        assert_eq!(judge(&cfg, &found, None), FoundDomain::Differs(vec!["overlay backing file"]));
        // Planned with more memory and other user data: the old seed's id no longer matches.
        let mut c = config();
        c.kernel = Attr::Known("/img/vmlinuz".into());
        c.cloud_init = Attr::Known("#cloud-config\nx: 1\n".into());
        c.memory_mb = Attr::Known(1024);
        let changed = VmConfig::from_state(&c).unwrap();
        assert_eq!(judge(&changed, &found, Some(&base)), FoundDomain::Differs(vec!["memory", "metadata"]));
    }

    #[test]
    fn a_domain_without_the_marker_is_never_ours() {
        let cfg = planned();
        let mut found = defined(&cfg);
        found.lab_marker = false;
        assert_eq!(judge(&cfg, &found, Some(&cfg.base_image)), FoundDomain::Unowned);
    }

    #[test]
    fn leftover_volumes_are_ours_only_when_provably_this_vms() {
        let base = Path::new("/img/base.qcow2");
        assert_eq!(overlay_not_ours(Some(base), base), None);
        let other = overlay_not_ours(Some(Path::new("/img/other.qcow2")), base).unwrap();
        assert!(other.contains("is a thin clone of `/img/other.qcow2`"), "{other}");
        assert!(overlay_not_ours(None, base).unwrap().contains("is not a qcow2 thin clone"));

        let cfg = planned();
        let id = cfg.seed("#cloud-config\n").instance_id;
        assert!(seed_id_is_of(Some(&id), "vm-1"));
        // vm-10's seed starts with `vm-1` too; an id without the digest; no seed at all.
        let mut c = config();
        c.name = Attr::Known("vm-10".into());
        let other = VmConfig::from_state(&c).unwrap().seed("#cloud-config\n").instance_id;
        assert!(!seed_id_is_of(Some(&other), "vm-1"));
        assert!(!seed_id_is_of(Some("vm-1-notadigest!"), "vm-1"));
        assert!(!seed_id_is_of(None, "vm-1"));
    }
}
