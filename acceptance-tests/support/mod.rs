//! Runs the real `terraform` on HCL cases against the provider binary built by cargo
//! (dev_overrides, no `terraform init`). Cases that need VMs or containers run inside the
//! acceptance rig's network namespace through `acceptance-tests/rig.sh exec`.
#![allow(dead_code)] // each acceptance test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PROVIDER: &str = "registry.terraform.io/classroom/lab";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[path = "../../tests/support/rig.rs"]
mod rig;
#[allow(unused_imports)] // not every acceptance test reads rig.env
pub use rig::{rig_env_file, rig_var, rig_vars_in};

/// `ssh -i KEY TARGET CMD` as the tests run it in a rig: no host-key prompt or check, no agent or
/// password, 10 s to connect, only errors on stderr.
pub fn guest_ssh<'a>(key: &'a str, target: &'a str, cmd: &'a str) -> [&'a str; 15] {
    [
        "ssh",
        "-i",
        key,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
        target,
        cmd,
    ]
}

/// A command inside the rig's netns with rig.env loaded.
pub fn rig_exec(args: &[&str]) -> Output {
    Command::new(repo_root().join("acceptance-tests/rig.sh")).arg("exec").args(args).output().expect("rig.sh exec")
}

/// The terraform to run: `$LAB_TERRAFORM` (e.g. acceptance-tests/terraform-1.15) or `terraform`.
pub fn terraform_command() -> PathBuf {
    match std::env::var("LAB_TERRAFORM") {
        Ok(t) if t.contains('/') => repo_root().join(t),
        Ok(t) if !t.is_empty() => PathBuf::from(t),
        _ => PathBuf::from("terraform"),
    }
}

/// `-parallelism=N` for applies: `$LAB_TF_PARALLELISM` when set (e.g. 1 on a busy machine, so
/// VMs boot one at a time), else `default`.
pub fn parallelism(default: u32) -> String {
    let n = std::env::var("LAB_TF_PARALLELISM").ok().filter(|v| !v.is_empty());
    let n = n.map(|v| v.parse::<u32>().unwrap_or_else(|e| panic!("LAB_TF_PARALLELISM={v}: {e}")));
    format!("-parallelism={}", n.unwrap_or(default))
}

/// A working directory holding one HCL case, and how to run terraform in it.
pub struct Workspace {
    dir: tempfile::TempDir,
    in_rig: bool,
    /// The rig.sh command terraform runs under: `exec` (the rig's netns) or `hosts-exec` (the
    /// control namespace of a rig of hosts).
    rig_verb: &'static str,
    /// Extra environment for every command (e.g. `LAB_NETNS`/`LAB_CACHE` of a rig of its own).
    env: Vec<(String, String)>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    /// The run of a command a test spawned itself (e.g. an apply it disturbs while it runs).
    pub fn from_output(out: Output) -> Self {
        Self::from(out)
    }
    pub fn ok(self, what: &str) -> Self {
        assert_eq!(self.code, 0, "{what} failed\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

impl Workspace {
    /// Copies `acceptance-tests/cases/<case>/` into a fresh temp dir.
    pub fn new(case: &str) -> Self {
        Self::copy_of(&repo_root().join("acceptance-tests/cases").join(case))
    }

    /// Copies the `.tf` and data files of `src` (e.g. an example) into a fresh temp dir.
    pub fn copy_of(src: &Path) -> Self {
        let name = src.file_name().and_then(|n| n.to_str()).unwrap_or("case");
        let dir = tempfile::Builder::new().prefix(&format!("acc-{name}-")).tempdir().expect("temp dir");
        for entry in std::fs::read_dir(src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_file() {
                std::fs::copy(&path, dir.path().join(path.file_name().expect("file name"))).expect("copy case file");
            }
        }
        let provider_dir = Path::new(env!("CARGO_BIN_EXE_terraform-provider-lab")).parent().expect("bin dir");
        let rc = format!(
            "provider_installation {{\n  dev_overrides {{\n    \"{PROVIDER}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            provider_dir.display()
        );
        std::fs::write(dir.path().join(".terraformrc"), rc).expect("write terraformrc");
        Workspace { dir, in_rig: false, rig_verb: "exec", env: Vec::new() }
    }

    /// Like `new`, but terraform runs inside the rig's netns with rig.env loaded.
    pub fn in_rig(case: &str) -> Self {
        rig_env_file();
        Workspace { in_rig: true, ..Self::new(case) }
    }

    /// A case run by terraform in the control namespace of a rig of hosts (`rig.sh hosts-up`),
    /// with that rig's `LAB_NETNS` and `LAB_CACHE`.
    pub fn in_hosts(case: &str, netns: &str, cache: &str) -> Self {
        Workspace { in_rig: true, rig_verb: "hosts-exec", ..Self::new(case) }
            .with_env("LAB_NETNS", netns)
            .with_env("LAB_CACHE", cache)
    }

    /// Sets `key=value` in the environment of every command this workspace runs (`rig.sh exec`
    /// reads `LAB_NETNS` and `LAB_CACHE`: a test can aim at a rig other than the shared one).
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Copies an example under `examples/` (its README and CI files are ignored by terraform).
    pub fn example(name: &str) -> Self {
        Self::copy_of(&repo_root().join("examples").join(name))
    }

    /// Like `example`, but terraform runs inside the rig's netns with rig.env loaded.
    pub fn example_in_rig(name: &str) -> Self {
        rig_env_file();
        Workspace { in_rig: true, ..Self::example(name) }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).expect("write case file");
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove case file");
    }

    /// `terraform <args>` in this workspace; never interactive, never phones home.
    pub fn terraform(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("running terraform"))
    }

    /// The command `terraform` runs as, for tests that must drive the process (e.g. interrupt it).
    pub fn command(&self, args: &[&str]) -> Command {
        let rc = self.dir.path().join(".terraformrc");
        let mut cmd = if self.in_rig {
            let mut c = Command::new(repo_root().join("acceptance-tests/rig.sh"));
            c.args([self.rig_verb, "env", &format!("TF_CLI_CONFIG_FILE={}", rc.display()), "terraform"]);
            c
        } else {
            let mut c = Command::new(terraform_command());
            c.env("TF_CLI_CONFIG_FILE", &rc);
            c
        };
        cmd.arg(format!("-chdir={}", self.dir.path().display()))
            .args(args)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `terraform apply`, interrupted like Ctrl-C in a terminal once `started()` says the create
    /// is under way (plus `settle`): SIGINT to the whole process group terraform runs in, so the
    /// provider gets it too. Returns the run and how long terraform took to stop after the signal.
    pub fn apply_interrupted(
        &self,
        started: impl Fn() -> bool,
        settle: std::time::Duration,
    ) -> (Run, std::time::Duration) {
        use std::os::unix::process::CommandExt;
        use std::time::{Duration, Instant};

        let mut cmd = self.command(&["apply", "-auto-approve", "-no-color"]);
        cmd.process_group(0).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let child = cmd.spawn().expect("terraform apply starts");
        let group = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !started() {
            if Instant::now() > deadline {
                unsafe { libc::killpg(group, libc::SIGKILL) };
                panic!("the create did not start within 120 s:\n{:?}", child.wait_with_output());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        std::thread::sleep(settle);
        assert_eq!(unsafe { libc::killpg(group, libc::SIGINT) }, 0, "SIGINT to terraform's process group");
        let signalled = Instant::now();
        let out = child.wait_with_output().expect("terraform apply ends");
        (Run::from(out), signalled.elapsed())
    }

    /// `terraform apply` killed with SIGKILL (as a cancelled CI job kills it) once `started()`
    /// says the create is under way (plus `settle`): only terraform dies, so its providers must
    /// notice by themselves. Returns the run and the pids of the providers it had started.
    pub fn apply_killed(&self, started: impl Fn() -> bool + Send, settle: std::time::Duration) -> (Run, Vec<i32>) {
        let (run, providers, _) = self.apply_killed_when(&[], false, held_for(settle, started));
        assert!(!providers.is_empty(), "terraform had no provider child to watch");
        (run, providers)
    }

    /// `terraform apply <extra>` killed with SIGKILL the moment `kill_now(stdout so far)` says so:
    /// asked on each piece of output as it arrives (so a kill on a line lands before terraform can
    /// go on) and every 50 ms. Terraform is stopped (SIGSTOP) first, so it cannot exit while the
    /// pids are taken. With `with_providers`, the providers and their helpers get SIGKILL in the
    /// same moment (as a CI runner that kills the whole process tree), so nothing rolls back.
    /// Returns the run, the pids of the providers terraform had started and of the processes
    /// those had started (the libvirt helper).
    pub fn apply_killed_when(
        &self,
        extra: &[&str],
        with_providers: bool,
        kill_now: impl FnMut(&str) -> bool + Send,
    ) -> (Run, Vec<i32>, Vec<i32>) {
        use std::io::Read;
        use std::sync::Mutex;
        use std::time::{Duration, Instant};

        let mut args = vec!["apply", "-auto-approve", "-no-color"];
        args.extend_from_slice(extra);
        let mut cmd = self.command(&args);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("terraform apply starts");
        let terraform = child.id() as i32;
        let mut pipe = child.stdout.take().expect("piped stdout");
        // (stdout so far, the trigger, the pids once killed)
        let shared = Mutex::new((String::new(), kill_now, None::<(Vec<i32>, Vec<i32>)>));
        let check = |chunk: &str| -> bool {
            let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
            let (stdout, kill_now, killed) = &mut *guard;
            stdout.push_str(chunk);
            if killed.is_none() && kill_now(stdout) {
                assert_eq!(unsafe { libc::kill(terraform, libc::SIGSTOP) }, 0, "SIGSTOP to terraform");
                let providers = children_named(terraform, "terraform-provi");
                let helpers: Vec<i32> = providers.iter().flat_map(|p| children_named(*p, "terraform-provi")).collect();
                if with_providers {
                    for pid in helpers.iter().chain(&providers) {
                        assert_eq!(unsafe { libc::kill(*pid, libc::SIGKILL) }, 0, "SIGKILL to {pid}");
                    }
                }
                assert_eq!(unsafe { libc::kill(terraform, libc::SIGKILL) }, 0, "SIGKILL to terraform");
                *killed = Some((providers, helpers));
            }
            killed.is_some()
        };
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    check(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            let deadline = Instant::now() + Duration::from_secs(300);
            while !check("") {
                if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                    unsafe { libc::kill(terraform, libc::SIGKILL) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let out = child.wait_with_output().expect("terraform apply ends");
        let (stdout, _, killed) = shared.into_inner().unwrap_or_else(|p| p.into_inner());
        let Some((providers, helpers)) = killed else {
            panic!("the moment to kill terraform did not come within 300 s, or it ended first:\n{stdout}");
        };
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (run, providers, helpers)
    }

    /// Forgets `address` and takes it back with an `import` block for `id`: the plan must import
    /// and not replace, and after the apply the plan must be empty.
    pub fn reimport_adopts(&self, address: &str, id: &str) {
        self.terraform(&["state", "rm", address]).ok("state rm");
        self.write("import.tf", &format!("import {{\n  to = {address}\n  id = \"{id}\"\n}}\n"));
        let plan = self.terraform(&["plan", "-no-color"]).ok("plan import");
        assert!(plan.stdout.contains("1 to import"), "{}", plan.stdout);
        assert!(!plan.stdout.contains("must be replaced"), "import must adopt, not replace:\n{}", plan.stdout);
        self.apply(&[]);
        self.remove("import.tf");
        let plan = self.plan();
        assert_eq!(plan.code, 0, "plan after import not empty:\n{}\n{}", plan.stdout, plan.stderr);
    }

    pub fn apply(&self, extra: &[&str]) -> Run {
        let parallelism = parallelism(10);
        let mut args = vec!["apply", "-auto-approve", "-no-color", &parallelism];
        args.extend_from_slice(extra);
        self.terraform(&args).ok("terraform apply")
    }

    pub fn destroy(&self) -> Run {
        self.terraform(&["destroy", "-auto-approve", "-no-color"]).ok("terraform destroy")
    }

    /// `plan -detailed-exitcode`: 0 no changes, 2 changes, 1 error.
    pub fn plan(&self) -> Run {
        self.terraform(&["plan", "-detailed-exitcode", "-no-color"])
    }

    /// The resource addresses in the state. No state file yet (terraform exits 1 with "No state
    /// file was found!") is an empty list; any other failure of terraform panics with its output.
    pub fn state_list(&self) -> Vec<String> {
        let run = self.terraform(&["state", "list"]);
        if run.code != 0 {
            assert!(
                run.code == 1 && run.stderr.contains("No state file was found!"),
                "terraform state list failed (exit {}):\n{}\n{}",
                run.code,
                run.stdout,
                run.stderr
            );
            return Vec::new();
        }
        run.stdout.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
    }

    pub fn output_json(&self) -> serde_json::Value {
        let run = self.terraform(&["output", "-json"]).ok("terraform output");
        serde_json::from_str(&run.stdout).expect("terraform output -json is JSON")
    }

    /// The resource instances of the current state, as `terraform show -json` lists them.
    pub fn state_resources(&self) -> Vec<serde_json::Value> {
        let run = self.terraform(&["show", "-json"]).ok("terraform show");
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("show -json is JSON");
        doc.pointer("/values/root_module/resources").and_then(|r| r.as_array()).cloned().unwrap_or_default()
    }
}

/// "Plan: A to add, C to change, D to destroy." -> (A, C, D); "No changes." -> (0, 0, 0).
/// `virsh -q ARGS` inside the rig, with rig.env's URI.
pub fn virsh(args: &[&str]) -> Output {
    let mut all = vec!["virsh", "-q"];
    all.extend_from_slice(args);
    rig_exec(&all)
}

/// `terraform apply <extra>` where the workspace runs terraform (the rig's netns, or a rig of
/// hosts' control namespace) with the provider's log at `level` kept: the run and the messages of
/// the log lines that `keep` selects, one per line.
pub fn apply_with_provider_log(
    ws: &Workspace,
    level: &str,
    extra: &[&str],
    keep: impl Fn(&str) -> bool,
) -> (Run, String) {
    let log = ws.path().join("provider.log");
    let _ = std::fs::remove_file(&log);
    let mut args = vec!["apply", "-auto-approve", "-no-color"];
    args.extend_from_slice(extra);
    let mut cmd = ws.command(&args);
    cmd.env("TF_LOG_PROVIDER", level).env("TF_LOG_PATH", &log);
    let run = Run::from(cmd.output().expect("running terraform apply"));
    let messages = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| keep(l))
        .map(|l| l.split("\"@message\":\"").nth(1).and_then(|m| m.split('"').next()).unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    (run, messages)
}

/// A trigger for `apply_killed_when`: true once `cond()` has held for `settle` (asked each time the
/// trigger is, so `cond` is polled as often as terraform prints and every 50 ms).
pub fn held_for(settle: std::time::Duration, cond: impl Fn() -> bool) -> impl FnMut(&str) -> bool {
    let mut since: Option<std::time::Instant> = None;
    move |_| {
        if since.is_none() && cond() {
            since = Some(std::time::Instant::now());
        }
        since.is_some_and(|t| t.elapsed() >= settle)
    }
}

/// Whether the rig's libvirt has a domain of this name (running or not). Read from `virsh list
/// --all --name`, since `virsh dominfo` fails alike for a missing domain and an unreachable
/// libvirtd ("failed to get domain"); a failing `virsh list` panics with its stderr.
pub fn domain_exists(name: &str) -> bool {
    let out = virsh(&["list", "--all", "--name"]);
    assert!(
        out.status.success(),
        "virsh list --all --name failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == name)
}

pub fn plan_counts(stdout: &str) -> (u32, u32, u32) {
    if stdout.contains("No changes.") {
        return (0, 0, 0);
    }
    let line = stdout.lines().find(|l| l.contains("Plan: ")).unwrap_or_else(|| panic!("no plan summary in:\n{stdout}"));
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("number"))
        .collect();
    // "Plan: 1 to import, 0 to add, ..." carries an extra leading count.
    let n = nums.len();
    assert!(n >= 3, "unexpected plan summary: {line}");
    (nums[n - 3], nums[n - 2], nums[n - 1])
}

/// `docker <args>` against the rig's daemon.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).env("DOCKER_HOST", rig_var("DOCKER_HOST")).output().expect("running docker")
}

/// `docker <args>` that must succeed (a check built on it cannot pass because docker failed);
/// its stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pids of the processes whose parent is `parent` and whose name (`comm`, 15 characters at most)
/// starts with `prefix`.
pub fn children_named(parent: i32, prefix: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("reading /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) && stat[open + 1..close].starts_with(prefix) {
            found.push(pid);
        }
    }
    found
}

/// Whether process `pid` still exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rfind(')').is_some_and(|close| !stat[close + 1..].trim_start().starts_with('Z')))
}

/// The browser check (`acceptance-tests/browser/terminal.mjs`) on `cases_file`, inside the rig's
/// netns: one result per case, each `ok`, or the test fails with what the browser printed.
/// `t0_ms` (epoch ms) is where its "time to prompt" figures count from.
pub fn browser_check(cases_file: &Path, out_dir: &Path, t0_ms: u128, cases: usize) -> Vec<serde_json::Value> {
    browser_check_in(&[], "exec", &[], cases_file, out_dir, t0_ms, cases)
}

/// `browser_check` under `rig.sh <verb>` with `rig_env` (e.g. another rig's `LAB_NETNS`) and
/// `env` for the browser (e.g. `LAB_HOST_RESOLVER_RULES`).
pub fn browser_check_in(
    rig_env: &[(&str, &str)],
    verb: &str,
    env: &[(&str, &str)],
    cases_file: &Path,
    out_dir: &Path,
    t0_ms: u128,
    cases: usize,
) -> Vec<serde_json::Value> {
    let browser = Command::new(repo_root().join("acceptance-tests/rig.sh"))
        .envs(rig_env.iter().copied())
        .args([verb, "env", &format!("LAB_T0_MS={t0_ms}")])
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg("node")
        .arg(repo_root().join("acceptance-tests/browser/terminal.mjs"))
        .arg(cases_file)
        .arg(out_dir)
        .output()
        .expect("running the browser check");
    let stdout = String::from_utf8_lossy(&browser.stdout);
    println!("{stdout}");
    let results: Vec<serde_json::Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        browser.status.success() && results.len() == cases,
        "browser check failed\n{stdout}\n{}",
        String::from_utf8_lossy(&browser.stderr)
    );
    results
}

/// Destroys the workspace's objects when a test ends early (a failed assertion must not leave VMs
/// and containers behind: the state dies with the temp dir). `std::mem::forget` it before the
/// test's own, checked destroy.
pub struct DestroyOnDrop<'a>(pub &'a Workspace);

impl Drop for DestroyOnDrop<'_> {
    fn drop(&mut self) {
        let run = self.0.terraform(&["destroy", "-auto-approve", "-no-color"]);
        if run.code != 0 {
            eprintln!("cleanup destroy failed:\n{}\n{}", run.stdout, run.stderr);
        }
    }
}

/// Where a browser test puts its screenshots: `$LAB_TEST_OUT`, else `<tmpdir>/<name>`.
pub fn out_dir(tmpdir: &str, name: &str) -> PathBuf {
    let dir = std::env::var("LAB_TEST_OUT").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(tmpdir).join(name));
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}
