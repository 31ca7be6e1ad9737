//! What a create finds under its own names that Terraform never recorded, because a killed apply
//! lost the state before it was written: a domain, or an overlay or seed file without one. The
//! rule is lifecycle.rs's (above `exists_unowned`): ours and matching the plan is adopted, ours and
//! different is removed and made anew, not ours is never touched.

use std::path::{Path, PathBuf};

use crate::backends::domain_xml::DomainSummary;
use crate::backends::libvirt::{Libvirt, VmInfo};
use crate::backends::{qcow2, seed};
use crate::protocol::log;
use crate::protocol::{AttrPath, DiagResultExt, Diagnostic, Diagnostics};

use super::config::VmConfig;

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
pub(super) async fn judge_domain(cfg: &VmConfig, found: &DomainSummary) -> FoundDomain {
    let backing = match &found.disk {
        Some(disk) => backing_file(disk).await,
        None => None,
    };
    judge(cfg, found, backing.as_deref())
}

/// The backing file of the qcow2 image at `path`; `None` when it is not a qcow2 thin clone, or
/// cannot be read (then it is not taken for ours).
async fn backing_file(path: &Path) -> Option<PathBuf> {
    let info = qcow2::info(path).await.ok()?;
    if info.format != "qcow2" {
        return None;
    }
    info.full_backing_filename.or(info.backing_filename).map(PathBuf::from)
}

/// Whether the file at `path` is a NoCloud seed written for the VM `name`: its instance id is
/// `<name>-` and the 12 hex digits of the content digest (`VmConfig::seed`).
async fn is_seed_of(path: &Path, name: &str) -> bool {
    let id = seed::read_instance_id(path).await.ok().flatten();
    id.as_deref()
        .and_then(|id| id.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|digest| digest.len() == 12 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Remove a domain of ours that differs from the plan: power it off, undefine it, and remove its
/// overlay (when it is a thin clone of the base image the domain records) and its seed (when it
/// is this VM's seed). Its disk files could be anywhere the domain names, hence those checks.
pub(super) async fn remove_domain(lv: &Libvirt, found: &VmInfo) -> Result<(), Diagnostics> {
    let s = &found.summary;
    lv.destroy(&s.name).await.or_diag("Stopping a leftover domain")?;
    lv.undefine(&s.name).await.or_diag("Undefining a leftover domain")?;
    if let Some(disk) = &s.disk {
        let base = s.metadata.base_image.as_deref().map(Path::new);
        if base.is_some() && backing_file(disk).await.as_deref() == base {
            qcow2::delete(disk).await.or_diag("Removing a leftover overlay")?;
        } else {
            log::warn(&format!("{}: leaving {}: not a thin clone of the domain's base image", s.name, disk.display()));
        }
    }
    if let Some(seed) = &s.seed
        && is_seed_of(seed, &s.name).await
    {
        qcow2::delete(seed).await.or_diag("Removing a leftover seed")?;
    }
    Ok(())
}

/// Files under the planned names while no domain has the name: what a create killed between its
/// overlay and define steps left, or what an out-of-band `virsh undefine` did. Removed only when
/// they are provably this VM's: the overlay is a qcow2 thin clone of the planned base image (so
/// it holds only what a guest of this VM wrote over that base; no other file at that path has
/// that backing file by chance), the seed carries this VM's instance id. Anything else at those
/// paths is someone's data: the create stops and says so.
pub(super) async fn clear_stale_files(cfg: &VmConfig) -> Result<(), Diagnostics> {
    if cfg.overlay_path.exists() {
        let backing = backing_file(&cfg.overlay_path).await;
        if backing.as_deref() != Some(cfg.base_image.as_path()) {
            let holds = backing
                .map_or("is not a qcow2 thin clone".to_string(), |b| format!("is a thin clone of `{}`", b.display()));
            return Err(not_ours(cfg, &cfg.overlay_path, &format!("{holds}, not of `base_image`")).into());
        }
        log::debug(&format!("{}: removing leftover overlay {}", cfg.name, cfg.overlay_path.display()));
        qcow2::delete(&cfg.overlay_path).await.or_diag("Removing a leftover overlay")?;
    }
    if cfg.seed_path.exists() {
        if !is_seed_of(&cfg.seed_path, &cfg.name).await {
            return Err(not_ours(cfg, &cfg.seed_path, "is not a NoCloud seed made for this VM").into());
        }
        log::debug(&format!("{}: removing leftover seed {}", cfg.name, cfg.seed_path.display()));
        qcow2::delete(&cfg.seed_path).await.or_diag("Removing a leftover seed")?;
    }
    Ok(())
}

fn not_ours(cfg: &VmConfig, path: &Path, why: &str) -> Diagnostic {
    Diagnostic::attr_error(
        AttrPath::root("name"),
        "A file of another VM is in the way",
        format!(
            "`{}` exists and {why}, so it was not made for `{}` and is left alone. Move or remove it, or \
             choose another `name` or `overlay_dir`.",
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

    #[tokio::test]
    async fn leftover_files_are_removed_only_when_provably_this_vms() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("16M")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut c = config();
        c.base_image = Attr::Known(base.to_string_lossy().into_owned());
        c.overlay_dir = Attr::Known(dir.path().join("vms").to_string_lossy().into_owned());
        c.cloud_init = Attr::Known("#cloud-config\n".into());
        let cfg = VmConfig::from_state(&c).unwrap();

        // What a create killed after its overlay and seed steps leaves: both go.
        qcow2::create_overlay(&cfg.base_image, &cfg.overlay_path, None).await.unwrap();
        cfg.seed("#cloud-config\n").write_image(&cfg.seed_path).await.unwrap();
        clear_stale_files(&cfg).await.unwrap();
        assert!(!cfg.overlay_path.exists() && !cfg.seed_path.exists());

        // A seed of another VM, an overlay over another base, a plain file: all stay, and say why.
        let mut other = c.clone();
        other.name = Attr::Known("vm-10".into());
        VmConfig::from_state(&other).unwrap().seed("#cloud-config\n").write_image(&cfg.seed_path).await.unwrap();
        let err = clear_stale_files(&cfg).await.unwrap_err();
        assert!(err.0[0].detail.contains("not a NoCloud seed made for this VM"), "{:?}", err.0[0]);
        assert_eq!(err.0[0].attribute, Some(AttrPath::root("name")));
        assert!(cfg.seed_path.exists());
        std::fs::remove_file(&cfg.seed_path).unwrap();

        let other_base = dir.path().join("other.qcow2");
        std::fs::copy(&base, &other_base).unwrap();
        qcow2::create_overlay(&other_base, &cfg.overlay_path, None).await.unwrap();
        let err = clear_stale_files(&cfg).await.unwrap_err();
        assert!(err.0[0].detail.contains("is a thin clone of"), "{:?}", err.0[0]);
        assert!(cfg.overlay_path.exists());
        std::fs::write(&cfg.overlay_path, b"a student's notes").unwrap();
        let err = clear_stale_files(&cfg).await.unwrap_err();
        assert!(err.0[0].detail.contains("is not a qcow2 thin clone"), "{:?}", err.0[0]);
        assert_eq!(std::fs::read(&cfg.overlay_path).unwrap(), b"a student's notes");
    }
}
