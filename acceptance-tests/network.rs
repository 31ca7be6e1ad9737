//! lab_network through the real terraform, inside the rig (real libvirtd, dockerd, TCG guests):
//! - `two_labs_of_two_vms_each`: examples/multi-vm-lab for two students, two machines each (4
//!   guests, 512 MiB). From inside the guests (over SSH, bash's /dev/tcp): A1 reads A2's SSH
//!   banner; A1 reads nothing from B1 or B2, nor B1 from A1, even with a default route through the
//!   host (so the firewall stops them, not a missing route); each lab reads a banner served on the
//!   host's address of its own network. From inside each lab's terminal container (busybox nc):
//!   its own first machine answers, the other lab's does not. Chromium opens each session URL and
//!   finds the first machine's hostname, never another's. Destroy leaves no libvirt network,
//!   bridge, Docker network, domain or overlay (each checked with a listing that must succeed).
//! - `drift_import_and_leftovers`: a lab network alone (no guests). Removed out of band (`virsh
//!   net-destroy` + `net-undefine`) -> the plan creates it again; stopped (`net-destroy`) -> the
//!   plan starts it in place; forgotten by the state -> an
//!   apply adopts it (same UUID: the marker says it is ours and it matches); imported -> empty
//!   plan; a network of the planned name without the marker -> the apply refuses it with an
//!   import block and leaves it alone.
//!
//! Run: `acceptance-tests/rig.sh up`, then
//! `flock /tmp/lab-boot.lock cargo test --test acc_network -- --test-threads=1 --nocapture`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{DestroyOnDrop, Workspace, browser_check, plan_counts, rig_exec, rig_var};

fn run_id() -> u32 {
    std::process::id() % 10_000
}

/// Stdout of a command in the rig that must succeed (a check built on it cannot pass because the
/// tool failed).
fn rig_ok(args: &[&str]) -> String {
    let out = rig_exec(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

fn libvirt_networks() -> Vec<String> {
    lines(&rig_ok(&["virsh", "-q", "net-list", "--all", "--name"]))
}

fn domains() -> Vec<String> {
    lines(&rig_ok(&["virsh", "-q", "list", "--all", "--name"]))
}

fn docker_networks() -> Vec<String> {
    lines(&rig_ok(&["docker", "network", "ls", "--format", "{{.Name}}"]))
}

/// Names of every link in the rig's netns (`ip -o link show` lists them all, or fails).
fn links() -> Vec<String> {
    rig_ok(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
        .collect()
}

fn net_uuid(name: &str) -> String {
    rig_ok(&["virsh", "-q", "net-uuid", name]).trim().to_string()
}

/// A TCP server on `addr:port` inside the rig's netns writing `banner` to every client: the host a
/// lab must reach.
struct HostBanner(std::process::Child);

impl HostBanner {
    fn start(addr: &str, port: u16, banner: &str) -> Self {
        let script = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(({addr:?},{port}))\ns.listen(16)\n\
             while True:\n  c,_=s.accept()\n  c.sendall(b{banner:?}+b'\\n')\n  c.close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &rig_var("LAB_NETNS"), "python3", "-c", &script])
            .spawn()
            .expect("starting the host banner server");
        std::thread::sleep(Duration::from_millis(800));
        HostBanner(child)
    }
}

impl Drop for HostBanner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// From inside the guest at `from` (ssh with `key`), open TCP to `to:port` and read what it says
/// first (5 s at most): "rc=0 <banner>" or why it failed.
fn probe(key: &Path, from: &str, to: &str, port: u16) -> String {
    let key = key.to_string_lossy();
    let cmd =
        format!("out=$(timeout 5 bash -c 'exec 3<>/dev/tcp/{to}/{port} && head -c 16 <&3' 2>&1); echo \"rc=$? $out\"");
    let out = rig_exec(&support::guest_ssh(&key, &format!("student@{from}"), &cmd));
    assert!(out.status.success(), "ssh student@{from} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// From inside the terminal container `container`, what `to:22` says first (busybox nc, 5 s).
fn probe_from_terminal(container: &str, to: &str) -> String {
    let cmd = format!("timeout 5 nc {to} 22 </dev/null | head -c 16; echo \" rc=$?\"");
    rig_ok(&["docker", "exec", container, "sh", "-c", &cmd]).trim().to_string()
}

fn keygen(dir: &Path, name: &str) {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen {name} failed");
}

#[test]
fn two_labs_of_two_vms_each() {
    let t0 = Instant::now();
    let course = format!("nettest{}", run_id());
    let (students, machines) = (["a", "b"], ["one", "two"]);
    let ws = Workspace::example_in_rig("multi-vm-lab");
    let keys = ws.path().join("keys");
    let overlays = ws.path().join("overlays");
    std::fs::create_dir_all(&keys).expect("key dir");
    std::fs::create_dir_all(&overlays).expect("overlay dir");
    for s in students {
        for m in machines {
            keygen(&keys, &format!("{s}-{m}"));
        }
    }
    let gateway_port = 18900 + (std::process::id() % 90) as u16;
    let host_port = 25000 + (std::process::id() % 1000) as u16;
    let tfvars = format!(
        "course = \"{course}\"\nstudents = {{ a = 0, b = 1 }}\nmachines = [\"one\", \"two\"]\n\
         lab_cidrs = \"192.168.208.0/20\"\nkey_dir = \"{}\"\noverlay_dir = \"{}\"\nbase_image = \"{}\"\n\
         kernel = \"{}\"\ninitrd = \"{}\"\ncmdline = \"{}\"\ndomain_type = \"{}\"\nmemory_mb = 512\n\
         terminal_image = \"{}\"\ngateway_image = \"{}\"\ngateway_port = {gateway_port}\n",
        keys.display(),
        overlays.display(),
        rig_var("LAB_BASE_IMAGE"),
        rig_var("LAB_KERNEL"),
        rig_var("LAB_INITRD"),
        rig_var("LAB_CMDLINE"),
        rig_var("LAB_DOMAIN_TYPE"),
        rig_var("LAB_TERMINAL_IMAGE"),
        rig_var("LAB_GATEWAY_IMAGE"),
    );
    ws.write("terraform.tfvars", &tfvars);
    let guard = DestroyOnDrop(&ws);

    let t0_ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis();
    let apply_t = Instant::now();
    // Two boots at a time: with four at once under TCG on 2 cores, one guest in four runs never got
    // its DHCP lease before the create's timeout.
    ws.apply(&[&support::parallelism(2)]);
    println!(
        "apply of 2 networks, 4 VMs (2 at a time), 2 terminals, gateway: {:.1} s",
        apply_t.elapsed().as_secs_f64()
    );
    let out = ws.output_json();
    let vm = |s: &str, m: &str| out["machines"]["value"][format!("{s}-{m}")].clone();
    let ip =
        |s: &str, m: &str| vm(s, m)["ip"].as_str().unwrap_or_else(|| panic!("no ip for {s}-{m}: {out}")).to_string();
    let key = |s: &str, m: &str| keys.join(format!("{s}-{m}"));
    let nets = out["networks"]["value"].clone();
    let host = |s: &str| nets[s]["host"].as_str().unwrap_or_else(|| panic!("no host address: {nets}")).to_string();
    let bridges: Vec<String> =
        students.iter().map(|s| nets[s]["bridge"].as_str().expect("bridge").to_string()).collect();
    println!("networks: {nets}");
    for s in students {
        for m in machines {
            println!("  {s}-{m}: {}", vm(s, m));
        }
    }

    let _banners: Vec<HostBanner> =
        students.iter().map(|s| HostBanner::start(&host(s), host_port, "lab-host-ok")).collect();
    // Within a lab: A1 reaches A2's SSH port.
    for s in students {
        let peer = probe(&key(s, "one"), &ip(s, "one"), &ip(s, "two"), 22);
        assert!(peer.starts_with("rc=0 SSH-2.0"), "{s}-one cannot reach {s}-two:22: {peer}");
        let h = probe(&key(s, "one"), &ip(s, "one"), &host(s), host_port);
        assert!(h.starts_with("rc=0 lab-host-ok"), "{s}-one cannot reach the host {}:{host_port}: {h}", host(s));
        println!("{s}-one -> {s}-two:22: {peer}; -> host {}: {h}", host(s));
    }
    // Across labs: nothing. Isolated networks hand out no default route, so first give each first
    // machine one through its host (students have sudo): what stops them must be the firewall.
    for s in students {
        let key = key(s, "one").to_string_lossy().into_owned();
        let route = format!("sudo -n ip route replace default via {} && ip route", host(s));
        let out = rig_exec(&support::guest_ssh(&key, &format!("student@{}", ip(s, "one")), &route));
        assert!(out.status.success(), "{s}-one: {route}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for (me, other) in [("a", "b"), ("b", "a")] {
        for m in machines {
            let got = probe(&key(me, "one"), &ip(me, "one"), &ip(other, m), 22);
            assert!(!got.contains("SSH-") && !got.starts_with("rc=0"), "{me}-one reached {other}-{m}:22: {got}");
            println!("{me}-one -> {other}-{m}:22: {got}");
        }
    }
    // The terminals: each reaches its own lab, not the other.
    for (me, other) in [("a", "b"), ("b", "a")] {
        let container = format!("{course}-{me}");
        let own = probe_from_terminal(&container, &ip(me, "one"));
        assert!(own.starts_with("SSH-2.0"), "terminal {container} cannot reach {me}-one:22: {own}");
        let theirs = probe_from_terminal(&container, &ip(other, "one"));
        assert!(!theirs.contains("SSH-"), "terminal {container} reached {other}-one:22: {theirs}");
        println!("terminal {container} -> {me}-one: {own}; -> {other}-one: {theirs}");
    }
    // The student's URL lands on the first machine of their lab.
    let cases: Vec<serde_json::Value> = students
        .iter()
        .map(|s| {
            let forbid: Vec<String> = out["machines"]["value"]
                .as_object()
                .expect("machines")
                .values()
                .filter_map(|v| v["hostname"].as_str().map(String::from))
                .filter(|h| *h != format!("one-{s}"))
                .collect();
            serde_json::json!({
                "name": s, "url": out["urls"]["value"][s], "expect": format!("one-{s}"), "forbid": forbid
            })
        })
        .collect();
    let cases_file = ws.path().join("browser-cases.json");
    std::fs::write(&cases_file, serde_json::to_string(&cases).expect("json")).expect("write cases");
    let shots = support::out_dir(env!("CARGO_TARGET_TMPDIR"), "acc-network");
    let results = browser_check(&cases_file, &shots, t0_ms, students.len());
    println!("browser: {results:?}");

    let plan = ws.plan();
    assert_eq!(plan.code, 0, "re-plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    std::mem::forget(guard);
    let destroy_t = Instant::now();
    ws.destroy();
    println!("destroy: {:.1} s", destroy_t.elapsed().as_secs_f64());
    assert!(ws.state_list().is_empty(), "destroy left resources in state");
    let ours = |names: Vec<String>| names.into_iter().filter(|n| n.starts_with(&course)).collect::<Vec<_>>();
    assert_eq!(ours(libvirt_networks()), Vec::<String>::new(), "destroy left libvirt networks");
    assert_eq!(ours(docker_networks()), Vec::<String>::new(), "destroy left Docker networks");
    assert_eq!(ours(domains()), Vec::<String>::new(), "destroy left domains");
    let left_links: Vec<String> = links().into_iter().filter(|l| bridges.contains(l)).collect();
    assert!(left_links.is_empty(), "destroy left bridges {left_links:?}");
    let left_overlays: Vec<_> =
        std::fs::read_dir(&overlays).expect("overlay dir").flatten().map(|e| e.path()).collect();
    assert!(left_overlays.is_empty(), "destroy left overlays {left_overlays:?}");
    println!("two_labs_of_two_vms_each: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn drift_import_and_leftovers() {
    let name = format!("nettest{}-solo", run_id());
    let ws = Workspace::in_rig("network");
    ws.write("terraform.tfvars", &format!("name = \"{name}\"\ncidr = \"192.168.224.0/24\"\n"));
    let guard = DestroyOnDrop(&ws);
    ws.apply(&[]);
    let uuid = net_uuid(&name);
    assert!(docker_networks().contains(&name), "no Docker network for the terminals");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "re-plan not empty:\n{}", plan.stdout);

    // Stopped out of band: planned to start in place, and started.
    rig_ok(&["virsh", "-q", "net-destroy", &name]);
    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan after out-of-band stop");
    assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "{}", plan.stdout);
    ws.apply(&[]);
    let info = rig_ok(&["virsh", "-q", "net-info", &name]);
    assert!(info.lines().any(|l| l.starts_with("Active:") && l.ends_with("yes")), "not started again:\n{info}");
    assert_eq!(net_uuid(&name), uuid, "a stopped network was replaced, not started");

    // Removed out of band: planned again, and made again.
    rig_ok(&["virsh", "-q", "net-destroy", &name]);
    rig_ok(&["virsh", "-q", "net-undefine", &name]);
    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan after out-of-band removal");
    assert_eq!(plan_counts(&plan.stdout), (1, 0, 0), "{}", plan.stdout);
    ws.apply(&[]);
    assert!(libvirt_networks().contains(&name), "not re-created");
    let uuid = {
        let again = net_uuid(&name);
        assert_ne!(again, uuid, "the network was not made anew");
        again
    };

    // Forgotten by the state (a killed apply): the next apply adopts it, UUID unchanged.
    ws.terraform(&["state", "rm", "lab_network.solo"]).ok("state rm");
    let apply = ws.apply(&[]);
    assert!(apply.stdout.contains("1 added"), "{}", apply.stdout);
    assert_eq!(net_uuid(&name), uuid, "the network of ours was replaced instead of adopted");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after adoption not empty:\n{}", plan.stdout);

    // Import: the plan imports and replaces nothing; then it is empty.
    ws.reimport_adopts("lab_network.solo", &name);
    assert_eq!(net_uuid(&name), uuid);

    std::mem::forget(guard);
    ws.destroy();
    assert!(!libvirt_networks().contains(&name), "destroy left the libvirt network");
    assert!(!docker_networks().contains(&name), "destroy left the Docker network");

    // Not ours: a network under the planned name without the marker is refused and left alone.
    let xml = format!("<network><name>{name}</name><ip address='192.168.225.1' netmask='255.255.255.0'/></network>");
    let file = ws.path().join("foreign.xml");
    std::fs::write(&file, xml).expect("write xml");
    rig_ok(&["virsh", "-q", "net-define", &file.to_string_lossy()]);
    let apply = ws.terraform(&["apply", "-auto-approve", "-no-color"]);
    let foreign_uuid = net_uuid(&name);
    rig_ok(&["virsh", "-q", "net-undefine", &name]);
    assert_ne!(apply.code, 0, "apply took over a network that is not ours:\n{}", apply.stdout);
    assert!(
        apply.stderr.contains("exists already") && apply.stderr.contains("import {"),
        "no import block in:\n{}",
        apply.stderr
    );
    assert!(!foreign_uuid.is_empty());
    assert!(ws.state_list().is_empty(), "the refused network is in the state");

    // A subnet inside another network of the host (the rig's VM network, 192.168.150.0/24) is
    // refused at plan, on `cidr`, naming that network.
    ws.write("terraform.tfvars", &format!("name = \"{name}\"\ncidr = \"192.168.150.0/25\"\n"));
    let plan = ws.terraform(&["plan", "-no-color"]);
    assert_ne!(plan.code, 0, "a plan on a taken subnet passed:\n{}", plan.stdout);
    let rig_network = rig_var("LAB_NETWORK");
    assert!(
        plan.stderr.contains("The subnet is taken")
            && plan.stderr.contains(&format!("overlaps the libvirt network `{rig_network}`"))
            && plan.stderr.contains("cidr"),
        "{}",
        plan.stderr
    );
}
