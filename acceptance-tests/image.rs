//! lab_image through the real terraform, inside the rig: the rig's base image uploaded into the
//! rig's storage pool (LAB_STORAGE_POOL) through libvirt's upload stream, read-only and
//! byte-identical; one VM boots from it as a thin clone (its overlay's backing store is the
//! image's volume); a second apply plans nothing and uploads nothing; import adopts without a
//! replacement; an image deleted out of band is uploaded again; destroy removes every volume.
//!
//! Run: `acceptance-tests/rig.sh up`, then
//! `flock /tmp/lab-boot.lock cargo test --test acc_image -- --nocapture`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use support::{Workspace, domain_exists, plan_counts, rig_exec, rig_var, virsh};

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The rig's storage pool. rig.env names it (LAB_STORAGE_POOL); while branches whose rig.sh
/// predates the pool rewrite the shared rig.env without it, rig.sh's name for it, `lab-vms`, is
/// used, once `virsh pool-info` shows the pool is there.
fn rig_pool() -> String {
    let env = support::rig_env_file();
    let named = std::fs::read_to_string(&env)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("export LAB_STORAGE_POOL=").map(str::to_string));
    let pool = named.unwrap_or_else(|| "lab-vms".into());
    let out = virsh(&["pool-info", &pool]);
    assert!(
        out.status.success(),
        "the rig has no storage pool {pool} (run rig.sh up): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pool
}

/// The volumes of the rig's pool, from `virsh vol-list` (a failing virsh panics with its stderr,
/// so "not listed" never means "could not look").
fn pool_volumes() -> Vec<String> {
    let pool = rig_pool();
    assert!(virsh(&["pool-refresh", &pool]).status.success(), "virsh pool-refresh {pool} failed");
    let out = virsh(&["vol-list", "--pool", &pool]);
    assert!(out.status.success(), "virsh vol-list --pool {pool} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `terraform apply` with the provider's info log kept: (run, lab_image's messages).
fn apply_logged(ws: &Workspace, extra: &[&str]) -> (support::Run, String) {
    support::apply_with_provider_log(ws, "INFO", extra, |l| l.contains("lab_image "))
}

#[test]
fn image_is_uploaded_once_and_backs_a_vm() {
    let n = rand::random::<u32>() % 100_000;
    let prefix = format!("imgtest-{n}");
    let image_name = format!("{prefix}-base.qcow2");
    let vm_name = format!("{prefix}-vm");
    let source = PathBuf::from(rig_var("LAB_BASE_IMAGE"));
    let source_sum = sha256(&source);
    let ws = Workspace::in_rig("image");

    let key = ws.path().join("id_ed25519");
    let kg =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "acc-image", "-f"]).arg(&key).output();
    assert!(kg.expect("ssh-keygen").status.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).expect("public key").trim().to_string();
    let vars = [
        ("prefix", prefix.clone()),
        ("pool", rig_pool()),
        ("source_image", source.to_string_lossy().into_owned()),
        ("kernel", rig_var("LAB_KERNEL")),
        ("initrd", rig_var("LAB_INITRD")),
        ("cmdline", rig_var("LAB_CMDLINE")),
        ("network", rig_var("LAB_NETWORK")),
        ("ssh_key", pubkey),
    ];
    let tfvars: String =
        vars.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json"))).collect();
    ws.write("terraform.tfvars", &tfvars);

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let t0 = std::time::Instant::now();
        let (apply, log) = apply_logged(&ws, &[]);
        assert_eq!(apply.code, 0, "apply failed\n{}\n{}", apply.stdout, apply.stderr);
        assert!(apply.stdout.contains("2 added"), "{}", apply.stdout);
        eprintln!("first apply (upload + 1 VM) in {:.1} s; provider log:\n{log}", t0.elapsed().as_secs_f64());
        assert!(log.contains(&format!("lab_image {image_name}: uploaded")), "no upload progress logged:\n{log}");
        assert!(log.contains("read back and verified"), "no read-back logged:\n{log}");

        // What landed is the source, byte for byte, and nobody may write it.
        let out = ws.output_json();
        let image = &out["image"]["value"];
        let path = PathBuf::from(image["path"].as_str().expect("image path"));
        assert_eq!(path, PathBuf::from(format!("{}/vms/{image_name}", rig_var("LAB_CACHE"))));
        assert_eq!(image["source_sha256"], source_sum.as_str());
        assert_eq!(sha256(&path), source_sum, "the volume's bytes differ from the source");
        let mode = std::fs::metadata(&path).expect("image volume file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o444, "the image must be read-only, mode is {mode:o}");

        // The VM is a thin clone of the image's volume and boots from it.
        let ip = out["vm"]["value"]["ip"].as_str().expect("vm ip");
        let hostname = rig_exec(&support::guest_ssh(&key.to_string_lossy(), &format!("student@{ip}"), "hostname"));
        assert!(hostname.status.success(), "ssh failed: {}", String::from_utf8_lossy(&hostname.stderr));
        assert_eq!(String::from_utf8_lossy(&hostname.stdout).trim(), vm_name);
        let overlay = virsh(&["vol-dumpxml", "--pool", &rig_pool(), &format!("{vm_name}.qcow2")]);
        let overlay_xml = String::from_utf8_lossy(&overlay.stdout);
        assert!(overlay.status.success(), "vol-dumpxml of the overlay failed");
        let backing = overlay_xml.split("<backingStore>").nth(1).expect("the overlay has a backing store");
        assert!(backing.contains(&format!("<path>{}</path>", path.display())), "{overlay_xml}");

        // Once per host: nothing planned, nothing uploaded.
        let plan = ws.terraform(&["plan", "-detailed-exitcode", "-no-color"]);
        assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);
        let (again, log) = apply_logged(&ws, &[]);
        assert_eq!(again.code, 0, "second apply failed\n{}\n{}", again.stdout, again.stderr);
        assert!(again.stdout.contains("0 added, 0 changed, 0 destroyed"), "{}", again.stdout);
        assert!(!log.contains("uploaded"), "the second apply uploaded:\n{log}");
        assert_eq!(sha256(&source), source_sum, "the source image changed");

        // Import adopts the volume (read back for its checksum) without replacing it.
        ws.terraform(&["state", "rm", "lab_image.base"]).ok("state rm");
        let id = format!("{}/{image_name}", rig_pool());
        ws.write("import.tf", &format!("import {{\n  to = lab_image.base\n  id = \"{id}\"\n}}\n"));
        let plan = ws.terraform(&["plan", "-no-color"]).ok("plan import");
        assert!(plan.stdout.contains("1 to import"), "{}", plan.stdout);
        assert!(!plan.stdout.contains("must be replaced"), "import must adopt, not replace:\n{}", plan.stdout);
        let (imported, log) = apply_logged(&ws, &[]);
        assert_eq!(imported.code, 0, "import apply failed\n{}\n{}", imported.stdout, imported.stderr);
        assert!(!log.contains("uploaded"), "the import uploaded:\n{log}");
        ws.remove("import.tf");
        let plan = ws.terraform(&["plan", "-detailed-exitcode", "-no-color"]);
        assert_eq!(plan.code, 0, "plan after import not empty:\n{}\n{}", plan.stdout, plan.stderr);

        // Without the VM, an image deleted out of band is uploaded again.
        ws.apply(&["-var=with_vm=false"]);
        assert!(!domain_exists(&vm_name), "the VM is still defined");
        assert!(!pool_volumes().contains(&format!("{vm_name}.qcow2")), "the VM's overlay is left");
        let pool = rig_pool();
        assert!(virsh(&["vol-delete", "--pool", &pool, &image_name]).status.success());
        let plan = ws.terraform(&["plan", "-no-color", "-var=with_vm=false"]).ok("plan after vol-delete");
        assert_eq!(plan_counts(&plan.stdout), (1, 0, 0), "{}", plan.stdout);
        let (reupload, log) = apply_logged(&ws, &["-var=with_vm=false"]);
        assert_eq!(reupload.code, 0, "re-upload failed\n{}\n{}", reupload.stdout, reupload.stderr);
        assert!(log.contains("uploaded"), "no upload after the out-of-band delete:\n{log}");
        assert_eq!(sha256(&path), source_sum);

        ws.terraform(&["destroy", "-auto-approve", "-no-color", "-var=with_vm=false"]).ok("destroy");
        assert!(ws.state_list().is_empty(), "destroy left resources in state");
        let left: Vec<String> = pool_volumes().into_iter().filter(|v| v.starts_with(&prefix)).collect();
        assert!(left.is_empty(), "destroy left volumes {left:?}");
        assert!(!path.exists(), "destroy left {}", path.display());
    }));
    // Whatever happened, nothing of ours stays on the rig.
    if result.is_err() {
        let _ = ws.terraform(&["destroy", "-auto-approve", "-no-color"]);
        let _ = virsh(&["destroy", &vm_name]);
        let _ = virsh(&["undefine", "--nvram", &vm_name]);
        let pool = rig_pool();
        for vol in [format!("{vm_name}.qcow2"), image_name.clone()] {
            let _ = virsh(&["vol-delete", "--pool", &pool, &vol]);
        }
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
