//! Where a VM's disks live: libvirt storage volumes in a pool on the VM's host, made, inspected
//! and deleted through its libvirt connection (no filesystem of the provider's own is involved).
//! The pool is the VM's `storage_pool` (the provider's `storage_pool` by default) or, when none is
//! named, the dir pool over `overlay_dir` (a transient pool `lab-dir-<digest>` is made when the
//! host has no pool over that directory). The overlay is `<name>.qcow2`, a qcow2 volume whose
//! backing store is the base image; the seed is `<name>-seed.img`, a raw volume holding the
//! NoCloud image's bytes.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::backends::libvirt::{Libvirt, Volume};
use crate::backends::volume_xml::VolumeSpec;
use crate::lifecycle::{Rollback, shell_command};
use crate::protocol::diag::error_chain;
use crate::protocol::{AttrPath, DiagResultExt, Diagnostic, Diagnostics};

use super::config::VmConfig;

/// Seeds are a few MiB (`NoCloudSeed::image`); anything far larger at a seed's name is not one.
const SEED_READ_LIMIT: u64 = 64 << 20;

/// The pool a VM's volumes are in, and its directory on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Placement {
    pub(super) pool: String,
    pub(super) dir: PathBuf,
}

pub(super) fn overlay_volume(name: &str) -> String {
    format!("{name}.qcow2")
}

pub(super) fn seed_volume(name: &str) -> String {
    format!("{name}-seed.img")
}

/// The name of the transient pool the provider makes over `dir`: follows the directory, so every
/// VM (and every provider process) over one directory finds the same pool.
fn dir_pool_name(dir: &Path) -> String {
    let digest: String =
        Sha256::digest(dir.as_os_str().as_encoded_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("lab-dir-{digest}")
}

/// The VM's pool, made when it is the dir pool over a directory no pool covers yet (`build`:
/// creating the directory too). `None` only without `build`, when that directory does not exist:
/// then nothing of the VM can be there.
pub(super) async fn placement(
    lv: &Libvirt,
    storage_pool: Option<&str>,
    overlay_dir: &Path,
    build: bool,
) -> Result<Option<Placement>, Diagnostics> {
    match storage_pool {
        Some(name) => {
            let pool = lv.pool(name).await.or_diag("Looking up the storage pool")?.ok_or_else(|| {
                Diagnostic::attr_error(
                    AttrPath::root("storage_pool"),
                    "Storage pool not found",
                    format!(
                        "libvirt at {} has no storage pool `{name}`. Define one (e.g. `virsh pool-define-as {name} \
                         dir --target /var/lib/libvirt/images` and `virsh pool-start {name}`) or name another.",
                        lv.uri()
                    ),
                )
            })?;
            let dir = pool.summary.target_path.ok_or_else(|| {
                Diagnostic::attr_error(
                    AttrPath::root("storage_pool"),
                    "Storage pool has no directory",
                    format!(
                        "Pool `{name}` is of type `{}`: overlays need a pool of files (dir, fs, netfs).",
                        pool.summary.kind
                    ),
                )
            })?;
            Ok(Some(Placement { pool: name.to_string(), dir }))
        }
        None => {
            let dir = overlay_dir;
            let pool =
                lv.pool_for_dir(dir, &dir_pool_name(dir), build).await.or_diag("Finding the overlay_dir's pool")?;
            Ok(pool.map(|p| Placement { pool: p.summary.name, dir: dir.to_path_buf() }))
        }
    }
}

/// The base image as a volume of its host: by its path in any active pool, else in the dir pool
/// over its directory. `None` when no such file is there.
pub(super) async fn base_volume(lv: &Libvirt, base: &Path) -> Result<Option<Volume>, Diagnostics> {
    volume_at(lv, base).await.or_diag("Looking up the base image")
}

/// The volume at `path` on the connection's host, found through libvirt; `None` when there is none.
pub(super) async fn volume_at(
    lv: &Libvirt,
    path: &Path,
) -> Result<Option<Volume>, crate::backends::libvirt::LibvirtError> {
    if let Some(found) = lv.volume_by_path(path).await? {
        return Ok(Some(found));
    }
    let (Some(dir), Some(file)) = (path.parent(), path.file_name()) else { return Ok(None) };
    let Some(pool) = lv.pool_for_dir(dir, &dir_pool_name(dir), false).await? else { return Ok(None) };
    lv.volume(&pool.summary.name, &file.to_string_lossy()).await
}

/// Why the base image cannot back an overlay, in the user's words (`None`: it can).
pub(super) fn base_problem(base: &Volume, disk_size_bytes: Option<u64>) -> Option<(AttrPath, String)> {
    let s = &base.summary;
    match s.format.as_deref() {
        Some("qcow2" | "raw") => {}
        other => {
            let format = other.unwrap_or("unknown");
            return Some((
                AttrPath::root("base_image"),
                format!("`{}` is a {format} image: lab_vm overlays need a qcow2 or raw base", s.path.display()),
            ));
        }
    }
    match disk_size_bytes {
        // qemu-img would accept a smaller overlay, which would cut the guest's filesystem short.
        Some(size) if size < s.capacity_bytes => Some((
            AttrPath::root("disk_size_gb"),
            format!(
                "{} GiB is smaller than the base image `{}` ({} bytes, {:.1} GiB)",
                size >> 30,
                s.path.display(),
                s.capacity_bytes,
                s.capacity_bytes as f64 / f64::from(1u32 << 30)
            ),
        )),
        _ => None,
    }
}

/// Make the VM's overlay: a qcow2 volume backed by the base image (path and format recorded, so
/// nothing is probed). Its undo is pushed first: a create cut off by a lost connection may still
/// have made it.
pub(super) async fn create_overlay(
    lv: &Libvirt,
    cfg: &VmConfig,
    place: &Placement,
    rollback: &mut Rollback,
) -> Result<Volume, Diagnostics> {
    let base = base_volume(lv, &cfg.base_image).await?.ok_or_else(|| base_not_found(lv, &cfg.base_image))?;
    if let Some((path, why)) = base_problem(&base, cfg.disk_size_bytes) {
        return Err(Diagnostic::attr_error(path, "Cannot make the overlay", why).into());
    }
    let format = base.summary.format.clone().unwrap_or_else(|| "raw".into());
    let spec = VolumeSpec {
        name: overlay_volume(&cfg.name),
        capacity_bytes: cfg.disk_size_bytes.unwrap_or(base.summary.capacity_bytes),
        format: "qcow2".into(),
        backing: Some((cfg.base_image.clone(), format)),
        mode: None,
    };
    undo_volume(rollback, lv, "overlay", &place.pool, &spec.name);
    lv.create_volume(&place.pool, &spec).await.or_diag("Creating the overlay volume")
}

/// Write the seed image's bytes as the raw volume `<name>-seed.img` (replacing the one there: a
/// running guest keeps reading the old one until its restart, as with a file renamed over).
pub(super) async fn write_seed(
    lv: &Libvirt,
    cfg: &VmConfig,
    place: &Placement,
    bytes: &[u8],
    rollback: Option<&mut Rollback>,
) -> Result<Volume, Diagnostics> {
    let name = seed_volume(&cfg.name);
    lv.delete_volume(&place.pool, &name).await.or_diag("Replacing the NoCloud seed")?;
    let spec = VolumeSpec {
        name: name.clone(),
        capacity_bytes: bytes.len() as u64,
        format: "raw".into(),
        backing: None,
        mode: None,
    };
    if let Some(rollback) = rollback {
        undo_volume(rollback, lv, "seed", &place.pool, &name);
    }
    let made = lv.create_volume(&place.pool, &spec).await.or_diag("Creating the NoCloud seed volume")?;
    lv.upload_volume(&place.pool, &name, bytes).await.or_diag("Uploading the NoCloud seed")?;
    Ok(made)
}

/// The seed volume's instance id; `None` when it is not a NoCloud seed this provider wrote.
pub(super) async fn seed_instance_id(lv: &Libvirt, vol: &Volume) -> Result<Option<String>, Diagnostics> {
    if vol.summary.capacity_bytes > SEED_READ_LIMIT {
        return Ok(None);
    }
    let bytes = lv
        .download_volume(&vol.pool, &vol.summary.name, SEED_READ_LIMIT)
        .await
        .or_diag("Reading a NoCloud seed volume")?;
    Ok(crate::backends::seed::instance_id(bytes))
}

pub(super) fn base_not_found(lv: &Libvirt, base: &Path) -> Diagnostic {
    Diagnostic::attr_error(
        AttrPath::root("base_image"),
        "Base image not found",
        format!(
            "`{}` does not exist on the libvirt host ({}): no storage pool holds it, and its directory has no \
             such file.",
            base.display(),
            lv.uri()
        ),
    )
}

/// Undo step of a create: delete the volume `name` of `pool`.
pub(super) fn undo_volume(rollback: &mut Rollback, lv: &Libvirt, what: &str, pool: &str, name: &str) {
    let (lv2, pool2, name2) = (lv.clone(), pool.to_string(), name.to_string());
    rollback.push_with_manual(
        format!("{what} volume {name} (pool {pool})"),
        shell_command(["virsh", "-c", lv.uri(), "vol-delete", "--pool", pool, name]),
        async move { lv2.delete_volume(&pool2, &name2).await.map_err(|e| error_chain(&e)) },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::volume_xml::VolumeSummary;

    fn base(format: &str, capacity: u64) -> Volume {
        Volume {
            pool: "p".into(),
            summary: VolumeSummary {
                name: "base.qcow2".into(),
                path: "/img/base.qcow2".into(),
                format: Some(format.into()),
                capacity_bytes: capacity,
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_base_must_be_qcow2_or_raw_and_not_larger_than_the_disk() {
        assert_eq!(base_problem(&base("qcow2", 2 << 30), None), None);
        assert_eq!(base_problem(&base("raw", 2 << 30), Some(2 << 30)), None);
        let (path, why) = base_problem(&base("qcow2", 3 << 30), Some(2 << 30)).unwrap();
        assert_eq!(path, AttrPath::root("disk_size_gb"));
        assert!(why.contains("2 GiB is smaller than the base image `/img/base.qcow2`"), "{why}");
        let (path, why) = base_problem(&base("vmdk", 1), None).unwrap();
        assert_eq!(path, AttrPath::root("base_image"));
        assert!(why.contains("vmdk"), "{why}");
    }

    #[test]
    fn a_directory_always_gets_the_same_pool_name() {
        let a = dir_pool_name(Path::new("/var/lib/lab/vms"));
        assert_eq!(a, dir_pool_name(Path::new("/var/lib/lab/vms")));
        assert_ne!(a, dir_pool_name(Path::new("/var/lib/lab/vms2")));
        assert!(a.starts_with("lab-dir-") && a.len() == "lab-dir-".len() + 12, "{a}");
        assert!(crate::validate::pool_name(&a).is_ok());
        assert_eq!((overlay_volume("vm-1"), seed_volume("vm-1")), ("vm-1.qcow2".into(), "vm-1-seed.img".into()));
    }
}
