//! cloud-init NoCloud seed: a small vfat image labelled `CIDATA` holding `user-data` and
//! `meta-data`, written with the `fatfs` crate (no external tool, no hand-written filesystem).
//! cloud-init's NoCloud datasource looks for a vfat or iso9660 filesystem labelled `cidata` or
//! `CIDATA` on any block device; `lab_vm` attaches the image as a read-only virtio disk.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("making the vfat image for seed {path}: {source}")]
    Build { path: PathBuf, source: std::io::Error },
    #[error("writing seed file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The volume label cloud-init looks for (FAT labels are upper case by convention).
pub const LABEL: &str = "CIDATA";

/// What goes into the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCloudSeed {
    /// Changes whenever the seed's content changes, so cloud-init re-runs.
    pub instance_id: String,
    pub hostname: String,
    /// The user's `#cloud-config` (or script), passed through unchanged.
    pub user_data: String,
    /// authorized_keys lines for the image's default user (`public-keys` in meta-data).
    pub public_keys: Vec<String>,
}

impl NoCloudSeed {
    /// `meta-data` as JSON (valid YAML), so no value can break out of its field.
    pub fn meta_data(&self) -> String {
        let mut meta = serde_json::json!({ "instance-id": self.instance_id, "local-hostname": self.hostname });
        if !self.public_keys.is_empty() {
            meta["public-keys"] = serde_json::json!(self.public_keys);
        }
        meta.to_string()
    }

    /// The seed image's bytes: a FAT filesystem labelled [`LABEL`] with both files in its root.
    pub fn image(&self) -> std::io::Result<Vec<u8>> {
        let meta_data = self.meta_data();
        let files = [("user-data", self.user_data.as_bytes()), ("meta-data", meta_data.as_bytes())];
        // The content rounded up to whole MiB, plus 1 MiB for the FAT, the root directory and
        // cluster slack: FAT12 for the usual seeds of a few KiB.
        const MIB: usize = 1 << 20;
        let content: usize = files.iter().map(|(_, data)| data.len()).sum();
        let size = content.div_ceil(MIB) * MIB + MIB;
        let mut disk = Cursor::new(vec![0u8; size]);
        let mut label = [b' '; 11];
        label[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
        // The volume serial (blkid's UUID) follows the instance id: distinct per VM, stable per content.
        let digest = Sha256::digest(self.instance_id.as_bytes());
        let volume_id = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
        fatfs::format_volume(&mut disk, fatfs::FormatVolumeOptions::new().volume_label(label).volume_id(volume_id))?;
        disk.set_position(0);
        {
            let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
            {
                let root = fs.root_dir();
                for (name, data) in files {
                    let mut file = root.create_file(name)?;
                    file.write_all(data)?;
                    file.flush()?;
                }
            }
            fs.unmount()?;
        }
        Ok(disk.into_inner())
    }

    /// Write the seed image to `out` (replaced atomically if present: written next to it, then renamed).
    pub async fn write_image(&self, out: &Path) -> Result<(), SeedError> {
        let bytes = self.image().map_err(|source| SeedError::Build { path: out.to_path_buf(), source })?;
        let mut tmp = out.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let written = match tokio::fs::write(&tmp, &bytes).await {
            Ok(()) => tokio::fs::rename(&tmp, out)
                .await
                .map_err(|source| SeedError::Write { path: out.to_path_buf(), source }),
            Err(source) => Err(SeedError::Write { path: tmp.clone(), source }),
        };
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        written
    }
}

/// The instance id in the `meta-data` of a seed image's bytes; `None` when they are not a FAT
/// volume labelled [`LABEL`] holding a `meta-data` with one (so not a seed this module wrote).
pub fn instance_id(bytes: Vec<u8>) -> Option<String> {
    use std::io::Read;
    let fs = fatfs::FileSystem::new(Cursor::new(bytes), fatfs::FsOptions::new()).ok()?;
    if fs.volume_label() != LABEL {
        return None;
    }
    let mut meta_data = String::new();
    fs.root_dir().open_file("meta-data").ok()?.read_to_string(&mut meta_data).ok()?;
    let meta: serde_json::Value = serde_json::from_str(&meta_data).ok()?;
    meta["instance-id"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn seed(user_data: String) -> NoCloudSeed {
        NoCloudSeed {
            instance_id: "vm-1-abc".into(),
            hostname: "vm-1".into(),
            user_data,
            public_keys: vec!["ssh-ed25519 AAAA test".into()],
        }
    }

    /// Reads the image back with fatfs: (label in the boot sector, label entry in the root
    /// directory, the root directory's file names, user-data, meta-data).
    fn read_back(bytes: Vec<u8>) -> (String, Option<String>, Vec<String>, String, String) {
        let fs = fatfs::FileSystem::new(Cursor::new(bytes), fatfs::FsOptions::new()).unwrap();
        let root = fs.root_dir();
        let names = root.iter().map(|e| e.unwrap().file_name()).collect();
        let read = |name: &str| {
            let mut s = String::new();
            root.open_file(name).unwrap().read_to_string(&mut s).unwrap();
            s
        };
        let (user_data, meta_data) = (read("user-data"), read("meta-data"));
        (fs.volume_label(), fs.read_volume_label_from_root_dir().unwrap(), names, user_data, meta_data)
    }

    #[tokio::test]
    async fn image_is_labelled_cidata_and_holds_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let seed = seed("#cloud-config\nusers: []\n".into());
        let path = dir.path().join("seed.img");
        std::fs::write(&path, b"an older seed").unwrap();
        seed.write_image(&path).await.unwrap();
        assert!(!dir.path().join("seed.img.tmp").exists(), "temporary file left behind");
        assert_eq!(instance_id(std::fs::read(&path).unwrap()).as_deref(), Some("vm-1-abc"));
        assert_eq!(instance_id(b"not a seed".to_vec()), None);

        let (label, root_label, names, user_data, meta_data) = read_back(std::fs::read(&path).unwrap());
        assert_eq!(label, "CIDATA");
        assert_eq!(root_label.as_deref(), Some("CIDATA"));
        assert_eq!(names, ["user-data", "meta-data"]);
        assert_eq!(user_data, seed.user_data);
        let meta: serde_json::Value = serde_json::from_str(&meta_data).unwrap();
        assert_eq!(
            meta,
            serde_json::json!({
                "instance-id": "vm-1-abc",
                "local-hostname": "vm-1",
                "public-keys": ["ssh-ed25519 AAAA test"],
            })
        );
    }

    /// What cloud-init runs to find the seed (`blkid`, from util-linux) sees a vfat labelled CIDATA.
    #[test]
    fn blkid_sees_vfat_labelled_cidata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.img");
        std::fs::write(&path, seed("#cloud-config\n".into()).image().unwrap()).unwrap();
        let out = std::process::Command::new("blkid").args(["-p", "-o", "export"]).arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "blkid failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
        assert!(text.lines().any(|l| l == "TYPE=vfat"), "{text}");
        assert!(text.lines().any(|l| l == "LABEL=CIDATA"), "{text}");
    }

    #[test]
    fn large_user_data_fits() {
        let user_data = format!("#cloud-config\nwrite_files:\n- content: {}\n", "x".repeat(3 << 20));
        let seed = seed(user_data);
        let (_, _, _, back, _) = read_back(seed.image().unwrap());
        assert_eq!(back, seed.user_data);
    }

    #[test]
    fn meta_data_escapes_values() {
        let seed = NoCloudSeed {
            instance_id: "a\"\nb: c".into(),
            hostname: "h".into(),
            user_data: String::new(),
            public_keys: vec![],
        };
        let v: serde_json::Value = serde_json::from_str(&seed.meta_data()).unwrap();
        assert_eq!(v["instance-id"], "a\"\nb: c");
    }
}
