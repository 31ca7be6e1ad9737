//! qcow2 overlays (thin clones) over a read-only base image, through `qemu-img`.
//!
//! Arguments go to `qemu-img` as an argv (no shell). The backing file is always recorded as an
//! absolute path with its format (`-b /abs/base -F qcow2`): a relative path would resolve
//! against the overlay's directory, and a missing format makes qemu probe it (unsafe).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    #[error("base image {0} must be an absolute path")]
    RelativeBase(PathBuf),
    #[error("overlay {0} already exists; refusing to overwrite it")]
    OverlayExists(PathBuf),
    #[error("running qemu-img to {what}: {source}")]
    Spawn { what: String, source: std::io::Error },
    #[error("qemu-img failed to {what}: {stderr}")]
    Failed { what: String, stderr: String },
    #[error("overlay {overlay} cannot be {size} bytes: smaller than base image {base} ({base_size} bytes)")]
    Shrink { overlay: PathBuf, size: u64, base: PathBuf, base_size: u64 },
    #[error("reading qemu-img info for {path}: {reason}")]
    Info { path: PathBuf, reason: String },
    #[error("deleting {path}: {source}")]
    Delete { path: PathBuf, source: std::io::Error },
    #[error("creating directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
}

/// One image of a backing chain, as `qemu-img info --output=json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageInfo {
    pub filename: String,
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    #[serde(rename = "backing-filename")]
    pub backing_filename: Option<String>,
    #[serde(rename = "full-backing-filename")]
    pub full_backing_filename: Option<String>,
    #[serde(rename = "backing-filename-format")]
    pub backing_format: Option<String>,
}

async fn qemu_img(what: &str, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, Qcow2Error> {
    let out = Command::new("qemu-img")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| Qcow2Error::Spawn { what: what.to_string(), source })?;
    if !out.status.success() {
        return Err(Qcow2Error::Failed {
            what: what.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// The image and its backing files, top first. `-U` (force share) so an image in use by a
/// running guest can be inspected.
pub async fn backing_chain(path: &Path) -> Result<Vec<ImageInfo>, Qcow2Error> {
    let what = format!("inspect {}", path.display());
    let out = qemu_img(
        &what,
        &["info".as_ref(), "-U".as_ref(), "--backing-chain".as_ref(), "--output=json".as_ref(), path.as_os_str()],
    )
    .await?;
    serde_json::from_slice(&out).map_err(|e| Qcow2Error::Info { path: path.to_path_buf(), reason: e.to_string() })
}

/// Information about one image (the top of its chain).
pub async fn info(path: &Path) -> Result<ImageInfo, Qcow2Error> {
    backing_chain(path)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Qcow2Error::Info { path: path.to_path_buf(), reason: "empty backing chain".into() })
}

/// Create `overlay` backed by `base`. `size_bytes` grows the virtual disk (it must not be smaller
/// than the base); `None` keeps the base's size. The base is only ever opened read-only.
pub async fn create_overlay(base: &Path, overlay: &Path, size_bytes: Option<u64>) -> Result<ImageInfo, Qcow2Error> {
    if !base.is_absolute() {
        return Err(Qcow2Error::RelativeBase(base.to_path_buf()));
    }
    if overlay.exists() {
        return Err(Qcow2Error::OverlayExists(overlay.to_path_buf()));
    }
    if let Some(dir) = overlay.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| Qcow2Error::CreateDir { path: dir.to_path_buf(), source })?;
    }
    let base_info = info(base).await?;
    // qemu-img accepts a smaller overlay, which would cut the guest's filesystem short.
    if let Some(size) = size_bytes
        && size < base_info.virtual_size
    {
        return Err(Qcow2Error::Shrink {
            overlay: overlay.to_path_buf(),
            size,
            base: base.to_path_buf(),
            base_size: base_info.virtual_size,
        });
    }
    let base_format = base_info.format;
    let size = size_bytes.map(|s| s.to_string());
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "create".as_ref(),
        "-q".as_ref(),
        "-f".as_ref(),
        "qcow2".as_ref(),
        "-b".as_ref(),
        base.as_os_str(),
        "-F".as_ref(),
        base_format.as_ref(),
        overlay.as_os_str(),
    ];
    if let Some(size) = &size {
        args.push(size.as_ref());
    }
    let what = format!("create overlay {} over {}", overlay.display(), base.display());
    qemu_img(&what, &args).await?;
    info(overlay).await
}

/// Remove an overlay or seed file. Already gone is fine (delete is idempotent).
pub async fn delete(path: &Path) -> Result<(), Qcow2Error> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Qcow2Error::Delete { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn sha256(path: &Path) -> Vec<u8> {
        Sha256::digest(std::fs::read(path).unwrap()).to_vec()
    }

    async fn tiny_base(dir: &Path) -> PathBuf {
        let base = dir.join("base.qcow2");
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("64M")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        base
    }

    #[tokio::test]
    async fn overlay_over_base_records_absolute_backing_and_leaves_base_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let base = tiny_base(dir.path()).await;
        let before = sha256(&base);
        let overlay = dir.path().join("vms/vm-1.qcow2");

        let made = create_overlay(&base, &overlay, Some(128 * 1024 * 1024)).await.unwrap();
        assert_eq!(made.format, "qcow2");
        assert_eq!(made.virtual_size, 128 * 1024 * 1024, "overlay grown");
        assert_eq!(made.backing_filename.as_deref(), Some(base.to_str().unwrap()));
        assert_eq!(made.backing_format.as_deref(), Some("qcow2"));

        let chain = backing_chain(&overlay).await.unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1].filename, base.to_str().unwrap());
        assert_eq!(chain[1].virtual_size, 64 * 1024 * 1024);

        // Writing into the overlay never touches the base. qemu-io (qemu-utils, scripts/deps.sh)
        // must be there: without it this check would prove nothing.
        let qemu_io = |cmd: &str| {
            let out = std::process::Command::new("qemu-io")
                .args(["-f", "qcow2", "-c", cmd])
                .arg(&overlay)
                .output()
                .unwrap_or_else(|e| panic!("running qemu-io (Debian package qemu-utils): {e}"));
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "qemu-io -c '{cmd}': {stdout}{}", String::from_utf8_lossy(&out.stderr));
            stdout
        };
        qemu_io("write -P 0x5a 0 1M");
        // A wrong pattern makes qemu-io exit 1 ("Pattern verification failed at offset ...").
        let read = qemu_io("read -P 0x5a 0 1M");
        assert!(read.contains("read 1048576/1048576 bytes") && !read.contains("failed"), "{read}");
        assert_eq!(sha256(&base), before, "base image changed");

        let again = create_overlay(&base, &overlay, None).await.unwrap_err();
        assert!(matches!(again, Qcow2Error::OverlayExists(_)), "{again}");

        delete(&overlay).await.unwrap();
        assert!(!overlay.exists());
        delete(&overlay).await.unwrap();
        assert_eq!(sha256(&base), before, "base image changed");
    }

    #[tokio::test]
    async fn errors_say_what_and_with_what() {
        let dir = tempfile::tempdir().unwrap();
        let err = create_overlay(Path::new("base.qcow2"), &dir.path().join("o.qcow2"), None).await.unwrap_err();
        assert!(matches!(err, Qcow2Error::RelativeBase(_)), "{err}");
        let missing = dir.path().join("missing.qcow2");
        let err = create_overlay(&missing, &dir.path().join("o.qcow2"), None).await.unwrap_err();
        assert!(err.to_string().contains("missing.qcow2"), "{err}");
        assert!(!dir.path().join("o.qcow2").exists());
        let base = tiny_base(dir.path()).await;
        let err = create_overlay(&base, &dir.path().join("small.qcow2"), Some(1024 * 1024)).await.unwrap_err();
        assert!(err.to_string().contains("small.qcow2"), "{err}");
    }
}
