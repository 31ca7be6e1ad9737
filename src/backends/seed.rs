//! cloud-init NoCloud seed: an ISO 9660 image labelled `cidata` holding `user-data` and
//! `meta-data`, made by Debian's `genisoimage` (no hand-written filesystem).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("writing seed file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("running genisoimage for seed {path} (is the `genisoimage` package installed?): {source}")]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error("genisoimage failed to make seed {path}: {stderr}")]
    Failed { path: PathBuf, stderr: String },
}

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

    /// Write the ISO to `out` (replaced if present).
    pub async fn write_iso(&self, out: &Path) -> Result<(), SeedError> {
        // Staging directory next to the ISO (same filesystem, same permissions), removed after.
        let mut staging = out.as_os_str().to_owned();
        staging.push(".d");
        let staging = PathBuf::from(staging);
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|source| SeedError::Write { path: staging.clone(), source })?;
        let result = self.make_iso(&staging, out).await;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        result
    }

    async fn make_iso(&self, staging: &Path, out: &Path) -> Result<(), SeedError> {
        for (name, content) in [("user-data", self.user_data.clone()), ("meta-data", self.meta_data())] {
            let path = staging.join(name);
            tokio::fs::write(&path, content).await.map_err(|source| SeedError::Write { path, source })?;
        }
        let output = Command::new("genisoimage")
            .arg("-quiet")
            .arg("-output")
            .arg(out)
            .args(["-volid", "cidata", "-joliet", "-rock"])
            .arg(staging.join("user-data"))
            .arg(staging.join("meta-data"))
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| SeedError::Spawn { path: out.to_path_buf(), source })?;
        if !output.status.success() {
            return Err(SeedError::Failed {
                path: out.to_path_buf(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn iso_is_labelled_cidata_and_holds_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let seed = NoCloudSeed {
            instance_id: "vm-1-abc".into(),
            hostname: "vm-1".into(),
            user_data: "#cloud-config\nusers: []\n".into(),
            public_keys: vec!["ssh-ed25519 AAAA test".into()],
        };
        let iso = dir.path().join("seed.iso");
        seed.write_iso(&iso).await.unwrap();
        let bytes = std::fs::read(&iso).unwrap();
        // ISO 9660 primary volume descriptor at 32 KiB: volume id at offset 40.
        assert_eq!(&bytes[0x8001..0x8006], b"CD001");
        assert_eq!(std::str::from_utf8(&bytes[0x8028..0x802e]).unwrap(), "cidata");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("#cloud-config"), "user-data missing");
        assert!(text.contains("\"local-hostname\":\"vm-1\""), "meta-data missing");
        assert!(text.contains("ssh-ed25519 AAAA test"), "public-keys missing");
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
