//! `lab_vm`: a student's VM. A qcow2 thin clone of a read-only base image, booted under libvirt,
//! reachable by SSH. Schema first, then plan, create, read, update, delete, import.
//!
//! Per-VM settings reach the guest in one of two ways: with direct kernel boot, as
//! `lab.hostname=`/`lab.authkey=` words appended to the kernel command line (the lab images
//! apply them at boot); with `cloud_init`, through a NoCloud seed ISO (`meta-data` carries the
//! hostname and the keys as `public-keys`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::backends::domain_xml::{DirectBoot, DomainSpec, DomainType, LabMetadata};
use crate::backends::libvirt::{AddressSource, Libvirt, VmInfo, VmState};
use crate::backends::qcow2;
use crate::backends::seed::NoCloudSeed;
use crate::lifecycle::{Rollback, Timeouts, shell_command, wait_until};
use crate::protocol::diag::error_chain;
use crate::protocol::log;
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, DiagResultExt, Diagnostic, Diagnostics, OpContext, PlanRequest, Planned,
    Resource, Schema, Type, Value,
};
use crate::settings::ProviderHandle;

const TYPE_NAME: &str = "lab_vm";
const DEFAULT_MEMORY_MB: i64 = 16384;
const DEFAULT_VCPUS: i64 = 4;
const DEFAULT_OVERLAY_DIR: &str = "/var/lib/libvirt/images";
const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a guest gets to power off on the ACPI button before it is destroyed.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// Readiness is polled this often: a guest's lease or banner is seen within this of appearing.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabVmState {
    pub id: Attr<String>,
    pub name: Attr<String>,
    pub base_image: Attr<String>,
    pub overlay_dir: Attr<String>,
    pub memory_mb: Attr<i64>,
    pub vcpus: Attr<i64>,
    pub network: Attr<String>,
    pub domain_type: Attr<String>,
    pub disk_size_gb: Attr<i64>,
    /// Elements can be unknown at validation time (e.g. `file()` of a generated key).
    pub ssh_authorized_keys: Attr<Vec<Attr<String>>>,
    pub user: Attr<String>,
    pub hostname: Attr<String>,
    pub cloud_init: Attr<String>,
    pub kernel: Attr<String>,
    pub initrd: Attr<String>,
    pub cmdline: Attr<String>,
    pub running: Attr<bool>,
    pub autostart: Attr<bool>,
    pub isolated: Attr<bool>,
    pub graphics: Attr<bool>,
    pub wait_for: Attr<String>,
    pub ip: Attr<String>,
    pub mac: Attr<String>,
    pub overlay_path: Attr<String>,
    pub state: Attr<String>,
    pub console: Attr<String>,
    pub timeouts: Option<Timeouts>,
}

pub struct VmResource {
    provider: ProviderHandle,
    /// Connected lazily on first use, reconnected when libvirtd drops it.
    conn: tokio::sync::Mutex<Option<Libvirt>>,
    /// Memory (MiB) of the VMs planned by this provider process, by name: the capacity check
    /// compares their sum with the host's free memory.
    planned_memory: std::sync::Mutex<BTreeMap<String, i64>>,
}

impl VmResource {
    pub fn new(provider: ProviderHandle) -> Self {
        VmResource { provider, conn: tokio::sync::Mutex::new(None), planned_memory: Default::default() }
    }

    async fn libvirt(&self) -> Result<Libvirt, Diagnostics> {
        let uri = self.provider.settings()?.require_libvirt_uri(TYPE_NAME)?.to_string();
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref()
            && conn.is_alive().await
        {
            return Ok(conn.clone());
        }
        let conn = Libvirt::connect(&uri).await.or_diag("Cannot reach libvirt")?;
        *guard = Some(conn.clone());
        Ok(conn)
    }
}

#[async_trait]
impl Resource for VmResource {
    type State = LabVmState;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema { version: 0, block: vm_block() }
    }

    async fn validate(&self, config: &LabVmState) -> Diagnostics {
        validate_config(config)
    }

    async fn plan(&self, req: PlanRequest<LabVmState>) -> Result<Planned<LabVmState>, Diagnostics> {
        let mut planned = req.planned;
        // hostname defaults to the name.
        if req.config.hostname.is_null() {
            planned.hostname = planned.name.clone();
        }
        let mut diags = validate_config(&planned);
        if diags.has_errors() {
            return Err(diags);
        }

        let settings = self.provider.settings()?;
        let uri = settings.require_libvirt_uri(TYPE_NAME)?.to_string();
        if let Some(base) = planned.base_image.known()
            && uri_is_local(&uri)
            && !Path::new(base).is_file()
        {
            return Err(Diagnostic::attr_error(
                AttrPath::root("base_image"),
                "Base image not found",
                format!("`{base}` does not exist on this host (libvirt at {uri} is local)."),
            )
            .into());
        }
        if (planned.ssh_authorized_keys.known().is_some_and(|k| !k.is_empty()))
            && planned.kernel.is_null()
            && planned.cloud_init.is_null()
        {
            diags.push(Diagnostic::attr_warning(
                AttrPath::root("ssh_authorized_keys"),
                "Keys cannot reach this guest",
                "Keys are passed on the kernel command line (`kernel` set) or in a NoCloud seed (`cloud_init` \
                 set); with neither, the image must already hold the keys.",
            ));
        }
        let memory_grows = match (&req.prior, planned.memory_mb.known()) {
            (None, Some(_)) => true,
            (Some(prior), Some(m)) => prior.memory_mb.known() != Some(m),
            _ => false,
        };
        if memory_grows && let (Some(name), Some(memory)) = (planned.name.known(), planned.memory_mb.known()) {
            let prior_memory = req.prior.as_ref().and_then(|p| p.memory_mb.known().copied()).unwrap_or(0);
            diags.extend(self.check_capacity(name, memory - prior_memory, settings.strict_capacity).await?);
        }
        let mut out = Planned::new(planned);
        out.diagnostics = diags;
        Ok(out)
    }

    async fn create(&self, planned: LabVmState, ctx: &OpContext) -> Result<LabVmState, Diagnostics> {
        let lv = self.libvirt().await?;
        let cfg = VmConfig::from_state(&planned)?;
        if lv.lookup(&cfg.name).await.or_diag("Looking up the domain")?.is_some() {
            return Err(Diagnostic::attr_error(
                AttrPath::root("name"),
                "Domain already exists",
                format!(
                    "A libvirt domain named `{}` exists already. Import it (`terraform import` with id `{}`) or \
                     choose another name.",
                    cfg.name, cfg.name
                ),
            )
            .into());
        }
        let timeout = cfg.create_timeout;
        let started = Instant::now();
        let mut rollback = Rollback::new();
        let created = self.create_steps(&lv, &cfg, &mut rollback, timeout, ctx).await;
        rollback.finish(created).await?;
        log::debug(&format!("{}: create done in {:.2}s", cfg.name, started.elapsed().as_secs_f64()));
        let info = lv.lookup(&cfg.name).await.or_diag("Reading the new domain")?.ok_or_else(|| {
            Diagnostic::error("Domain vanished", format!("`{}` disappeared right after create", cfg.name))
        })?;
        let mut state = planned;
        refresh_state(&mut state, &info, &lv, true).await;
        Ok(state)
    }

    async fn read(&self, current: LabVmState, _ctx: &OpContext) -> Result<Option<LabVmState>, Diagnostics> {
        let lv = self.libvirt().await?;
        let found = match current.id.known() {
            Some(uuid) => lv.lookup_uuid(uuid).await,
            None => match current.name.known() {
                Some(name) => lv.lookup(name).await,
                None => return Ok(None),
            },
        }
        .or_diag("Reading the domain")?;
        let Some(info) = found else {
            return Ok(None);
        };
        let mut state = current;
        refresh_state(&mut state, &info, &lv, false).await;
        Ok(Some(state))
    }

    async fn update(&self, prior: LabVmState, planned: LabVmState, ctx: &OpContext) -> Result<LabVmState, Diagnostics> {
        let lv = self.libvirt().await?;
        let cfg = VmConfig::from_state(&planned)?;
        let name = cfg.name.clone();
        let info = lv.lookup(&name).await.or_diag("Reading the domain")?.ok_or_else(|| {
            Diagnostic::error(
                "Domain vanished",
                format!("`{name}` no longer exists; run `terraform apply` again to re-create it"),
            )
        })?;
        let mut was_active = is_active(info.state);
        let old = VmConfig::from_state(&prior)?;
        let redefine = cfg.definition_differs(&old);
        if redefine {
            let uuid = prior.id.known().cloned().unwrap_or(info.summary.uuid.clone());
            let mac = prior.mac.known().cloned().or(info.summary.mac.clone()).unwrap_or_else(random_mac);
            let seed = match &cfg.cloud_init {
                Some(user_data) => {
                    let seed = cfg.seed(user_data);
                    seed.write_iso(&cfg.seed_path).await.or_diag("Regenerating the NoCloud seed")?;
                    Some(cfg.seed_path.clone())
                }
                None => None,
            };
            let xml = cfg.domain_spec(Some(uuid), mac, seed.clone()).to_xml().or_diag("Building domain XML")?;
            lv.define(xml).await.or_diag("Redefining the domain")?;
            if seed.is_none() {
                qcow2::delete(&cfg.seed_path).await.or_diag("Removing the old seed")?;
            }
            // A running guest only picks the new definition up after a cold restart.
            if was_active {
                stop_gracefully(&lv, &name, shutdown_grace(cfg.delete_timeout), ctx).await?;
                was_active = false;
            }
        }
        if !cfg.running && was_active {
            stop_gracefully(&lv, &name, shutdown_grace(cfg.delete_timeout), ctx).await?;
        }
        if cfg.running && !was_active {
            let t0 = Instant::now();
            lv.start(&name).await.or_diag("Starting the domain")?;
            let mac = lv.lookup(&name).await.or_diag("Reading the domain")?.and_then(|i| i.summary.mac);
            wait_ready(&lv, &cfg, mac.as_deref(), t0, cfg.create_timeout, ctx).await?;
        }
        if prior.autostart.known() != Some(&cfg.autostart) || info.autostart != cfg.autostart {
            lv.set_autostart(&name, cfg.autostart).await.or_diag("Setting autostart")?;
        }
        let info =
            lv.lookup(&name).await.or_diag("Reading the domain")?.ok_or_else(|| {
                Diagnostic::error("Domain vanished", format!("`{name}` disappeared during the update"))
            })?;
        let mut state = planned;
        refresh_state(&mut state, &info, &lv, true).await;
        Ok(state)
    }

    async fn delete(&self, current: LabVmState, ctx: &OpContext) -> Result<(), Diagnostics> {
        let lv = self.libvirt().await?;
        let Some(name) = current.name.known().cloned() else {
            return Ok(());
        };
        let delete_timeout = parse_timeouts(&current).map(|(_, d)| d).unwrap_or(DEFAULT_DELETE_TIMEOUT);
        let info = lv.lookup(&name).await.or_diag("Looking up the domain")?;
        if let Some(info) = info {
            // A domain re-created out of band under the same name is not ours to remove.
            let ours = current.id.known().is_none_or(|id| *id == info.summary.uuid);
            if ours {
                if is_active(info.state) {
                    stop_gracefully(&lv, &name, shutdown_grace(delete_timeout), ctx).await?;
                }
                lv.undefine(&name).await.or_diag("Undefining the domain")?;
            } else {
                log::debug(&format!(
                    "{name}: domain UUID {} is not ours ({:?}); left alone",
                    info.summary.uuid, current.id
                ));
            }
        }
        let overlay_dir = current.overlay_dir.known().cloned().unwrap_or_else(|| DEFAULT_OVERLAY_DIR.into());
        let overlay =
            current.overlay_path.known().map(PathBuf::from).unwrap_or_else(|| overlay_path(&overlay_dir, &name));
        for path in [overlay, seed_path(&overlay_dir, &name)] {
            qcow2::delete(&path).await.or_diag("Removing the VM's disk files")?;
        }
        Ok(())
    }

    async fn import(&self, id: &str, _ctx: &OpContext) -> Result<Option<LabVmState>, Diagnostics> {
        if let Err(why) = validate_name(id) {
            return Err(Diagnostic::error("Invalid import id", format!("Import `lab_vm` by domain name: {why}")).into());
        }
        let lv = self.libvirt().await?;
        let Some(info) = lv.lookup(id).await.or_diag("Looking up the domain")? else {
            return Ok(None);
        };
        let s = &info.summary;
        let disk = s.disk.clone().ok_or_else(|| {
            Diagnostic::error("Cannot import", format!("Domain `{id}` has no file-backed disk: not a lab_vm"))
        })?;
        let base_image = match &s.metadata.base_image {
            Some(b) => Some(b.clone()),
            None => qcow2::info(&disk).await.ok().and_then(|i| i.full_backing_filename.or(i.backing_filename)),
        };
        let mut state = LabVmState {
            id: Attr::Known(s.uuid.clone()),
            name: Attr::Known(s.name.clone()),
            base_image: base_image.into(),
            overlay_dir: disk.parent().map(|p| p.to_string_lossy().into_owned()).into(),
            network: s.network.clone().into(),
            domain_type: Attr::Known(s.domain_type.clone()),
            user: Attr::Known(s.metadata.user.clone().unwrap_or_else(|| "student".into())),
            hostname: Attr::Known(s.metadata.hostname.clone().unwrap_or_else(|| s.name.clone())),
            kernel: s.kernel.as_ref().map(|p| p.to_string_lossy().into_owned()).into(),
            initrd: s.initrd.as_ref().map(|p| p.to_string_lossy().into_owned()).into(),
            cmdline: s.metadata.cmdline.clone().or_else(|| s.cmdline.clone()).into(),
            ssh_authorized_keys: keys_from_cmdline(s.cmdline.as_deref().unwrap_or_default())
                .map(|keys| keys.into_iter().map(Attr::Known).collect())
                .into(),
            isolated: Attr::Known(s.isolated),
            graphics: Attr::Known(s.graphics.is_some()),
            wait_for: Attr::Known("ssh".into()),
            ..Default::default()
        };
        refresh_state(&mut state, &info, &lv, false).await;
        Ok(Some(state))
    }
}

impl VmResource {
    async fn create_steps(
        &self,
        lv: &Libvirt,
        cfg: &VmConfig,
        rollback: &mut Rollback,
        timeout: Duration,
        ctx: &OpContext,
    ) -> Result<(), Diagnostics> {
        let name = &cfg.name;
        // No domain has this name (checked by the caller), so files under its name in the
        // overlay dir are what an out-of-band `virsh undefine` left behind: replace them.
        for stale in [&cfg.overlay_path, &cfg.seed_path] {
            if stale.exists() {
                log::debug(&format!("{name}: removing stale {} left by a vanished domain", stale.display()));
                qcow2::delete(stale).await.or_diag("Removing a stale overlay")?;
            }
        }
        let t = Instant::now();
        qcow2::create_overlay(&cfg.base_image, &cfg.overlay_path, cfg.disk_size_bytes)
            .await
            .or_diag("Creating the overlay disk")?;
        let overlay = cfg.overlay_path.clone();
        rollback.push_with_manual(
            format!("overlay {}", overlay.display()),
            shell_command(["rm", "-f", &overlay.to_string_lossy()]),
            async move { qcow2::delete(&overlay).await.map_err(|e| error_chain(&e)) },
        );
        log::debug(&format!("{name}: overlay_create_s={:.3}", t.elapsed().as_secs_f64()));

        let seed = match &cfg.cloud_init {
            Some(user_data) => {
                cfg.seed(user_data).write_iso(&cfg.seed_path).await.or_diag("Creating the NoCloud seed")?;
                let seed = cfg.seed_path.clone();
                rollback.push_with_manual(
                    format!("seed {}", seed.display()),
                    shell_command(["rm", "-f", &seed.to_string_lossy()]),
                    async move { qcow2::delete(&seed).await.map_err(|e| error_chain(&e)) },
                );
                Some(cfg.seed_path.clone())
            }
            None => None,
        };

        let t0 = Instant::now();
        let mac = random_mac();
        let xml = cfg.domain_spec(None, mac.clone(), seed).to_xml().or_diag("Building domain XML")?;
        lv.define(xml).await.or_diag("Defining the domain")?;
        let (lv2, n2) = (lv.clone(), name.clone());
        let virsh = |verb: &str| shell_command(["virsh", "-c", lv.uri(), verb, name]);
        let by_hand = format!("{}; {}", virsh("destroy"), virsh("undefine"));
        rollback.push_with_manual(format!("domain {name}"), by_hand, async move {
            lv2.destroy(&n2).await.map_err(|e| error_chain(&e))?;
            lv2.undefine(&n2).await.map_err(|e| error_chain(&e))
        });
        if cfg.autostart {
            lv.set_autostart(name, true).await.or_diag("Setting autostart")?;
        }
        if !cfg.running {
            return Ok(());
        }
        lv.start(name).await.or_diag("Starting the domain")?;
        log::debug(&format!("{name}: define_start_s={:.3}", t0.elapsed().as_secs_f64()));
        wait_ready(lv, cfg, Some(&mac), t0, timeout.saturating_sub(t.elapsed()), ctx).await
    }

    /// Warn (or fail with `strict_capacity`) when the VMs planned so far need more memory than
    /// the host has free. `extra_mb` is what this VM adds.
    async fn check_capacity(&self, name: &str, extra_mb: i64, strict: bool) -> Result<Diagnostics, Diagnostics> {
        let mut diags = Diagnostics::new();
        let total_mb = {
            let mut planned = self.planned_memory.lock().map_err(|_| lock_poisoned())?;
            planned.insert(name.to_string(), extra_mb.max(0));
            planned.values().sum::<i64>()
        };
        let lv = self.libvirt().await?;
        let host = lv.host_info().await.or_diag("Reading host capacity")?;
        let free_mb = (host.free_memory_bytes / (1024 * 1024)) as i64;
        if total_mb > free_mb {
            let summary = "Not enough free memory for the planned VMs";
            let detail = format!(
                "The VMs planned so far need {total_mb} MiB; the libvirt host has {free_mb} MiB free \
                 ({} MiB total, {} CPUs). Lower `memory_mb` or plan fewer VMs.",
                host.total_memory_kib / 1024,
                host.cpus
            );
            let path = AttrPath::root("memory_mb");
            if strict {
                return Err(Diagnostic::attr_error(path, summary, detail).into());
            }
            diags.push(Diagnostic::attr_warning(path, summary, detail));
        }
        Ok(diags)
    }
}

fn lock_poisoned() -> Diagnostic {
    Diagnostic::error("Internal error", "the capacity tally lock was poisoned by an earlier panic")
}

/// Wait for the guest's address, then (with `wait_for = "ssh"`) for sshd's banner.
async fn wait_ready(
    lv: &Libvirt,
    cfg: &VmConfig,
    mac: Option<&str>,
    t0: Instant,
    timeout: Duration,
    ctx: &OpContext,
) -> Result<(), Diagnostics> {
    if cfg.wait_for == WaitFor::None {
        return Ok(());
    }
    let deadline = t0 + timeout;
    let name = cfg.name.clone();
    let mut tick = 0u32;
    let ip = wait_until(
        &format!("an IP address for {name}"),
        deadline.saturating_duration_since(Instant::now()),
        POLL,
        &ctx.cancel,
        || {
            tick += 1;
            // The agent is asked once a second: it answers only when the guest runs one.
            let agent_too = tick % 5 == 0;
            let (lv, name) = (lv.clone(), name.clone());
            let mac = mac.map(str::to_string);
            async move { find_ip(&lv, &name, mac.as_deref(), agent_too).await }
        },
    )
    .await
    .or_diag(format!("Waiting for {} to get an address", cfg.name))?;
    log::debug(&format!("{}: boot_to_ip_s={:.3} ip={ip}", cfg.name, t0.elapsed().as_secs_f64()));
    if cfg.wait_for == WaitFor::Ip {
        return Ok(());
    }
    wait_until(
        &format!("SSH on {ip}:22"),
        deadline.saturating_duration_since(Instant::now()),
        POLL,
        &ctx.cancel,
        || ssh_banner(ip),
    )
    .await
    .or_diag(format!("Waiting for SSH on {} ({ip})", cfg.name))?;
    log::debug(&format!("{}: boot_to_ssh_s={:.3}", cfg.name, t0.elapsed().as_secs_f64()));
    Ok(())
}

/// The guest's IPv4 address on the interface with `mac`, from the DHCP leases (and the guest
/// agent when `agent_too`).
async fn find_ip(lv: &Libvirt, name: &str, mac: Option<&str>, agent_too: bool) -> Result<Option<Ipv4Addr>, String> {
    let mut sources = vec![AddressSource::Lease];
    if agent_too {
        sources.push(AddressSource::Agent);
    }
    let mut last_err = None;
    for source in sources {
        match lv.addresses(name, source).await {
            Ok(addrs) => {
                let hit = addrs.into_iter().find(|a| match (mac, &a.mac) {
                    (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
                    _ => true,
                });
                if let Some(a) = hit {
                    return Ok(Some(a.ip));
                }
            }
            // No agent in the guest is normal; lease errors are reported on timeout.
            Err(e) if source == AddressSource::Lease => last_err = Some(e.to_string()),
            Err(_) => {}
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// `Some(())` once something on port 22 sends an SSH identification line.
async fn ssh_banner(ip: Ipv4Addr) -> Result<Option<()>, String> {
    let addr = std::net::SocketAddr::from((ip, 22));
    let mut stream = match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connecting to {addr}: {e}")),
        Err(_) => return Err(format!("connecting to {addr}: timed out")),
    };
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), async {
        while !got.contains(&b'\n') && got.len() < 256 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    match read {
        Ok(Ok(())) if got.starts_with(b"SSH-") => Ok(Some(())),
        Ok(Ok(())) => Err(format!("{addr} answered without an SSH banner")),
        Ok(Err(e)) => Err(format!("reading the banner of {addr}: {e}")),
        Err(_) => Err(format!("no SSH banner from {addr} within 3 s")),
    }
}

/// ACPI shutdown, wait up to `grace` for the guest to power off, then destroy. The button is
/// pressed again every few seconds: a guest still booting has no handler yet and drops it.
async fn stop_gracefully(lv: &Libvirt, name: &str, grace: Duration, ctx: &OpContext) -> Result<(), Diagnostics> {
    const REPRESS: Duration = Duration::from_secs(5);
    let t = Instant::now();
    let mut pressed: Option<Instant> = None;
    let off = wait_until(&format!("{name} to power off"), grace, POLL, &ctx.cancel, || {
        let (lv, name) = (lv.clone(), name.to_string());
        let press = pressed.is_none_or(|p| p.elapsed() >= REPRESS);
        if press {
            pressed = Some(Instant::now());
        }
        async move {
            match lv.lookup(&name).await {
                Ok(Some(info)) if is_active(info.state) => {
                    if press {
                        lv.shutdown(&name).await.map_err(|e| e.to_string())?;
                    }
                    Ok(None)
                }
                Ok(_) => Ok(Some(())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    if off.is_err() {
        log::debug(&format!("{name}: no power-off after {grace:?}; destroying"));
    }
    lv.destroy(name).await.or_diag("Destroying the domain")?;
    log::debug(&format!("{name}: stop_s={:.3} graceful={}", t.elapsed().as_secs_f64(), off.is_ok()));
    Ok(())
}

fn shutdown_grace(delete_timeout: Duration) -> Duration {
    delete_timeout.min(MAX_SHUTDOWN_GRACE)
}

fn is_active(state: VmState) -> bool {
    matches!(state, VmState::Running | VmState::Paused | VmState::ShuttingDown)
}

/// Fill the computed attributes (and those that can drift out of band) from libvirt.
async fn refresh_state(state: &mut LabVmState, info: &VmInfo, lv: &Libvirt, just_applied: bool) {
    let s = &info.summary;
    state.id = Attr::Known(s.uuid.clone());
    state.name = Attr::Known(s.name.clone());
    state.memory_mb = Attr::Known((s.memory_kib / 1024) as i64);
    state.vcpus = Attr::Known(i64::from(s.vcpus));
    state.running = Attr::Known(is_active(info.state));
    state.autostart = Attr::Known(info.autostart);
    state.state = Attr::Known(info.state.as_str().to_string());
    state.mac = s.mac.clone().into();
    if let Some(disk) = &s.disk {
        state.overlay_path = Attr::Known(disk.to_string_lossy().into_owned());
    }
    let uri = lv.uri();
    let mut console = format!("virsh -c '{uri}' console {}", s.name);
    if let Some((kind, Some(port))) = &s.graphics {
        console.push_str(&format!(" ; {kind} on 127.0.0.1:{port}"));
    }
    state.console = Attr::Known(console);
    let prior_ip = state.ip.known().cloned();
    state.ip = if is_active(info.state) {
        match find_ip(lv, &s.name, s.mac.as_deref(), false).await {
            Ok(Some(ip)) => Attr::Known(ip.to_string()),
            // A lease not (yet) visible: keep what we knew rather than flapping to null.
            _ if !just_applied => prior_ip.map_or(Attr::Null, Attr::Known),
            _ => Attr::Null,
        }
    } else {
        Attr::Null
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitFor {
    Ssh,
    Ip,
    None,
}

/// The planned configuration with defaults applied and paths derived: what create and update use.
#[derive(Debug, Clone, PartialEq)]
struct VmConfig {
    name: String,
    base_image: PathBuf,
    overlay_path: PathBuf,
    seed_path: PathBuf,
    memory_mb: i64,
    vcpus: i64,
    network: String,
    domain_type: DomainType,
    disk_size_bytes: Option<u64>,
    keys: Vec<String>,
    user: String,
    hostname: String,
    cloud_init: Option<String>,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    cmdline: Option<String>,
    running: bool,
    autostart: bool,
    isolated: bool,
    graphics: bool,
    wait_for: WaitFor,
    create_timeout: Duration,
    delete_timeout: Duration,
}

impl VmConfig {
    fn from_state(s: &LabVmState) -> Result<Self, Diagnostics> {
        let missing = |attr: &str| {
            Diagnostic::attr_error(
                AttrPath::root(attr),
                "Value not known",
                format!("`{attr}` must be known at apply time"),
            )
        };
        let name = s.name.known().cloned().ok_or_else(|| missing("name"))?;
        let overlay_dir = s.overlay_dir.known().cloned().unwrap_or_else(|| DEFAULT_OVERLAY_DIR.into());
        let (create_timeout, delete_timeout) = parse_timeouts(s)?;
        Ok(VmConfig {
            base_image: PathBuf::from(s.base_image.known().ok_or_else(|| missing("base_image"))?),
            overlay_path: overlay_path(&overlay_dir, &name),
            seed_path: seed_path(&overlay_dir, &name),
            memory_mb: s.memory_mb.known().copied().unwrap_or(DEFAULT_MEMORY_MB),
            vcpus: s.vcpus.known().copied().unwrap_or(DEFAULT_VCPUS),
            network: s.network.known().cloned().unwrap_or_else(|| "default".into()),
            domain_type: s.domain_type.known().and_then(|t| DomainType::parse(t)).unwrap_or_default(),
            disk_size_bytes: s.disk_size_gb.known().map(|g| (*g as u64) << 30),
            keys: s
                .ssh_authorized_keys
                .known()
                .map(|keys| keys.iter().filter_map(|k| k.known().map(|k| key_line(k).to_string())).collect())
                .unwrap_or_default(),
            user: s.user.known().cloned().unwrap_or_else(|| "student".into()),
            hostname: s.hostname.known().cloned().unwrap_or_else(|| name.clone()),
            cloud_init: s.cloud_init.known().cloned(),
            kernel: s.kernel.known().map(PathBuf::from),
            initrd: s.initrd.known().map(PathBuf::from),
            cmdline: s.cmdline.known().cloned(),
            running: s.running.known().copied().unwrap_or(true),
            autostart: s.autostart.known().copied().unwrap_or(false),
            isolated: s.isolated.known().copied().unwrap_or(true),
            graphics: s.graphics.known().copied().unwrap_or(false),
            wait_for: match s.wait_for.known().map(String::as_str) {
                Some("ip") => WaitFor::Ip,
                Some("none") => WaitFor::None,
                _ => WaitFor::Ssh,
            },
            create_timeout,
            delete_timeout,
            name,
        })
    }

    /// Whether the domain definition (or seed) must be rewritten to go from `old` to `self`.
    fn definition_differs(&self, old: &VmConfig) -> bool {
        (self.memory_mb, self.vcpus, &self.keys, &self.user, &self.hostname, &self.cloud_init)
            != (old.memory_mb, old.vcpus, &old.keys, &old.user, &old.hostname, &old.cloud_init)
            || (&self.kernel, &self.initrd, &self.cmdline, self.isolated, self.graphics)
                != (&old.kernel, &old.initrd, &old.cmdline, old.isolated, old.graphics)
    }

    /// The kernel command line the guest gets: the user's, plus the lab image conventions.
    fn effective_cmdline(&self) -> String {
        let mut words: Vec<String> = self.cmdline.iter().cloned().collect();
        words.push(format!("lab.hostname={}", self.hostname));
        if !self.keys.is_empty() {
            let keys = self.keys.join("\n") + "\n";
            words.push(format!("lab.authkey={}", base64::engine::general_purpose::STANDARD.encode(keys)));
        }
        words.join(" ")
    }

    fn seed(&self, user_data: &str) -> NoCloudSeed {
        // The instance id follows the seed's content, so cloud-init re-runs when it changes.
        let mut h = Sha256::new();
        for part in [user_data, &self.hostname, &self.user, &self.keys.join("\n")] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest: String = h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
        NoCloudSeed {
            instance_id: format!("{}-{digest}", self.name),
            hostname: self.hostname.clone(),
            user_data: user_data.to_string(),
            public_keys: self.keys.clone(),
        }
    }

    fn domain_spec(&self, uuid: Option<String>, mac: String, seed: Option<PathBuf>) -> DomainSpec {
        let mut spec = DomainSpec::new(&self.name, self.overlay_path.clone(), &self.network);
        spec.uuid = uuid;
        spec.domain_type = self.domain_type;
        spec.memory_mib = self.memory_mb as u64;
        spec.vcpus = self.vcpus as u32;
        spec.seed = seed;
        spec.boot = self.kernel.as_ref().map(|kernel| DirectBoot {
            kernel: kernel.clone(),
            initrd: self.initrd.clone(),
            cmdline: Some(self.effective_cmdline()),
        });
        spec.mac = Some(mac);
        spec.isolated = self.isolated;
        spec.graphics = self.graphics;
        spec.metadata = LabMetadata {
            base_image: Some(self.base_image.to_string_lossy().into_owned()),
            user: Some(self.user.clone()),
            hostname: Some(self.hostname.clone()),
            cmdline: self.cmdline.clone(),
        };
        spec
    }
}

/// An authorized_keys entry without the line break `file("key.pub")` ends with.
fn key_line(entry: &str) -> &str {
    entry.strip_suffix('\n').map(|k| k.strip_suffix('\r').unwrap_or(k)).unwrap_or(entry)
}

/// The keys a domain was given through `lab.authkey=` (for import).
fn keys_from_cmdline(cmdline: &str) -> Option<Vec<String>> {
    let b64 = cmdline.split_whitespace().find_map(|w| w.strip_prefix("lab.authkey="))?;
    let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()?;
    Some(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
}

fn overlay_path(dir: &str, name: &str) -> PathBuf {
    Path::new(dir).join(format!("{name}.qcow2"))
}

fn seed_path(dir: &str, name: &str) -> PathBuf {
    Path::new(dir).join(format!("{name}-seed.iso"))
}

/// A locally administered MAC in QEMU's `52:54:00` range; stored in state and the domain, so
/// it is stable for the VM's life (and so is its DHCP lease).
fn random_mac() -> String {
    let b: [u8; 3] = rand::rng().random();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// `qemu:///system`, `qemu+unix:///system?socket=...`: no host part, so paths are on this host.
fn uri_is_local(uri: &str) -> bool {
    uri.split_once("://").is_some_and(|(_, rest)| rest.starts_with('/'))
}

fn parse_timeouts(s: &LabVmState) -> Result<(Duration, Duration), Diagnostics> {
    Timeouts::resolve(s.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))
}

pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(format!("`{name}` must match [a-z0-9][a-z0-9-]{{0,62}}")) }
}

fn validate_hostname(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok { Ok(()) } else { Err(format!("`{name}` is not a host name: 1-63 letters, digits and '-'")) }
}

fn validate_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && user.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && user.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(format!("`{user}` must match [a-z_][a-z0-9_-]{{0,31}}")) }
}

fn validate_config(c: &LabVmState) -> Diagnostics {
    let mut d = Diagnostics::new();
    let mut check = |attr: &str, summary: &str, result: Result<(), String>| {
        if let Err(why) = result {
            d.push(Diagnostic::attr_error(AttrPath::root(attr), summary, why));
        }
    };
    if let Some(n) = c.name.known() {
        check("name", "Invalid VM name", validate_name(n));
    }
    for attr in ["base_image", "kernel", "initrd", "overlay_dir"] {
        let value = match attr {
            "base_image" => &c.base_image,
            "kernel" => &c.kernel,
            "initrd" => &c.initrd,
            _ => &c.overlay_dir,
        };
        if let Some(p) = value.known() {
            check(
                attr,
                "Path must be absolute",
                if Path::new(p).is_absolute() { Ok(()) } else { Err(format!("`{p}` is not an absolute path")) },
            );
        }
    }
    if let Some(m) = c.memory_mb.known() {
        check("memory_mb", "Too little memory", if *m >= 128 { Ok(()) } else { Err(format!("{m} MiB: at least 128")) });
    }
    if let Some(v) = c.vcpus.known() {
        check("vcpus", "Invalid vcpus", if (1..=256).contains(v) { Ok(()) } else { Err(format!("{v}: 1 to 256")) });
    }
    if let Some(g) = c.disk_size_gb.known() {
        check(
            "disk_size_gb",
            "Invalid disk size",
            if (1..=65536).contains(g) { Ok(()) } else { Err(format!("{g} GiB: 1 to 65536")) },
        );
    }
    if let Some(w) = c.wait_for.known() {
        check(
            "wait_for",
            "Invalid wait_for",
            match w.as_str() {
                "ssh" | "ip" | "none" => Ok(()),
                _ => Err(format!("`{w}`: use \"ssh\", \"ip\" or \"none\"")),
            },
        );
    }
    if let Some(t) = c.domain_type.known() {
        check(
            "domain_type",
            "Invalid domain_type",
            match DomainType::parse(t) {
                Some(_) => Ok(()),
                None => Err(format!("`{t}`: use \"kvm\" or \"qemu\" (TCG emulation, slow)")),
            },
        );
    }
    if let Some(h) = c.hostname.known() {
        check("hostname", "Invalid hostname", validate_hostname(h));
    }
    if let Some(u) = c.user.known() {
        check("user", "Invalid user", validate_user(u));
    }
    if let Some(n) = c.network.known() {
        let ok = !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        check(
            "network",
            "Invalid network name",
            if ok { Ok(()) } else { Err(format!("`{n}`: letters, digits, '-', '_', '.'")) },
        );
    }
    if c.kernel.is_null() {
        for attr in ["initrd", "cmdline"] {
            let set = if attr == "initrd" { !c.initrd.is_null() } else { !c.cmdline.is_null() };
            check(
                attr,
                "Needs a kernel",
                if set {
                    Err(format!("`{attr}` is only used with direct kernel boot: set `kernel` too"))
                } else {
                    Ok(())
                },
            );
        }
    }
    if let Some(keys) = c.ssh_authorized_keys.known() {
        for (i, k) in keys.iter().enumerate() {
            if k.known().map(|k| key_line(k)).is_some_and(|line| line.trim().is_empty() || line.contains('\n')) {
                d.push(Diagnostic::attr_error(
                    AttrPath::root("ssh_authorized_keys").index(i as i64),
                    "Invalid SSH key",
                    "each entry is one non-empty authorized_keys line (one trailing newline, as `file()` of a \
                     .pub file gives, is fine)",
                ));
            }
        }
    }
    if let Err(bad) = parse_timeouts(c) {
        d.extend(bad);
    }
    d
}

fn vm_block() -> Block {
    let s = |name: &str| Attribute::string(name);
    let computed = |name: &str, text: &str| Attribute::string(name).computed().description(text);
    Block {
        description: "A student's VM: a qcow2 thin clone of a read-only base image, booted under libvirt and \
                      reachable by SSH. Create waits for the guest's address and (by default) its SSH banner; \
                      any failure undoes every step taken."
            .into(),
        attributes: vec![
            computed("id", "Domain UUID.").keep_prior(),
            s("name").required().requires_replace().description(
                "Domain name, also the overlay's file name: `[a-z0-9][a-z0-9-]{0,62}`. Import uses it as the id.",
            ),
            s("base_image").required().requires_replace().description(
                "Absolute path of the base image (qcow2 or raw) on the libvirt host. Never written: each VM \
                 gets its own overlay. Checked to exist at plan time when libvirt is local.",
            ),
            s("overlay_dir")
                .default(Value::String(DEFAULT_OVERLAY_DIR.into()))
                .requires_replace()
                .description("Directory for the VM's overlay (`<name>.qcow2`) and seed (`<name>-seed.iso`)."),
            Attribute::number("memory_mb")
                .default(Value::Number(crate::protocol::Number::Int(DEFAULT_MEMORY_MB)))
                .description(
                    "Memory in MiB (at least 128). Changed in place with a clean shutdown and restart. Planned \
                     totals are checked against the host's free memory.",
                ),
            Attribute::number("vcpus")
                .default(Value::Number(crate::protocol::Number::Int(DEFAULT_VCPUS)))
                .description("Virtual CPUs. Changed in place with a clean shutdown and restart."),
            s("network")
                .default(Value::String("default".into()))
                .requires_replace()
                .description("libvirt network the VM's interface joins."),
            s("domain_type")
                .default(Value::String("kvm".into()))
                .requires_replace()
                .description("`kvm` (hardware virtualisation) or `qemu` (TCG emulation: slow, but needs no KVM)."),
            Attribute::number("disk_size_gb")
                .optional()
                .requires_replace()
                .description("Grow the overlay's virtual disk to this size (GiB); unset keeps the base image's size."),
            Attribute::of_type("ssh_authorized_keys", Type::List(Box::new(Type::String))).optional().description(
                "authorized_keys lines for `user`: passed as `lab.authkey=` on the kernel command line (direct \
                 boot) or as NoCloud `public-keys` (with `cloud_init`). Changed in place (restart).",
            ),
            s("user")
                .default(Value::String("student".into()))
                .description("The guest user students log in as (recorded in the domain metadata)."),
            s("hostname")
                .optional()
                .computed()
                .description("Guest host name; defaults to `name`. Changed in place (restart)."),
            s("cloud_init").optional().description(
                "cloud-init user data (e.g. `#cloud-config ...`). When set, a NoCloud seed ISO labelled `cidata` \
                 is attached as a cdrom. Changed in place (new seed, restart).",
            ),
            s("kernel").optional().description("Direct kernel boot: absolute path of the kernel on the libvirt host."),
            s("initrd").optional().description("Direct kernel boot: absolute path of the initrd."),
            s("cmdline").optional().description(
                "Direct kernel boot: kernel command line. The provider appends `lab.hostname=<hostname>` and \
                 `lab.authkey=<base64 keys>`.",
            ),
            Attribute::bool("running")
                .default(Value::Bool(true))
                .description("Whether the VM runs. `false` shuts it down cleanly (destroyed after a grace period)."),
            Attribute::bool("autostart").default(Value::Bool(false)).description("Start with the libvirt host."),
            Attribute::bool("isolated").default(Value::Bool(true)).description(
                "`<port isolated='yes'/>`: guests on one bridge cannot talk to each other, only to the host and \
                 beyond.",
            ),
            Attribute::bool("graphics")
                .default(Value::Bool(false))
                .description("Add a VNC display listening on 127.0.0.1 of the libvirt host."),
            s("wait_for").default(Value::String("ssh".into())).description(
                "What create waits for: `ssh` (an SSH banner on port 22 of the VM's address), `ip` (a DHCP \
                 lease) or `none`.",
            ),
            computed("ip", "IPv4 address from the network's DHCP lease (or the guest agent); null when stopped."),
            computed("mac", "MAC address, chosen at create and stable for the VM's life.").keep_prior(),
            computed("overlay_path", "Path of the VM's qcow2 overlay.").keep_prior(),
            computed("state", "libvirt state: `running`, `shutoff`, `paused`, `shutdown`, `crashed`."),
            computed("console", "How to reach the serial console (and VNC display when `graphics`)."),
        ],
        blocks: vec![Timeouts::block(
            "Create, including the wait for address and SSH (default `10m`). On timeout every step is undone.",
            "Delete (default `5m`); the guest gets at most 60 s of it to power off before it is destroyed.",
        )],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::domain_xml::DomainSummary;

    fn config() -> LabVmState {
        LabVmState {
            name: Attr::Known("vm-1".into()),
            base_image: Attr::Known("/img/base.qcow2".into()),
            memory_mb: Attr::Known(512),
            wait_for: Attr::Known("ssh".into()),
            domain_type: Attr::Known("qemu".into()),
            ..Default::default()
        }
    }

    fn paths(d: &Diagnostics) -> Vec<String> {
        d.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect()
    }

    #[test]
    fn valid_config_passes() {
        assert!(validate_config(&config()).is_empty(), "{:?}", validate_config(&config()));
    }

    #[test]
    fn each_bad_value_names_its_attribute() {
        let mut c = config();
        c.name = Attr::Known("Bad_Name".into());
        c.base_image = Attr::Known("images/base.qcow2".into());
        c.memory_mb = Attr::Known(64);
        c.wait_for = Attr::Known("ping".into());
        c.domain_type = Attr::Known("xen".into());
        c.cmdline = Attr::Known("quiet".into());
        c.ssh_authorized_keys = Attr::Known(vec![
            Attr::Known("ssh-ed25519 AAA\n".into()),
            Attr::Known("a\nb".into()),
            Attr::Unknown,
            Attr::Known("\n".into()),
            Attr::Known("ssh-ed25519 AAA\r\n".into()),
        ]);
        c.timeouts = Some(Timeouts { create: Attr::Known("soon".into()), delete: Attr::Null });
        let d = validate_config(&c);
        assert_eq!(
            paths(&d),
            vec![
                "name",
                "base_image",
                "memory_mb",
                "wait_for",
                "domain_type",
                "cmdline",
                "ssh_authorized_keys[1]",
                "ssh_authorized_keys[3]",
                "timeouts.create"
            ]
        );
    }

    #[test]
    fn unknown_values_are_not_validated() {
        let mut c = config();
        c.name = Attr::Unknown;
        c.memory_mb = Attr::Unknown;
        assert!(validate_config(&c).is_empty());
    }

    #[test]
    fn names() {
        for ok in ["a", "vm-1", "0abc", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", "a b", &"a".repeat(64), "x<y"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cmdline_gets_hostname_and_keys() {
        let mut c = config();
        c.kernel = Attr::Known("/img/vmlinuz".into());
        c.cmdline = Attr::Known("root=/dev/vda quiet".into());
        // As `file("k.pub")` gives it: the trailing newline is not doubled.
        c.ssh_authorized_keys = Attr::Known(vec![Attr::Known("ssh-ed25519 AAAA k\n".into())]);
        let cfg = VmConfig::from_state(&c).unwrap();
        let line = cfg.effective_cmdline();
        let b64 = base64::engine::general_purpose::STANDARD.encode("ssh-ed25519 AAAA k\n");
        assert_eq!(line, format!("root=/dev/vda quiet lab.hostname=vm-1 lab.authkey={b64}"));
        let spec = cfg.domain_spec(None, "52:54:00:00:00:01".into(), None);
        let back = DomainSummary::parse(&spec.to_xml().unwrap()).unwrap();
        assert_eq!(back.cmdline.as_deref(), Some(line.as_str()));
        assert_eq!(keys_from_cmdline(&line), Some(vec!["ssh-ed25519 AAAA k".to_string()]));
        assert_eq!(keys_from_cmdline("quiet"), None);
        assert_eq!(back.metadata.cmdline.as_deref(), Some("root=/dev/vda quiet"));
        assert_eq!(back.memory_kib, 512 * 1024);
        assert_eq!(back.domain_type, "qemu");
    }

    #[test]
    fn definition_changes_are_detected() {
        let a = VmConfig::from_state(&config()).unwrap();
        let mut c = config();
        c.running = Attr::Known(false);
        c.autostart = Attr::Known(true);
        assert!(!VmConfig::from_state(&c).unwrap().definition_differs(&a), "running/autostart need no redefine");
        c.memory_mb = Attr::Known(1024);
        assert!(VmConfig::from_state(&c).unwrap().definition_differs(&a));
    }

    #[test]
    fn seed_instance_id_follows_content() {
        let cfg = VmConfig::from_state(&config()).unwrap();
        let a = cfg.seed("#cloud-config\n");
        assert_eq!(a, cfg.seed("#cloud-config\n"));
        assert_ne!(a.instance_id, cfg.seed("#cloud-config\nx: 1\n").instance_id);
    }

    #[test]
    fn misc_helpers() {
        assert!(uri_is_local("qemu:///system"));
        assert!(uri_is_local("qemu+unix:///system?socket=/run/x/libvirt-sock"));
        assert!(!uri_is_local("qemu+ssh://root@host/system"));
        let mac = random_mac();
        assert!(mac.starts_with("52:54:00:") && mac.len() == 17, "{mac}");
    }
}
