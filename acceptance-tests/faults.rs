//! Faults a class meets, through the real terraform against real guests and daemons.
//!
//! - `isolated_guests_reach_the_host_but_not_each_other`: two TCG guests on the rig's network
//!   with `isolated = true` (the default). From inside each guest (over SSH) a TCP probe reads the
//!   other's SSH banner and a banner served on the network's gateway address: the host answers, the
//!   other guest does not. Then `isolated = false` (redefined in place) and the same probe reaches
//!   the other guest: isolation is what blocked it. Runs on the shared rig (2 VMs, 512 MiB each).
//! - `daemon_restarts_between_plan_and_apply`: `terraform plan -out`, then libvirtd (and in a
//!   second case dockerd) is restarted, or stopped, before `terraform apply` of that plan, and
//!   restarted under a running create. The apply either succeeds or fails with a diagnostic naming
//!   the daemon; nothing is half-made or leaked (no domain, overlay or container without state).
//!
//!   These restart daemons, so they must not run on a rig others use: the test brings up a rig of
//!   its own (`LAB_NETNS=labfault`, `LAB_CACHE=/var/tmp/lab-cache-fault`, the shared cache's base
//!   image, keys and binaries copied in) and takes it down at the end. Measured on 2 cores: `up`
//!   3.9-5.1 s with the caches copied (16.4 s once, with other builds running), `down` 8.6-10.4 s:
//!   a rig of its own costs 13-27 s of a ~90-150 s test, against restarting daemons under another
//!   test (CI runs the acc tests one at a time, but engineers share the rig while they work).
//!
//! Run: `acceptance-tests/rig.sh up`, then
//! `flock /tmp/lab-boot.lock cargo test --test acc_faults -- --test-threads=1 --nocapture`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{Workspace, plan_counts, repo_root, rig_vars_in};

/// A rig as `rig.sh` knows it: its netns and cache (rig.env lives in the cache).
struct Rig {
    netns: String,
    cache: PathBuf,
}

impl Rig {
    /// The rig the other acceptance tests use (`$LAB_NETNS`, `$LAB_CACHE`, else rig.sh's defaults).
    fn shared() -> Rig {
        let netns = std::env::var("LAB_NETNS").unwrap_or_else(|_| "labtest".into());
        let cache = std::env::var("LAB_CACHE").unwrap_or_else(|_| "/var/tmp/lab-cache".into());
        Rig { netns, cache: PathBuf::from(cache) }
    }

    fn var(&self, name: &str) -> String {
        let path = self.cache.join("rig.env");
        rig_vars_in(&path).remove(name).unwrap_or_else(|| panic!("{} does not export {name}", path.display()))
    }

    /// `rig.sh <args>` for this rig.
    fn rig_sh(&self, args: &[&str]) -> Output {
        Command::new(repo_root().join("acceptance-tests/rig.sh"))
            .args(args)
            .env("LAB_NETNS", &self.netns)
            .env("LAB_CACHE", &self.cache)
            // the shared rig's `up` ran scripts/deps.sh already
            .env("LAB_SKIP_DEPS", "1")
            .output()
            .expect("running rig.sh")
    }

    /// `rig.sh <args>` that must succeed; what it printed.
    fn rig_sh_ok(&self, args: &[&str]) -> String {
        let out = self.rig_sh(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "rig.sh {args:?} (netns {}) failed:\n{text}", self.netns);
        text
    }

    fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        self.rig_sh(&all)
    }

    /// A case dir whose terraform runs in this rig's netns with this rig's rig.env.
    fn workspace(&self, case: &str) -> Workspace {
        Workspace::in_rig(case).with_env("LAB_NETNS", &self.netns).with_env("LAB_CACHE", &self.cache.to_string_lossy())
    }

    /// Names of this rig's domains; panics when virsh fails (a check built on it cannot pass
    /// because libvirtd is down).
    fn domains(&self) -> Vec<String> {
        let out = self.exec(&["virsh", "-q", "list", "--all", "--name"]);
        assert!(out.status.success(), "virsh list failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    }

    /// Ids of this rig's containers with `label`; panics when docker fails.
    fn containers_labelled(&self, label: &str) -> Vec<String> {
        self.docker_ps(&["-aq", "--filter", &format!("label={label}")])
    }

    /// The running ones only: a create is past its start.
    fn running_labelled(&self, label: &str) -> Vec<String> {
        self.docker_ps(&["-q", "--filter", &format!("label={label}"), "--filter", "status=running"])
    }

    fn docker_ps(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["docker", "ps"];
        all.extend_from_slice(args);
        let out = self.exec(&all);
        assert!(out.status.success(), "docker ps {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect()
    }

    fn overlay_dir(&self) -> PathBuf {
        self.cache.join("vms")
    }

    /// The terraform.tfvars of the `faults-vm` case for `names`.
    fn vm_tfvars(&self, names: &[String], isolated: bool) -> String {
        let pubkey = std::fs::read_to_string(format!("{}.pub", self.var("LAB_SSH_KEY"))).expect("rig public key");
        let mut vars: Vec<(&str, String)> =
            ["LAB_BASE_IMAGE", "LAB_KERNEL", "LAB_INITRD", "LAB_CMDLINE", "LAB_NETWORK"]
                .iter()
                .zip(["base_image", "kernel", "initrd", "cmdline", "network"])
                .map(|(var, name)| (name, self.var(var)))
                .collect();
        vars.push(("overlay_dir", self.overlay_dir().to_string_lossy().into_owned()));
        vars.push(("ssh_key", pubkey.trim().to_string()));
        let mut text: String =
            vars.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json"))).collect();
        text += &format!("students = {}\nisolated = {isolated}\n", serde_json::to_string(names).expect("json"));
        text
    }
}

/// Removes what a test made in a rig when it ends early: `terraform destroy`, then whatever the
/// test's names still match (domains, overlays).
struct Cleanup<'a> {
    rig: &'a Rig,
    ws: &'a Workspace,
    names: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let run = self.ws.terraform(&["destroy", "-auto-approve", "-no-color"]);
        if run.code != 0 {
            eprintln!("cleanup destroy failed:\n{}\n{}", run.stdout, run.stderr);
        }
        for name in &self.names {
            let _ = self.rig.exec(&["virsh", "-q", "destroy", name]);
            let _ = self.rig.exec(&["virsh", "-q", "undefine", "--nvram", name]);
            let _ = std::fs::remove_file(self.rig.overlay_dir().join(format!("{name}.qcow2")));
        }
    }
}

fn suffix() -> u32 {
    rand::random::<u32>() % 100_000
}

/// A TCP server on `addr:port` inside the rig's netns that writes `banner` to every client: the
/// "host" a guest must still reach under isolation.
struct HostBanner(std::process::Child);

impl HostBanner {
    fn start(rig: &Rig, addr: &str, port: u16, banner: &str) -> Self {
        let script = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(({addr:?},{port}))\ns.listen(16)\n\
             while True:\n  c,_=s.accept()\n  c.sendall(b{banner:?}+b'\\n')\n  c.close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &rig.netns, "python3", "-c", &script])
            .spawn()
            .expect("starting the host banner server");
        std::thread::sleep(Duration::from_millis(500));
        HostBanner(child)
    }
}

impl Drop for HostBanner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// From inside the guest at `from`, open TCP to `to:port` and read what it says first (bash's
/// /dev/tcp, 5 s at most). `ssh` to `from` must work; what the probe read, or why it failed.
fn probe(rig: &Rig, from: &str, to: &str, port: u16) -> String {
    let key = rig.var("LAB_SSH_KEY");
    let cmd =
        format!("out=$(timeout 5 bash -c 'exec 3<>/dev/tcp/{to}/{port} && head -c 16 <&3' 2>&1); echo \"rc=$? $out\"");
    let out = rig.exec(&support::guest_ssh(&key, &format!("student@{from}"), &cmd));
    assert!(out.status.success(), "ssh student@{from} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn vm_ips(ws: &Workspace, names: &[String]) -> Vec<String> {
    let vms = ws.output_json()["vms"]["value"].clone();
    names.iter().map(|n| vms[n]["ip"].as_str().unwrap_or_else(|| panic!("no ip for {n}: {vms}")).to_string()).collect()
}

#[test]
fn isolated_guests_reach_the_host_but_not_each_other() {
    let t0 = Instant::now();
    let rig = Rig::shared();
    let n = suffix();
    let names = vec![format!("faulttest-iso{n}-a"), format!("faulttest-iso{n}-b")];
    let ws = rig.workspace("faults-vm");
    let cleanup = Cleanup { rig: &rig, ws: &ws, names: names.clone() };
    // The network's own address on the host side of the bridge (192.168.150.1 on the rig).
    let gateway = rig.var("LAB_NETWORK_CIDR").replace(".0/24", ".1");
    let port = 24000 + (std::process::id() % 1000) as u16;
    let _host = HostBanner::start(&rig, &gateway, port, "lab-host-ok");

    ws.write("terraform.tfvars", &rig.vm_tfvars(&names, true));
    ws.apply(&[&support::parallelism(2)]);
    let ips = vm_ips(&ws, &names);
    eprintln!("isolated = true: {} at {}, {} at {} ({:.0?})", names[0], ips[0], names[1], ips[1], t0.elapsed());
    for (me, other) in [(0, 1), (1, 0)] {
        let host = probe(&rig, &ips[me], &gateway, port);
        assert!(host.starts_with("rc=0 lab-host-ok"), "{} cannot reach the host {gateway}:{port}: {host}", names[me]);
        let peer = probe(&rig, &ips[me], &ips[other], 22);
        assert!(!peer.contains("SSH-"), "{} reached {}'s SSH port although isolated: {peer}", names[me], names[other]);
        assert!(!peer.starts_with("rc=0"), "the probe to {} succeeded although isolated: {peer}", names[other]);
        eprintln!("  {} -> host: {host}; -> {}:22: {peer}", names[me], names[other]);
    }

    // Without isolation the same probe between the guests gets through (so isolation blocked it).
    ws.write("terraform.tfvars", &rig.vm_tfvars(&names, false));
    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan isolated = false");
    assert_eq!(plan_counts(&plan.stdout), (0, 2, 0), "isolated must change in place:\n{}", plan.stdout);
    ws.apply(&[&support::parallelism(2)]);
    let ips = vm_ips(&ws, &names);
    for (me, other) in [(0, 1), (1, 0)] {
        let peer = probe(&rig, &ips[me], &ips[other], 22);
        assert!(
            peer.starts_with("rc=0 SSH-2.0"),
            "{} cannot reach {}'s SSH port without isolation: {peer}",
            names[me],
            names[other]
        );
        let host = probe(&rig, &ips[me], &gateway, port);
        assert!(host.starts_with("rc=0 lab-host-ok"), "{} cannot reach the host: {host}", names[me]);
        eprintln!("isolated = false: {} -> {}:22: {peer}", names[me], names[other]);
    }

    std::mem::forget(cleanup);
    ws.destroy();
    assert!(ws.state_list().is_empty(), "destroy left resources in state");
    let left: Vec<String> = rig.domains().into_iter().filter(|d| names.contains(d)).collect();
    assert!(left.is_empty(), "destroy left domains {left:?}");
    for name in &names {
        let overlay = rig.overlay_dir().join(format!("{name}.qcow2"));
        assert!(!overlay.exists(), "destroy left overlay {}", overlay.display());
    }
    eprintln!("isolation test took {:.1?}", t0.elapsed());
}

/// The rig `daemon_restarts_between_plan_and_apply` restarts daemons in: brought up for the test
/// from the shared rig's caches, taken down when the test ends (also when it fails).
struct OwnRig(Rig);

impl OwnRig {
    fn up() -> Self {
        let shared = Rig::shared();
        let rig = Rig { netns: "labfault".into(), cache: PathBuf::from("/var/tmp/lab-cache-fault") };
        std::fs::create_dir_all(&rig.cache).expect("the fault rig's cache dir");
        let t = Instant::now();
        // The base image dir is named after the key's hash: copy both (and ttyd, Traefik, qemu's caps).
        for dir in ["image", "keys", "bin", "libvirt-cache"] {
            if !rig.cache.join(dir).exists() {
                let out = Command::new("cp").arg("-a").arg(shared.cache.join(dir)).arg(&rig.cache).output();
                let out = out.expect("cp");
                assert!(out.status.success(), "copying {dir}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        rig.rig_sh_ok(&["up"]);
        eprintln!("rig {} up in {:.1?} (caches copied from {})", rig.netns, t.elapsed(), shared.cache.display());
        OwnRig(rig)
    }
}

impl Drop for OwnRig {
    fn drop(&mut self) {
        let t = Instant::now();
        let out = self.0.rig_sh(&["down"]);
        eprintln!("rig {} down in {:.1?}: {}", self.0.netns, t.elapsed(), String::from_utf8_lossy(&out.stdout).trim());
    }
}

/// A stand-in SSH port (the terminal's readiness check only needs a TCP accept) in `rig`'s netns.
struct Listener(std::process::Child);

impl Listener {
    fn start(rig: &Rig, port: u16) -> Self {
        let script = format!(
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',{port}))\ns.listen(64)\ntime.sleep(900)\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &rig.netns, "python3", "-c", &script])
            .spawn()
            .expect("starting the stand-in listener");
        std::thread::sleep(Duration::from_millis(300));
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `terraform apply` of the saved plan `tfplan`; how long it took.
fn apply_plan(ws: &Workspace) -> (support::Run, Duration) {
    let t = Instant::now();
    let run = ws.terraform(&["apply", "-no-color", "tfplan"]);
    (run, t.elapsed())
}

fn both(run: &support::Run) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

/// The `Error:` blocks of terraform's output (what a user reads), each on one line (terraform
/// wraps them at 80 columns).
fn errors(run: &support::Run) -> String {
    run.stderr
        .split("Error: ")
        .skip(1)
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn daemon_restarts_between_plan_and_apply() {
    let t0 = Instant::now();
    let own = OwnRig::up();
    let rig = &own.0;
    let n = suffix();
    let vms: Vec<String> = ["a", "b", "c"].iter().map(|x| format!("faulttest-rs{n}-{x}")).collect();
    let ws = rig.workspace("faults-vm");
    let cleanup = Cleanup { rig, ws: &ws, names: vms.clone() };

    // 1. libvirtd restarted between plan and apply: the apply's provider connects to the new one.
    ws.write("terraform.tfvars", &rig.vm_tfvars(&vms[..1], true));
    ws.terraform(&["plan", "-no-color", "-out=tfplan"]).ok("plan of VM a");
    eprintln!("{}", rig.rig_sh_ok(&["restart", "libvirtd"]).trim());
    let (run, took) = apply_plan(&ws);
    assert_eq!(run.code, 0, "apply after a libvirtd restart failed:\n{}", both(&run));
    assert!(rig.domains().contains(&vms[0]));
    eprintln!("case libvirtd restart -> apply: succeeded ({} added) in {took:.1?}", plan_line(&run));

    // 2. libvirtd down at apply: a diagnostic naming libvirtd and what to do; nothing half-made.
    ws.write("terraform.tfvars", &rig.vm_tfvars(&vms[..2], true));
    ws.terraform(&["plan", "-no-color", "-out=tfplan"]).ok("plan of VM b");
    eprintln!("{}", rig.rig_sh_ok(&["stop", "libvirtd"]).trim());
    let (run, took) = apply_plan(&ws);
    eprintln!("case libvirtd stopped -> apply: exit {} in {took:.1?}: {}", run.code, errors(&run));
    assert_ne!(run.code, 0, "apply with libvirtd stopped succeeded:\n{}", both(&run));
    assert!(errors(&run).contains("Check that libvirtd is running"), "{}", run.stderr);
    eprintln!("{}", rig.rig_sh_ok(&["up"]).trim());
    assert!(!rig.domains().contains(&vms[1]), "a failed create left domain {}", vms[1]);
    let overlay_b = rig.overlay_dir().join(format!("{}.qcow2", vms[1]));
    assert!(!overlay_b.exists(), "a failed create left overlay {}", overlay_b.display());
    assert_eq!(ws.state_list().len(), 1, "only VM a is in state");
    let run = ws.apply(&[]);
    assert!(run.stdout.contains("1 added"), "the next apply must create VM b:\n{}", run.stdout);

    // 3. libvirtd restarted while VM c's create waits for its guest and VM a's delete for its
    //    power-off (c replaces a: at most 2 guests run): the same provider process goes on with a
    //    new connection (the libvirt helper reconnects), and both complete.
    ws.write("terraform.tfvars", &rig.vm_tfvars(&vms[1..], true));
    let mut cmd = ws.command(&["apply", "-auto-approve", "-no-color"]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let t = Instant::now();
    let child = cmd.spawn().expect("terraform apply starts");
    while !rig.domains().contains(&vms[2]) {
        assert!(t.elapsed() < Duration::from_secs(120), "VM c was not defined within 120 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("{}", rig.rig_sh_ok(&["restart", "libvirtd"]).trim());
    let run = support::Run::from_output(child.wait_with_output().expect("terraform apply ends"));
    eprintln!(
        "case libvirtd restart under a create and a delete: exit {} in {:.1?}: {}",
        run.code,
        t.elapsed(),
        errors(&run)
    );
    assert_eq!(run.code, 0, "a create across a libvirtd restart failed:\n{}", both(&run));
    assert!(run.stdout.contains("1 added, 0 changed, 1 destroyed"), "{}", run.stdout);
    assert!(!rig.domains().contains(&vms[0]), "the delete across the restart left domain {}", vms[0]);
    let overlay_a = rig.overlay_dir().join(format!("{}.qcow2", vms[0]));
    assert!(!overlay_a.exists(), "the delete across the restart left overlay {}", overlay_a.display());
    // Nothing lost: the guests ran on through both restarts, so the state still matches them.
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after the libvirtd restarts is not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // 4. dockerd restarted between plan and apply, then 5. stopped: the same for a terminal.
    let port = 25000 + (std::process::id() % 1000) as u16;
    let _listener = Listener::start(rig, port);
    let term = rig.workspace("terminal-only");
    let term_name = format!("faulttest-term{n}");
    let label = format!("dockertest.run={term_name}");
    let term_cleanup = support::DestroyOnDrop(&term);
    let term_vars = |name: &str| {
        format!(
            "name = \"{name}\"\ntarget_host = \"{}\"\ntarget_port = {port}\nssh_private_key_file = \"{}\"\n\
             terminal_image = \"{}\"\n",
            rig.var("LAB_DOCKER_CIDR").replace(".0/24", ".1"),
            rig.var("LAB_SSH_KEY"),
            rig.var("LAB_TERMINAL_IMAGE")
        )
    };
    term.write("terraform.tfvars", &term_vars(&term_name));
    term.terraform(&["plan", "-no-color", "-out=tfplan"]).ok("plan of the terminal");
    eprintln!("{}", rig.rig_sh_ok(&["restart", "dockerd"]).trim());
    let (run, took) = apply_plan(&term);
    assert_eq!(run.code, 0, "apply after a dockerd restart failed:\n{}", both(&run));
    assert_eq!(rig.containers_labelled(&label).len(), 1, "one terminal container");
    eprintln!("case dockerd restart -> apply: succeeded ({} added) in {took:.1?}", plan_line(&run));

    let term2 = rig.workspace("terminal-only");
    let term2_name = format!("faulttest-term{n}-b");
    let label2 = format!("dockertest.run={term2_name}");
    term2.write("terraform.tfvars", &term_vars(&term2_name));
    term2.terraform(&["plan", "-no-color", "-out=tfplan"]).ok("plan of the second terminal");
    eprintln!("{}", rig.rig_sh_ok(&["stop", "dockerd"]).trim());
    let (run, took) = apply_plan(&term2);
    eprintln!("case dockerd stopped -> apply: exit {} in {took:.1?}: {}", run.code, errors(&run));
    assert_ne!(run.code, 0, "apply with dockerd stopped succeeded:\n{}", both(&run));
    assert!(errors(&run).contains("check that dockerd is running"), "{}", run.stderr);
    eprintln!("{}", rig.rig_sh_ok(&["up"]).trim());
    assert!(rig.containers_labelled(&label2).is_empty(), "a failed create left a container");
    assert!(term2.state_list().is_empty(), "a failed create left state");

    // The first terminal's container came back with dockerd (restart policy): nothing to change.
    let plan = term.plan();
    assert_eq!(plan.code, 0, "plan after the dockerd restarts is not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // 6. dockerd restarted while a create waits for its terminal's target (nothing listens on
    //    `late` yet): the provider's client goes on against the new daemon, the container comes
    //    back by its restart policy, and once the target answers the create completes.
    let late = port + 1;
    let term3 = rig.workspace("terminal-only");
    let term3_name = format!("faulttest-term{n}-c");
    let label3 = format!("dockertest.run={term3_name}");
    let term3_cleanup = support::DestroyOnDrop(&term3);
    term3.write("terraform.tfvars", &term_vars(&term3_name).replace(&format!("= {port}\n"), &format!("= {late}\n")));
    let mut cmd = term3.command(&["apply", "-auto-approve", "-no-color"]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let t = Instant::now();
    let child = cmd.spawn().expect("terraform apply starts");
    // Once it runs, the create is waiting for its target (the case this is about), not starting it.
    while rig.running_labelled(&label3).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(60), "the terminal container was not running within 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("{}", rig.rig_sh_ok(&["restart", "dockerd"]).trim());
    let _late_listener = Listener::start(rig, late);
    let run = support::Run::from_output(child.wait_with_output().expect("terraform apply ends"));
    eprintln!("case dockerd restart under a create: exit {} in {:.1?}: {}", run.code, t.elapsed(), errors(&run));
    assert_eq!(run.code, 0, "a create across a dockerd restart failed:\n{}", both(&run));
    assert_eq!(rig.containers_labelled(&label3).len(), 1, "one container for terminal c");
    std::mem::forget(term3_cleanup);
    term3.destroy();
    assert!(rig.containers_labelled(&label3).is_empty(), "destroy left terminal c's container");

    std::mem::forget(term_cleanup);
    term.destroy();
    assert!(rig.containers_labelled(&label).is_empty(), "destroy left the terminal container");
    std::mem::forget(cleanup);
    ws.destroy();
    let left: Vec<String> = rig.domains().into_iter().filter(|d| vms.contains(d)).collect();
    assert!(left.is_empty(), "destroy left domains {left:?}");
    for name in &vms {
        let overlay = rig.overlay_dir().join(format!("{name}.qcow2"));
        assert!(!overlay.exists(), "destroy left overlay {}", overlay.display());
    }
    eprintln!("restart test took {:.1?} (own rig's up included, its down follows)", t0.elapsed());
}

/// "Apply complete! Resources: N added, ..." -> "N"
fn plan_line(run: &support::Run) -> String {
    run.stdout.lines().find(|l| l.contains("Apply complete!")).unwrap_or("no summary").to_string()
}
