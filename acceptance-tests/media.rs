//! `lab_vm.cdrom` through the real terraform on a real TCG guest: two ISO images with different
//! volume labels, made here with xorriso. Applied with the first, the guest reads its label on
//! /dev/sr0; changed to the second, the plan is an in-place update and the running guest reads the
//! new label with no reboot (its boot id stays); a medium ejected out of band is seen by refresh
//! and put back; `cdrom` unset ejects it (the drive reads no medium); a missing ISO fails the plan
//! on `cdrom`; the ISOs are never written; destroy leaves no domain or overlay.
//!
//! Run: `acceptance-tests/rig.sh up`, then
//! `flock /tmp/lab-boot.lock cargo test --test acc_media -- --test-threads=1 --nocapture`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::{Workspace, domain_exists, plan_counts, rig_exec, rig_var, virsh};

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(out.status.success(), "virsh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ssh student@ip CMD` in the rig: (exit code, stdout trimmed, stderr).
fn ssh(key: &Path, ip: &str, cmd: &str) -> (i32, String, String) {
    let key = key.to_string_lossy();
    let out = rig_exec(&support::guest_ssh(&key, &format!("student@{ip}"), cmd));
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn ssh_ok(key: &Path, ip: &str, cmd: &str) -> String {
    let (code, out, err) = ssh(key, ip, cmd);
    assert_eq!(code, 0, "ssh student@{ip} {cmd} failed: {err}");
    out
}

/// What the guest's blkid reads from its CD-ROM drive, probing the device itself (no cache):
/// `Some(label)`, or `None` when the drive holds no medium. Waits up to 30 s for the drive (its
/// driver loads after sshd) and for the guest to see a medium change.
fn guest_label(key: &Path, ip: &str, want: Option<&str>) -> Option<String> {
    let probe = "test -b /dev/sr0 || exit 3; sudo blkid -p -o export /dev/sr0";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = ssh(key, ip, probe);
        let label = out.lines().find_map(|l| l.strip_prefix("LABEL=")).map(str::to_string);
        // 3: no /dev/sr0 yet; blkid exits 2 when it finds nothing (an empty drive).
        let read = match code {
            0 => Some(label),
            2 => Some(None),
            3 => None,
            _ => panic!("blkid of /dev/sr0 in {ip} failed ({code}): {out} {err}"),
        };
        if let Some(label) = read {
            if label.as_deref() == want || Instant::now() > deadline {
                return label;
            }
        } else if Instant::now() > deadline {
            panic!("the guest at {ip} has no /dev/sr0 after 30 s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The CD-ROM `<disk>` element of a domain's XML (up to its `</disk>`).
fn cdrom_drive(xml: &str) -> &str {
    let drive =
        xml.split("<disk ").find(|d| d.contains("device='cdrom'")).unwrap_or_else(|| panic!("no CD-ROM:\n{xml}"));
    drive.split("</disk>").next().unwrap_or(drive)
}

fn boot_id(key: &Path, ip: &str) -> String {
    ssh_ok(key, ip, "cat /proc/sys/kernel/random/boot_id")
}

/// An ISO 9660 image labelled `label` holding one file, made with xorriso.
fn make_iso(path: &Path, label: &str) {
    let src = tempfile::tempdir().expect("temp dir");
    std::fs::write(src.path().join("README.TXT"), format!("medium {label}\n")).expect("write iso file");
    let out = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", label, "-o"])
        .arg(path)
        .arg(src.path())
        .output()
        .expect("xorriso (scripts/deps.sh installs it)");
    assert!(out.status.success(), "xorriso failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn tfvars(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json string"))).collect()
}

#[test]
fn cdrom_is_inserted_changed_and_ejected_in_a_running_guest() {
    let n = rand::random::<u32>() % 100_000;
    let name = format!("vmtest-media{n}");
    let vms = PathBuf::from(format!("{}/vms", rig_var("LAB_CACHE")));
    std::fs::create_dir_all(&vms).expect("overlay dir");
    let isos = [vms.join(format!("{name}-a.iso")), vms.join(format!("{name}-b.iso"))];
    let labels = [format!("LABMEDIA_A{n}"), format!("LABMEDIA_B{n}")];
    for (iso, label) in isos.iter().zip(&labels) {
        make_iso(iso, label);
    }
    let sums: Vec<String> = isos.iter().map(|i| sha256(i)).collect();
    let overlay = vms.join(format!("{name}.qcow2"));

    let ws = Workspace::in_rig("vm-media");
    let key = ws.path().join("id_ed25519");
    let kg =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "acc-media", "-f"]).arg(&key).output();
    assert!(kg.expect("ssh-keygen").status.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).expect("public key").trim().to_string();
    let vars = [
        ("name", name.clone()),
        ("base_image", rig_var("LAB_BASE_IMAGE")),
        ("kernel", rig_var("LAB_KERNEL")),
        ("initrd", rig_var("LAB_INITRD")),
        ("cmdline", rig_var("LAB_CMDLINE")),
        ("network", rig_var("LAB_NETWORK")),
        ("overlay_dir", vms.to_string_lossy().into_owned()),
        ("ssh_key", pubkey),
    ];
    ws.write("terraform.tfvars", &tfvars(&vars));
    let cdrom = |iso: &Path| format!("-var=cdrom={}", iso.display());

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // An ISO that is not there fails the plan, on `cdrom`.
        let missing = vms.join(format!("{name}-missing.iso"));
        let bad = ws.terraform(&["plan", "-no-color", &cdrom(&missing)]);
        let all = format!("{}{}", bad.stdout, bad.stderr);
        assert_ne!(bad.code, 0, "plan with a missing ISO passed:\n{all}");
        assert!(all.contains("ISO image not usable") && all.contains("does not exist"), "{all}");
        let on_cdrom = all.lines().any(|l| l.split_whitespace().nth(1) == Some("cdrom") && l.ends_with("= var.cdrom"));
        assert!(on_cdrom, "the error does not point at `cdrom`:\n{all}");

        let t = Instant::now();
        ws.apply(&[&cdrom(&isos[0])]);
        eprintln!("apply with the first ISO (boot to ssh): {:.1} s", t.elapsed().as_secs_f64());
        let out = ws.output_json()["vm"]["value"].clone();
        let ip = out["ip"].as_str().unwrap_or_else(|| panic!("no ip: {out}")).to_string();
        assert_eq!(out["cdrom"], isos[0].to_string_lossy().as_ref());
        let xml = virsh_ok(&["dumpxml", &name]);
        let drive = cdrom_drive(&xml);
        assert!(drive.contains(&format!("<source file='{}'", isos[0].display())), "{drive}");
        assert!(drive.contains("<readonly/>"), "the CD-ROM is not read-only:\n{drive}");
        assert_eq!(guest_label(&key, &ip, Some(&labels[0])).as_deref(), Some(labels[0].as_str()));
        let boot = boot_id(&key, &ip);

        // Change: an in-place update, applied to the running guest.
        let plan = ws.terraform(&["plan", "-no-color", &cdrom(&isos[1])]).ok("plan the second ISO");
        assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "{}", plan.stdout);
        assert!(plan.stdout.contains("updated in-place"), "{}", plan.stdout);
        let t = Instant::now();
        ws.apply(&[&cdrom(&isos[1])]);
        eprintln!("apply of the media change: {:.1} s", t.elapsed().as_secs_f64());
        assert_eq!(guest_label(&key, &ip, Some(&labels[1])).as_deref(), Some(labels[1].as_str()));
        assert_eq!(boot_id(&key, &ip), boot, "the guest rebooted for a media change");
        let seen = ssh_ok(&key, &ip, "sudo mount -t iso9660 -o ro /dev/sr0 /mnt && cat /mnt/*; sudo umount /mnt");
        assert_eq!(seen, format!("medium {}", labels[1]));
        let plan = ws.terraform(&["plan", "-detailed-exitcode", "-no-color", &cdrom(&isos[1])]);
        assert_eq!(plan.code, 0, "plan after the change not empty:\n{}", plan.stdout);

        // Ejected out of band: refresh sees it, apply puts the medium back.
        virsh_ok(&["change-media", &name, "hdc", "--eject", "--live", "--config", "--force"]);
        let plan = ws.terraform(&["plan", "-no-color", &cdrom(&isos[1])]).ok("plan after the out-of-band eject");
        assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "drift not seen:\n{}", plan.stdout);
        ws.apply(&[&cdrom(&isos[1])]);
        assert_eq!(guest_label(&key, &ip, Some(&labels[1])).as_deref(), Some(labels[1].as_str()));

        // Unset: ejected in place, the drive stays, empty.
        let plan = ws.terraform(&["plan", "-no-color"]).ok("plan the eject");
        assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "{}", plan.stdout);
        ws.apply(&[]);
        assert_eq!(guest_label(&key, &ip, None), None, "the drive still holds a medium after the eject");
        let (code, out, err) = ssh(&key, &ip, "sudo dd if=/dev/sr0 of=/dev/null bs=2048 count=1");
        assert!(code != 0 && err.contains("No medium found"), "reading the ejected drive: {code} {out} {err}");
        assert_eq!(boot_id(&key, &ip), boot, "the guest rebooted for an eject");
        let xml = virsh_ok(&["dumpxml", "--inactive", &name]);
        let drive = cdrom_drive(&xml);
        assert!(!drive.contains("<source"), "the definition still holds a medium:\n{drive}");
        assert_eq!(ws.output_json()["vm"]["value"]["cdrom"], serde_json::Value::Null);
        let plan = ws.plan();
        assert_eq!(plan.code, 0, "plan after the eject not empty:\n{}", plan.stdout);

        ws.destroy();
        assert!(ws.state_list().is_empty(), "destroy left resources in state");
    }));
    let left = domain_exists(&name);
    if left || result.is_err() {
        let _ = ws.terraform(&["destroy", "-auto-approve", "-no-color"]);
        let _ = virsh(&["destroy", &name]);
        let _ = virsh(&["undefine", "--nvram", &name]);
        let _ = std::fs::remove_file(&overlay);
    }
    let now: Vec<String> = isos.iter().map(|i| sha256(i)).collect();
    for iso in &isos {
        let _ = std::fs::remove_file(iso);
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(!left, "destroy left domain {name}");
    assert!(!overlay.exists(), "destroy left overlay {}", overlay.display());
    assert_eq!(now, sums, "an ISO was written to");
}
