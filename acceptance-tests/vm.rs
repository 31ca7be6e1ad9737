//! lab_vm through the real terraform, inside the rig (real libvirtd, real TCG guests):
//! 2 VMs from a for_each reachable with `ssh student@ip hostname`, one with a cloud-init seed the
//! guest sees as a vfat disk labelled CIDATA, empty re-plan, running=false then true, out-of-band
//! `virsh undefine` -> one re-create, destroy leaves no domain, overlay or seed; a seed made and
//! removed without booting; a create that cannot boot times out and leaves nothing, and so does one
//! interrupted with Ctrl-C (SIGINT to terraform's process group); the base image never changes.
//! At most 2 guests boot at once (the tests take a lock).
//!
//! Run: `acceptance-tests/rig.sh up`, then `cargo test --test acc_vm -- --nocapture`
//! (`LAB_TF_PARALLELISM=1`: the guests boot one after the other).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::{Workspace, domain_exists, held_for, plan_counts, rig_exec, rig_var, virsh};

/// Serialises the tests of this file: each boots up to 2 guests on a 2-core rig.
static BOOTS: Mutex<()> = Mutex::new(());

fn sha256(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn domstate(name: &str) -> String {
    String::from_utf8_lossy(&virsh(&["domstate", name]).stdout).trim().to_string()
}

fn ssh_hostname(key: &Path, ip: &str) -> String {
    ssh(key, ip, "hostname")
}

/// `ssh student@ip CMD` inside the rig; panics unless it exits 0. Returns stdout, trimmed.
fn ssh(key: &Path, ip: &str, cmd: &str) -> String {
    let key = key.to_string_lossy();
    let out = rig_exec(&support::guest_ssh(&key, &format!("student@{ip}"), cmd));
    assert!(out.status.success(), "ssh student@{ip} {cmd} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `<overlay_dir>/<name>-seed.img`, next to the overlay `<name>.qcow2`.
fn seed_of(overlay: &Path) -> PathBuf {
    overlay.with_file_name(format!("{}-seed.img", overlay.file_stem().unwrap().to_string_lossy()))
}

/// The seed image's volume label and user-data, read back with fatfs (the crate that wrote it).
fn read_seed(path: &Path) -> (String, String) {
    use std::io::Read;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading seed {}: {e}", path.display()));
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(bytes), fatfs::FsOptions::new())
        .unwrap_or_else(|e| panic!("seed {} is not a FAT filesystem: {e}", path.display()));
    let mut user_data = String::new();
    fs.root_dir().open_file("user-data").expect("user-data in the seed").read_to_string(&mut user_data).unwrap();
    (fs.volume_label(), user_data)
}

const USER_DATA: &str = "#cloud-config\n# acc_vm seed check\nwrite_files: []\n";

fn tfvars(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json string"))).collect()
}

fn rig_tfvars() -> Vec<(&'static str, String)> {
    vec![
        ("base_image", rig_var("LAB_BASE_IMAGE")),
        ("kernel", rig_var("LAB_KERNEL")),
        ("initrd", rig_var("LAB_INITRD")),
        ("cmdline", rig_var("LAB_CMDLINE")),
        ("network", rig_var("LAB_NETWORK")),
        ("overlay_dir", format!("{}/vms", rig_var("LAB_CACHE"))),
    ]
}

fn suffix() -> u32 {
    rand::random::<u32>() % 100_000
}

#[test]
fn two_vms_lifecycle() {
    let _boots = BOOTS.lock().unwrap_or_else(|p| p.into_inner());
    let base = rig_var("LAB_BASE_IMAGE");
    let base_sum = sha256(&base);
    let n = suffix();
    let names = [format!("vmtest-acc{n}-a"), format!("vmtest-acc{n}-b")];
    let ws = Workspace::in_rig("vm");

    // A key made for this run: a working `ssh` proves the provider passed it to the guest.
    let key = ws.path().join("id_ed25519");
    let kg =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "acc-vm", "-f"]).arg(&key).output();
    assert!(kg.expect("ssh-keygen").status.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).expect("public key").trim().to_string();
    let mut vars = rig_tfvars();
    vars.push(("ssh_key", pubkey));
    // VM a also gets a NoCloud seed (the rig image has no cloud-init: the guest only sees the disk).
    let students = format!(
        "students = {}\ncloud_init = {{ {} = {} }}\n",
        serde_json::to_string(&names).unwrap(),
        serde_json::to_string(&names[0]).unwrap(),
        serde_json::to_string(USER_DATA).unwrap()
    );
    ws.write("terraform.tfvars", &(tfvars(&vars) + &students));

    let overlays: Vec<PathBuf> =
        names.iter().map(|n| PathBuf::from(format!("{}/vms/{n}.qcow2", rig_var("LAB_CACHE")))).collect();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (apply, timings) =
            support::apply_with_provider_log(&ws, "DEBUG", &[&support::parallelism(2)], |l| l.contains("_s="));
        assert_eq!(apply.code, 0, "apply failed\n{}\n{}", apply.stdout, apply.stderr);
        assert!(apply.stdout.contains("2 added"), "{}", apply.stdout);
        eprintln!("provider timings (first apply, 2 VMs):\n{timings}");

        let vms = ws.output_json()["vms"]["value"].clone();
        for name in &names {
            let ip = vms[name]["ip"].as_str().unwrap_or_else(|| panic!("no ip for {name}: {vms}"));
            assert_eq!(vms[name]["state"], "running");
            assert_eq!(ssh_hostname(&key, ip), *name, "ssh student@{ip} hostname");
        }
        let overlay_a = vms[&names[0]]["overlay_path"].as_str().unwrap().to_string();
        assert_eq!(PathBuf::from(&overlay_a), overlays[0]);
        assert!(overlays.iter().all(|o| o.exists()));
        assert!(seed_of(&overlays[0]).exists(), "no seed {} for {}", seed_of(&overlays[0]).display(), names[0]);
        assert!(!seed_of(&overlays[1]).exists(), "{} has no cloud_init but got a seed", names[1]);
        // The guest sees the seed as a vfat disk labelled CIDATA (where cloud-init would look) with
        // the user data in it, and still boots from vda.
        let ip_a = vms[&names[0]]["ip"].as_str().unwrap();
        let blkid = ssh(&key, ip_a, "sudo blkid -o export /dev/vdb");
        assert!(blkid.lines().any(|l| l == "LABEL=CIDATA") && blkid.lines().any(|l| l == "TYPE=vfat"), "{blkid}");
        let seen = ssh(&key, ip_a, "sudo mount -o ro /dev/vdb /mnt && cat /mnt/user-data; sudo umount /mnt");
        assert_eq!(seen, USER_DATA.trim());

        let plan = ws.plan();
        assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

        // running = false: clean shutdown in place, then back on.
        ws.apply(&["-var=running=false"]);
        for name in &names {
            assert_eq!(domstate(name), "shut off", "{name}");
        }
        let vms_off = ws.output_json()["vms"]["value"].clone();
        assert_eq!(vms_off[&names[0]]["state"], "shutoff");
        assert_eq!(vms_off[&names[0]]["id"], vms[&names[0]]["id"], "stopping must not replace");
        let plan = ws.terraform(&["plan", "-detailed-exitcode", "-no-color", "-var=running=false"]);
        assert_eq!(plan.code, 0, "plan after stop not empty:\n{}", plan.stdout);

        // Back on with more memory: redefined in place (same id), then started.
        ws.write("terraform.tfvars", &(tfvars(&vars) + &students + "memory_mb = 640\n"));
        let plan = ws.terraform(&["plan", "-no-color"]).ok("plan memory change");
        assert_eq!(plan_counts(&plan.stdout), (0, 2, 0), "{}", plan.stdout);
        ws.apply(&[]);
        let info = String::from_utf8_lossy(&virsh(&["dominfo", &names[0]]).stdout).to_string();
        assert!(info.contains("655360 KiB"), "memory not changed: {info}");
        let vms_on = ws.output_json()["vms"]["value"].clone();
        for name in &names {
            assert_eq!(domstate(name), "running", "{name}");
            assert_eq!(vms_on[name]["mac"], vms[name]["mac"], "mac must be stable");
            let ip = vms_on[name]["ip"].as_str().expect("ip after restart");
            assert_eq!(ssh_hostname(&key, ip), *name);
        }
        let plan = ws.plan();
        assert_eq!(plan.code, 0, "plan after restart not empty:\n{}", plan.stdout);

        // Out-of-band removal: its overlay and seed remain, so the plan replaces exactly one.
        assert!(virsh(&["destroy", &names[0]]).status.success());
        assert!(virsh(&["undefine", "--nvram", &names[0]]).status.success());
        let plan = ws.terraform(&["plan", "-no-color"]).ok("plan after out-of-band undefine");
        assert_eq!(plan_counts(&plan.stdout), (1, 0, 1), "{}", plan.stdout);
        ws.apply(&[]);
        assert!(domain_exists(&names[0]));
        let plan = ws.plan();
        assert_eq!(plan.code, 0, "plan after re-create not empty:\n{}", plan.stdout);

        // Import by domain name adopts the VM without replacing it.
        let address = format!("lab_vm.student[\"{}\"]", names[1]);
        ws.terraform(&["state", "rm", &address]).ok("state rm");
        ws.write("import.tf", &format!("import {{\n  to = {address}\n  id = \"{}\"\n}}\n", names[1]));
        let plan = ws.terraform(&["plan", "-no-color"]).ok("plan import");
        assert!(plan.stdout.contains("1 to import"), "{}", plan.stdout);
        assert!(!plan.stdout.contains("must be replaced"), "import must adopt, not replace:\n{}", plan.stdout);
        ws.apply(&[]);
        ws.remove("import.tf");
        assert_eq!(ws.output_json()["vms"]["value"][&names[1]]["id"], vms[&names[1]]["id"]);

        ws.destroy();
        assert!(ws.state_list().is_empty(), "destroy left resources in state");
    }));
    // Whatever happened, nothing of ours stays on the rig.
    let leftovers: Vec<String> = names.iter().filter(|n| domain_exists(n)).cloned().collect();
    if !leftovers.is_empty() || result.is_err() {
        let _ = ws.terraform(&["destroy", "-auto-approve", "-no-color"]);
        for n in &names {
            let _ = virsh(&["destroy", n]);
            let _ = virsh(&["undefine", "--nvram", n]);
        }
        for o in &overlays {
            let _ = std::fs::remove_file(o);
            let _ = std::fs::remove_file(seed_of(o));
        }
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(leftovers.is_empty(), "destroy left domains: {leftovers:?}");
    for o in &overlays {
        assert!(!o.exists(), "destroy left overlay {}", o.display());
        assert!(!seed_of(o).exists(), "destroy left seed {}", seed_of(o).display());
    }
    assert_eq!(sha256(&base), base_sum, "the base image changed");
}

/// `cloud_init` set, `running = false` (nothing boots, so this takes seconds): apply writes the
/// seed, a vfat image labelled CIDATA with the user data, and attaches it read-only as vdb; destroy
/// removes it with the domain and the overlay.
#[test]
fn cloud_init_seed_is_made_attached_and_removed() {
    let name = format!("vmtest-seed{}", suffix());
    let ws = Workspace::in_rig("vm");
    let mut vars = rig_tfvars();
    let pubkey = format!("{}.pub", rig_var("LAB_SSH_KEY"));
    vars.push(("ssh_key", std::fs::read_to_string(&pubkey).expect("rig public key").trim().to_string()));
    let extra = format!(
        "students = [{name:?}]\nrunning = false\ncloud_init = {{ {name:?} = {} }}\n",
        serde_json::to_string(USER_DATA).unwrap()
    );
    ws.write("terraform.tfvars", &(tfvars(&vars) + &extra));
    let overlay = PathBuf::from(format!("{}/vms/{name}.qcow2", rig_var("LAB_CACHE")));
    let seed = seed_of(&overlay);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ws.apply(&[]);
        assert!(seed.exists(), "apply with cloud_init made no seed {}", seed.display());
        assert_eq!(read_seed(&seed), ("CIDATA".to_string(), USER_DATA.to_string()));
        let xml = String::from_utf8_lossy(&virsh(&["dumpxml", &name]).stdout).into_owned();
        let disk = xml
            .split("<disk ")
            .find(|d| d.contains(&format!("<source file='{}'", seed.display())))
            .unwrap_or_else(|| panic!("the seed is not a disk of {name}:\n{xml}"));
        assert!(disk.contains("device='disk'") && disk.contains("<readonly/>"), "{disk}");
        assert!(disk.contains("<target dev='vdb' bus='virtio'/>"), "{disk}");
        assert_eq!(domstate(&name), "shut off");

        ws.destroy();
        assert!(ws.state_list().is_empty(), "destroy left resources in state");
    }));
    let left = domain_exists(&name);
    if left || result.is_err() {
        let _ = ws.terraform(&["destroy", "-auto-approve", "-no-color"]);
        let _ = virsh(&["undefine", "--nvram", &name]);
        let _ = std::fs::remove_file(&overlay);
        let _ = std::fs::remove_file(&seed);
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(!left, "destroy left domain {name}");
    assert!(!overlay.exists(), "destroy left overlay {}", overlay.display());
    assert!(!seed.exists(), "destroy left seed {}", seed.display());
}

/// A VM on an empty disk: the kernel finds no root filesystem, the guest never asks for a lease,
/// so create waits until its timeout (or an interrupt). Cleans up after itself when dropped.
struct Unbootable {
    ws: Workspace,
    name: String,
    overlay: PathBuf,
    empty: String,
    empty_sum: String,
}

impl Unbootable {
    fn new(create_timeout: &str) -> Self {
        let n = suffix();
        let name = format!("vmtest-bad{n}");
        let vms_dir = format!("{}/vms", rig_var("LAB_CACHE"));
        let empty = format!("{vms_dir}/vmtest-empty{n}.qcow2");
        // The provider makes the overlay dir on its first create; this test may run first.
        std::fs::create_dir_all(&vms_dir).expect("overlay dir");
        let out =
            Command::new("qemu-img").args(["create", "-q", "-f", "qcow2", &empty, "64M"]).output().expect("qemu-img");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ws = Workspace::in_rig("vm-bad");
        let mut vars = rig_tfvars();
        vars.retain(|(k, _)| *k != "base_image");
        vars.push(("base_image", empty.clone()));
        vars.push(("name", name.clone()));
        vars.push(("create_timeout", create_timeout.to_string()));
        ws.write("terraform.tfvars", &tfvars(&vars));
        let empty_sum = sha256(&empty);
        let overlay = PathBuf::from(format!("{vms_dir}/{name}.qcow2"));
        Unbootable { ws, name, overlay, empty, empty_sum }
    }

    /// What the failed apply left behind: (domain exists, overlay exists, state entries).
    fn leftovers(&self) -> (bool, bool, Vec<String>) {
        (domain_exists(&self.name), self.overlay.exists(), self.ws.state_list())
    }
}

impl Drop for Unbootable {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.name]);
        let _ = virsh(&["undefine", "--nvram", &self.name]);
        let _ = std::fs::remove_file(&self.overlay);
        let _ = std::fs::remove_file(&self.empty);
    }
}

#[test]
fn unbootable_create_times_out_and_leaves_nothing() {
    let _boots = BOOTS.lock().unwrap_or_else(|p| p.into_inner());
    let vm = Unbootable::new("25s");

    let t = std::time::Instant::now();
    let apply = vm.ws.terraform(&["apply", "-auto-approve", "-no-color"]);
    let took = t.elapsed();
    let (exists, overlay_left, state) = vm.leftovers();

    assert_ne!(apply.code, 0, "apply of an unbootable VM succeeded:\n{}", apply.stdout);
    let all = format!("{}\n{}", apply.stdout, apply.stderr);
    assert!(all.contains("timed out"), "error does not say it timed out:\n{all}");
    assert!(took.as_secs() < 120, "create took {took:?} with a 25 s timeout");
    assert!(!exists, "failed create left domain {}", vm.name);
    assert!(!overlay_left, "failed create left overlay {}", vm.overlay.display());
    assert!(state.is_empty(), "failed create left state: {state:?}");
    assert_eq!(sha256(&vm.empty), vm.empty_sum, "the base image changed");
}

/// Ctrl-C in the middle of a create: the terminal sends SIGINT to the whole foreground process
/// group (terraform, the provider, and anything they started in it). Terraform asks the provider to
/// stop; the create is cancelled and undone, which needs the libvirt helper still alive.
#[test]
fn interrupted_create_leaves_nothing() {
    let _boots = BOOTS.lock().unwrap_or_else(|p| p.into_inner());
    let vm = Unbootable::new("10m");

    // 3 s after the domain is defined: overlay, domain and start are done; the wait for an address is on.
    let (run, took) = vm.ws.apply_interrupted(|| domain_exists(&vm.name), Duration::from_secs(3));
    let all = format!("{}\n{}", run.stdout, run.stderr);
    let (exists, overlay_left, state) = vm.leftovers();

    assert_ne!(run.code, 0, "an interrupted apply succeeded:\n{all}");
    assert!(all.contains("cancelled"), "the error does not say the create was cancelled:\n{all}");
    assert!(took.as_secs() < 60, "terraform took {took:?} to stop after the interrupt");
    assert!(!exists, "interrupted create left domain {}:\n{all}", vm.name);
    assert!(!overlay_left, "interrupted create left overlay {}", vm.overlay.display());
    assert!(state.is_empty(), "interrupted create left state: {state:?}");
}

/// VMs of the `vm` case made by one test (`names[0]` gets a cloud-init seed), and a cleanup that
/// runs however the test ends. The checks are `leftovers`, not the cleanup.
struct Class {
    ws: Workspace,
    names: Vec<String>,
    base_vars: String,
    started: std::time::Instant,
}

impl Class {
    fn new(tag: &str, count: usize, extra: &str) -> Self {
        let n = suffix();
        let names: Vec<String> = (0..count).map(|i| format!("vmtest-{tag}{n}-{}", (b'a' + i as u8) as char)).collect();
        let ws = Workspace::in_rig("vm");
        let mut vars = rig_tfvars();
        let pubkey = format!("{}.pub", rig_var("LAB_SSH_KEY"));
        vars.push(("ssh_key", std::fs::read_to_string(&pubkey).expect("rig public key").trim().to_string()));
        let base_vars = tfvars(&vars)
            + &format!(
                "students = {}\ncloud_init = {{ {} = {} }}\n",
                serde_json::to_string(&names).unwrap(),
                serde_json::to_string(&names[0]).unwrap(),
                serde_json::to_string(USER_DATA).unwrap()
            );
        let class = Class { ws, names, base_vars, started: std::time::Instant::now() };
        class.write_vars(extra);
        class
    }

    fn write_vars(&self, extra: &str) {
        self.ws.write("terraform.tfvars", &format!("{}{extra}", self.base_vars));
    }

    fn overlay(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/vms/{name}.qcow2", rig_var("LAB_CACHE")))
    }

    fn address(name: &str) -> String {
        format!("lab_vm.student[\"{name}\"]")
    }

    /// Domains, overlays and seeds of this class that exist (an empty list: nothing is left).
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for name in &self.names {
            if domain_exists(name) {
                left.push(format!("domain {name}"));
            }
            for file in [self.overlay(name), seed_of(&self.overlay(name))] {
                if file.exists() {
                    left.push(file.display().to_string());
                }
            }
        }
        left
    }

    /// The domain's UUID as libvirt has it.
    fn uuid(name: &str) -> String {
        let out = virsh(&["domuuid", name]);
        assert!(out.status.success(), "virsh domuuid {name}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn ids(&self) -> serde_json::Value {
        self.ws.output_json()["vms"]["value"].clone()
    }
}

impl Drop for Class {
    fn drop(&mut self) {
        eprintln!("test took {:.1} s", self.started.elapsed().as_secs_f64());
        if self.leftovers().is_empty() {
            return;
        }
        let _ = self.ws.terraform(&["destroy", "-auto-approve", "-no-color"]);
        for name in &self.names {
            let _ = virsh(&["destroy", name]);
            let _ = virsh(&["undefine", "--nvram", name]);
            let _ = std::fs::remove_file(self.overlay(name));
            let _ = std::fs::remove_file(seed_of(&self.overlay(name)));
        }
    }
}

/// A domain removed out of band (`virsh destroy`, `virsh undefine`) while its overlay and seed
/// stay: the VM reads as present but broken, the plan replaces it, and `terraform destroy` removes
/// the files. The guest starts but nothing waits for it (`wait_for = "none"`).
#[test]
fn out_of_band_removal_is_replaced_and_destroy_removes_the_files() {
    let _boots = BOOTS.lock().unwrap_or_else(|p| p.into_inner());
    let class = Class::new("oob", 1, "wait_for = \"none\"\n");
    let (ws, name) = (&class.ws, &class.names[0]);
    ws.apply(&[]);
    assert!(class.overlay(name).exists() && seed_of(&class.overlay(name)).exists(), "apply made no overlay or seed");
    let destroyed = virsh(&["destroy", name]);
    assert!(destroyed.status.success(), "virsh destroy: {}", String::from_utf8_lossy(&destroyed.stderr));
    let undefined = virsh(&["undefine", "--nvram", name]);
    assert!(undefined.status.success(), "virsh undefine: {}", String::from_utf8_lossy(&undefined.stderr));

    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan after out-of-band removal");
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    assert_eq!(plan_counts(&plan.stdout), (1, 0, 1), "{}", plan.stdout);
    assert_eq!(ws.state_list(), [Class::address(name)], "the half-deleted VM left the state");

    ws.destroy();
    assert!(ws.state_list().is_empty(), "destroy left resources in state");
    let left = class.leftovers();
    assert!(left.is_empty(), "destroy of a half-deleted VM left {left:?}");
}

/// The state of an apply is lost after its creates (`terraform state rm` stands in for the
/// killed apply): the next apply adopts a domain of ours that matches the plan (same UUID),
/// replaces one that does not (new UUID, new memory), and never touches a domain without the
/// marker (an error with an import block). Nothing boots (`running = false`).
#[test]
fn orphan_domains_are_adopted_replaced_or_refused() {
    let class = Class::new("orph", 1, "running = false\n");
    let (ws, name) = (&class.ws, &class.names[0]);
    let address = Class::address(name);
    ws.apply(&[]);
    let id0 = class.ids()[name]["id"].clone();

    ws.terraform(&["state", "rm", &address]).ok("state rm");
    let adopt = ws.apply(&[]);
    assert!(adopt.stdout.contains("1 added"), "{}", adopt.stdout);
    assert_eq!(class.ids()[name]["id"], id0, "a matching domain of ours was not adopted");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after adoption not empty:\n{}\n{}", plan.stdout, plan.stderr);

    ws.terraform(&["state", "rm", &address]).ok("state rm");
    class.write_vars("running = false\nmemory_mb = 640\n");
    ws.apply(&[]);
    let id1 = class.ids()[name]["id"].clone();
    assert_ne!(id1, id0, "a domain that differs from the plan was adopted");
    let info = String::from_utf8_lossy(&virsh(&["dominfo", name]).stdout).to_string();
    assert!(info.contains("655360 KiB"), "the new domain does not have the planned memory: {info}");
    assert_eq!(ws.plan().code, 0, "plan after replacing the orphan not empty");

    // Someone else's domain under the name: the same definition without our <metadata>.
    ws.terraform(&["state", "rm", &address]).ok("state rm");
    let xml = String::from_utf8_lossy(&virsh(&["dumpxml", "--inactive", name]).stdout).into_owned();
    let (start, end) = (xml.find("<metadata>").expect("our metadata"), xml.find("</metadata>").expect("its end"));
    let foreign = format!("{}{}", &xml[..start], &xml[end + "</metadata>".len()..]);
    let file = ws.path().join("foreign.xml");
    std::fs::write(&file, &foreign).expect("write foreign.xml");
    assert!(virsh(&["undefine", "--nvram", name]).status.success());
    let defined = virsh(&["define", &file.to_string_lossy()]);
    assert!(defined.status.success(), "virsh define: {}", String::from_utf8_lossy(&defined.stderr));
    let refused = ws.terraform(&["apply", "-auto-approve", "-no-color"]);
    let all = format!("{}\n{}", refused.stdout, refused.stderr);
    assert_ne!(refused.code, 0, "a domain without the marker was taken over:\n{all}");
    assert!(all.contains("exists already") && all.contains("import {"), "{all}");
    assert!(all.contains(&format!("id = \"{name}\"")), "{all}");
    let after = String::from_utf8_lossy(&virsh(&["dumpxml", "--inactive", name]).stdout).into_owned();
    assert!(!after.contains("classroom.lab/xmlns"), "the foreign domain was changed:\n{after}");

    // Its owner removes it; our overlay and seed left under the name do not block the create.
    assert!(virsh(&["undefine", "--nvram", name]).status.success());
    assert!(class.overlay(name).exists(), "the test needs the leftover overlay");
    ws.apply(&[]);
    assert_eq!(ws.plan().code, 0, "plan after the create over leftover files not empty");

    ws.destroy();
    assert!(ws.state_list().is_empty(), "destroy left resources in state");
    let left = class.leftovers();
    assert!(left.is_empty(), "destroy left {left:?}");
}

/// Waits (30 s at most) until none of `pids` runs; how long that took.
fn all_gone_within_30s(pids: &[i32]) -> std::time::Duration {
    let t = std::time::Instant::now();
    while pids.iter().any(|p| support::process_alive(*p)) && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let alive: Vec<i32> = pids.iter().copied().filter(|p| support::process_alive(*p)).collect();
    assert!(alive.is_empty(), "processes {alive:?} still running 30 s after terraform was killed");
    t.elapsed()
}

/// After terraform was killed: the next apply converges with no manual step, then destroy
/// leaves nothing.
fn converges_then_destroys(class: &Class) {
    let apply = class.ws.terraform(&["apply", "-auto-approve", "-no-color", &support::parallelism(2)]);
    assert_eq!(apply.code, 0, "the apply after the kill failed:\n{}\n{}", apply.stdout, apply.stderr);
    let plan = class.ws.plan();
    assert_eq!(plan.code, 0, "plan after the converging apply not empty:\n{}\n{}", plan.stdout, plan.stderr);
    class.ws.destroy();
    assert!(class.ws.state_list().is_empty(), "destroy left resources in state");
    let left = class.leftovers();
    assert!(left.is_empty(), "destroy left {left:?}");
}

/// SIGKILL of terraform while two VMs boot (3 s after both domains are defined): the provider
/// and its libvirt helper notice, roll the creates back and exit; the next apply converges.
#[test]
fn killed_while_vms_boot_converges() {
    let _boots = BOOTS.lock().unwrap_or_else(|p| p.into_inner());
    let class = Class::new("kboot", 2, "");
    let both_defined = || class.names.iter().all(|n| domain_exists(n));
    let (run, providers, helpers) =
        class.ws.apply_killed_when(&[&support::parallelism(2)], false, held_for(Duration::from_secs(3), both_defined));
    assert_ne!(run.code, 0, "a killed apply succeeded");
    assert!(!run.stdout.contains("Creation complete"), "a VM was ready before the kill:\n{}", run.stdout);
    assert!(!helpers.is_empty(), "no libvirt helper was running to watch");
    let all: Vec<i32> = providers.iter().chain(&helpers).copied().collect();
    let took = all_gone_within_30s(&all);
    println!(
        "SIGKILL while booting: providers {providers:?} and helpers {helpers:?} gone in {:.1} s",
        took.as_secs_f64()
    );
    let left = class.leftovers();
    assert!(left.is_empty(), "the creates were not rolled back: {left:?}");
    converges_then_destroys(&class);
}

/// SIGKILL of terraform right after both creates report complete, before it records them: the
/// domains stay (they are done), and the next apply adopts them (same UUIDs) instead of failing.
#[test]
fn killed_after_creates_complete_converges() {
    let _boots = BOOTS.lock().unwrap_or_else(|p| p.into_inner());
    let class = Class::new("kdone", 2, "");
    let (run, providers, helpers) = class.ws.apply_killed_when(&[&support::parallelism(2)], false, |stdout| {
        stdout.matches("Creation complete").count() >= 2
    });
    assert_ne!(run.code, 0, "a killed apply succeeded");
    let all: Vec<i32> = providers.iter().chain(&helpers).copied().collect();
    let took = all_gone_within_30s(&all);
    println!(
        "SIGKILL after the creates: providers {providers:?} and helpers {helpers:?} gone in {:.1} s",
        took.as_secs_f64()
    );
    let recorded = class.ws.state_list();
    println!("state after the kill: {recorded:?}");
    let uuids: Vec<String> = class.names.iter().map(|n| Class::uuid(n)).collect();
    converges_then_destroys_checking(&class, &uuids, recorded.is_empty());
}

/// `converges_then_destroys`, checking first that the apply kept the domains of the killed
/// apply (`uuids`): adopted when terraform had not recorded them.
fn converges_then_destroys_checking(class: &Class, uuids: &[String], adopted: bool) {
    let apply = class.ws.terraform(&["apply", "-auto-approve", "-no-color", &support::parallelism(2)]);
    assert_eq!(apply.code, 0, "the apply after the kill failed:\n{}\n{}", apply.stdout, apply.stderr);
    if adopted {
        assert!(apply.stdout.contains("2 added"), "{}", apply.stdout);
    }
    let ids = class.ids();
    for (name, uuid) in class.names.iter().zip(uuids) {
        assert_eq!(ids[name]["id"].as_str(), Some(uuid.as_str()), "{name} was re-created, not kept");
    }
    let plan = class.ws.plan();
    assert_eq!(plan.code, 0, "plan after the converging apply not empty:\n{}\n{}", plan.stdout, plan.stderr);
    class.ws.destroy();
    assert!(class.ws.state_list().is_empty(), "destroy left resources in state");
    let left = class.leftovers();
    assert!(left.is_empty(), "destroy left {left:?}");
}

/// SIGKILL of terraform together with its provider and helper (a CI runner killing the whole
/// process tree) while two VMs boot: nothing can roll back, so both domains stay, unrecorded.
/// The next apply adopts them (same UUIDs, waiting for them as create would) instead of failing.
#[test]
fn killed_with_the_provider_while_vms_boot_adopts() {
    let _boots = BOOTS.lock().unwrap_or_else(|p| p.into_inner());
    let class = Class::new("ktree", 2, "");
    let both_defined = || class.names.iter().all(|n| domain_exists(n));
    let (run, providers, helpers) =
        class.ws.apply_killed_when(&[&support::parallelism(2)], true, held_for(Duration::from_secs(3), both_defined));
    assert_ne!(run.code, 0, "a killed apply succeeded");
    assert!(!helpers.is_empty(), "no libvirt helper was running to kill");
    let all: Vec<i32> = providers.iter().chain(&helpers).copied().collect();
    all_gone_within_30s(&all);
    let recorded = class.ws.state_list();
    assert!(recorded.is_empty(), "terraform recorded {recorded:?} before the kill: nothing to adopt");
    let uuids: Vec<String> = class.names.iter().map(|n| Class::uuid(n)).collect();
    converges_then_destroys_checking(&class, &uuids, true);
}

/// Four VMs at once (`-parallelism=4`, 512 MiB each): every create succeeds (no race between
/// them), each guest is running with an address, and destroy leaves nothing.
#[test]
fn four_vms_at_once() {
    let _boots = BOOTS.lock().unwrap_or_else(|p| p.into_inner());
    let class = Class::new("four", 4, "");
    let t = std::time::Instant::now();
    let apply = class.ws.terraform(&["apply", "-auto-approve", "-no-color", "-parallelism=4"]);
    assert_eq!(apply.code, 0, "apply of 4 VMs failed:\n{}\n{}", apply.stdout, apply.stderr);
    println!("4 VMs at -parallelism=4: ready in {:.1} s", t.elapsed().as_secs_f64());
    assert!(apply.stdout.contains("4 added"), "{}", apply.stdout);
    let vms = class.ids();
    for name in &class.names {
        assert_eq!(vms[name]["state"], "running", "{name}: {vms}");
        assert!(vms[name]["ip"].as_str().is_some_and(|ip| !ip.is_empty()), "{name} has no address: {vms}");
    }
    let plan = class.ws.plan();
    assert_eq!(plan.code, 0, "plan after 4 creates not empty:\n{}\n{}", plan.stdout, plan.stderr);
    class.ws.destroy();
    assert!(class.ws.state_list().is_empty(), "destroy left resources in state");
    let left = class.leftovers();
    assert!(left.is_empty(), "destroy left {left:?}");
}
