//! `cloud_init` end to end, inside the rig: a `lab_vm` of the rig's cloud-init image (Debian's
//! cloud-init, systemd boot, no key and no `student` user inside) whose user-data sets the host name
//! and creates `student` with a key made for this run. The guest is reachable only if cloud-init's
//! NoCloud datasource read the provider's vfat `CIDATA` seed: the test logs in with that key and checks
//! the host name, the key and the datasource cloud-init reports; destroy leaves no domain, overlay
//! or seed.
//!
//! Run: `acceptance-tests/rig.sh up`, then
//! `flock /tmp/lab-boot.lock cargo test --test acc_cloud_init -- --nocapture` (it boots one guest).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{DestroyOnDrop, Workspace, domain_exists, rig_exec, rig_var};

/// `ssh -i KEY student@IP CMD` inside the rig: (exit code, stdout trimmed, stderr).
fn ssh(key: &Path, ip: &str, cmd: &str) -> (i32, String, String) {
    let key = key.to_string_lossy();
    let out = rig_exec(&support::guest_ssh(&key, &format!("student@{ip}"), cmd));
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn ssh_ok(key: &Path, ip: &str, cmd: &str) -> String {
    let (code, stdout, stderr) = ssh(key, ip, cmd);
    assert_eq!(code, 0, "ssh student@{ip} {cmd} failed: {stderr}");
    stdout
}

/// A key pair of this run only, so a login proves the key came from the seed (the image has none).
fn fresh_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "acc-cloud-init", "-f"])
        .arg(&key)
        .output()
        .expect("running ssh-keygen");
    assert!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("reading the new public key");
    (key, public.trim().to_string())
}

/// `#cloud-config` that sets the host name and makes `student` with `public_key`. Values are JSON
/// strings (JSON is YAML), so nothing in them can break the document.
fn user_data(hostname: &str, public_key: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("json string");
    format!(
        "#cloud-config\nhostname: {}\nusers:\n  - name: student\n    shell: /bin/bash\n    sudo: {}\n    \
         ssh_authorized_keys: [{}]\n",
        q(hostname),
        q("ALL=(ALL) NOPASSWD:ALL"),
        q(public_key)
    )
}

#[test]
fn cloud_init_guest_takes_hostname_and_key_from_the_seed() {
    let n = rand::random::<u32>() % 100_000;
    let name = format!("citest{n}");
    let hostname = format!("seeded-host-{n}");
    let ws = Workspace::in_rig("vm-cloud-init");
    let (key, public_key) = fresh_key(ws.path());
    let vars = [
        ("name", name.clone()),
        ("base_image", rig_var("LAB_CLOUDINIT_IMAGE")),
        ("kernel", rig_var("LAB_CLOUDINIT_KERNEL")),
        ("initrd", rig_var("LAB_CLOUDINIT_INITRD")),
        ("cmdline", rig_var("LAB_CLOUDINIT_CMDLINE")),
        ("network", rig_var("LAB_NETWORK")),
        ("overlay_dir", format!("{}/vms", rig_var("LAB_CACHE"))),
        ("cloud_init", user_data(&hostname, &public_key)),
    ];
    let tfvars: String =
        vars.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json string"))).collect();
    ws.write("terraform.tfvars", &tfvars);
    let overlay = PathBuf::from(format!("{}/vms/{name}.qcow2", rig_var("LAB_CACHE")));
    let seed = overlay.with_file_name(format!("{name}-seed.img"));

    {
        let _cleanup = DestroyOnDrop(&ws);
        let t0 = Instant::now();
        ws.apply(&[]);
        let to_banner = t0.elapsed();
        assert!(seed.exists(), "apply with cloud_init made no seed {}", seed.display());
        let ip = ws.output_json()["ip"]["value"].as_str().expect("output ip is a string").to_string();

        // create returns at sshd's banner; cloud-init may still be making `student` then.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (code, _, stderr) = ssh(&key, &ip, "true");
            if code == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no login as student@{ip} with the seed's key within 180 s of the banner: {stderr}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        let to_login = t0.elapsed();
        eprintln!(
            "cloud-init guest {name}: apply to SSH banner {:.1} s, to login with the seed's key {:.1} s",
            to_banner.as_secs_f64(),
            to_login.as_secs_f64()
        );

        assert_eq!(ssh_ok(&key, &ip, "hostname"), hostname, "the guest's host name is not the seed's");
        let authorized = ssh_ok(&key, &ip, "cat ~/.ssh/authorized_keys");
        assert!(authorized.lines().any(|l| l.trim() == public_key), "the seed's key is not authorised:\n{authorized}");
        // The seed is what cloud-init read: NoCloud on the read-only virtio disk, and it has finished.
        let status = ssh_ok(&key, &ip, "cloud-init status --wait --long");
        assert!(status.contains("status: done"), "cloud-init did not finish cleanly:\n{status}");
        assert!(status.contains("DataSourceNoCloud [seed=/dev/vdb]"), "cloud-init's datasource:\n{status}");

        ws.destroy();
        assert!(ws.state_list().is_empty(), "destroy left resources in state");
    }
    assert!(!domain_exists(&name), "destroy left domain {name}");
    assert!(!overlay.exists(), "destroy left overlay {}", overlay.display());
    assert!(!seed.exists(), "destroy left seed {}", seed.display());
}
