//! `lab_vm`: a student's VM. A qcow2 thin clone of a read-only base image, booted under libvirt,
//! reachable by SSH. Schema first, then validate, plan, create, read, update, delete, import.
//! `validate.rs` checks a configuration, `config.rs` turns a state into what libvirt and the guest
//! get (domain spec, kernel command line, seed), `guest.rs` waits for and stops the guest.
//!
//! Per-VM settings reach the guest in one of two ways: with direct kernel boot, as
//! `lab.hostname=`/`lab.authkey=` words appended to the kernel command line (the lab images
//! apply them at boot); with `cloud_init`, through a NoCloud seed, a vfat disk (`meta-data` carries the
//! hostname and the keys as `public-keys`).

mod config;
mod guest;
mod media;
mod orphan;
mod storage;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::backends::libvirt::{Libvirt, VmInfo, Volume};
use crate::lifecycle::{Rollback, Timeouts, exists_unowned, host_and_id, import_id, shell_command};
use crate::protocol::diag::error_chain;
use crate::protocol::log;
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, DiagResultExt, Diagnostic, Diagnostics, OpContext, PlanRequest, Planned,
    Resource, Schema, Type,
};
use crate::settings::{HostName, ProviderHandle};

use config::{VmConfig, keys_from_cmdline, parse_timeouts, random_mac};
use guest::{find_ip, is_active, shutdown_grace, stop_gracefully, wait_ready};
use orphan::FoundDomain;
use validate::validate_config;

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
/// `state` of a VM whose domain is gone while its overlay or seed remains: the plan replaces it.
const MISSING: &str = "missing";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabVmState {
    pub id: Attr<String>,
    pub name: Attr<String>,
    pub host: Attr<String>,
    pub base_image: Attr<String>,
    pub overlay_dir: Attr<String>,
    pub storage_pool: Attr<String>,
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
    pub cdrom: Attr<String>,
    pub wait_for: Attr<String>,
    pub ip: Attr<String>,
    pub mac: Attr<String>,
    pub overlay_path: Attr<String>,
    pub state: Attr<String>,
    pub console: Attr<String>,
    pub timeouts: Option<Timeouts>,
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
                "Domain name, also the overlay's file name: 1-63 characters `[a-z0-9-]`, not starting or ending \
                 with `-`. Import uses it as the id (`<host>/<name>` on a named host).",
            ),
            s("host").optional().requires_replace().description(
                "The provider's `host \"<name>\"` block the VM runs on; unset: the provider's own `libvirt_uri`. \
                 A name without a block is a plan-time error. Changing it re-creates the VM on the new host.",
            ),
            s("base_image").required().requires_replace().description(
                "Absolute path of the base image (qcow2 or raw) on the libvirt host, e.g. a `lab_image`'s \
                 `path`. Never written: each VM gets its own overlay, a qcow2 volume backed by it. Checked \
                 through libvirt at plan time: in a storage pool, or in its directory.",
            ),
            s("overlay_dir").default_str(DEFAULT_OVERLAY_DIR).requires_replace().description(
                "Directory on the libvirt host for the VM's overlay (`<name>.qcow2`) and seed \
                 (`<name>-seed.img`) volumes, used when no `storage_pool` applies: the VM uses the dir pool \
                 over it (a transient one is made when the host has none). Set here, it wins over the \
                 provider's `storage_pool`.",
            ),
            s("storage_pool").optional().computed().requires_replace().description(
                "libvirt storage pool (of files: dir, fs, netfs) for the VM's overlay and seed volumes. \
                 Defaults to the provider's `storage_pool` for a new VM that sets no `overlay_dir`; null: \
                 the dir pool over `overlay_dir`. A VM keeps the pool it was created in.",
            ),
            Attribute::number("memory_mb").default_int(DEFAULT_MEMORY_MB).unit("MiB").description(
                "Memory in MiB (at least 128). Changed in place with a clean shutdown and restart. Planned \
                     totals are checked against the host's free memory.",
            ),
            Attribute::number("vcpus")
                .default_int(DEFAULT_VCPUS)
                .unit("virtual CPUs")
                .description("Virtual CPUs. Changed in place with a clean shutdown and restart."),
            s("network")
                .default_str("default")
                .requires_replace()
                .description("libvirt network the VM's interface joins, e.g. `lab_network.<name>.name`."),
            s("domain_type")
                .default_str("kvm")
                .requires_replace()
                .description("`kvm` (hardware virtualisation) or `qemu` (TCG emulation: slow, but needs no KVM)."),
            Attribute::number("disk_size_gb")
                .optional()
                .unit("GiB")
                .requires_replace()
                .description("Grow the overlay's virtual disk to this size (GiB); unset keeps the base image's size."),
            Attribute::of_type("ssh_authorized_keys", Type::List(Box::new(Type::String))).optional().description(
                "authorized_keys lines for `user`: passed as `lab.authkey=` on the kernel command line (direct \
                 boot) or as NoCloud `public-keys` (with `cloud_init`). Changed in place (restart).",
            ),
            s("user")
                .default_str("student")
                .description("The guest user students log in as (recorded in the domain metadata)."),
            s("hostname")
                .optional()
                .computed()
                .description("Guest host name; defaults to `name`. Changed in place (restart)."),
            s("cloud_init").optional().description(
                "cloud-init user data (e.g. `#cloud-config ...`). When set, a NoCloud seed (a vfat image labelled \
                 `CIDATA`) is attached as a read-only virtio disk. Changed in place (new seed, restart).",
            ),
            s("kernel").optional().description("Direct kernel boot: absolute path of the kernel on the libvirt host."),
            s("initrd").optional().description("Direct kernel boot: absolute path of the initrd."),
            s("cmdline").optional().description(
                "Direct kernel boot: kernel command line. The provider appends `lab.hostname=<hostname>` and \
                 `lab.authkey=<base64 keys>`.",
            ),
            Attribute::bool("running")
                .default_bool(true)
                .description("Whether the VM runs. `false` shuts it down cleanly (destroyed after a grace period)."),
            Attribute::bool("autostart").default_bool(false).description("Start with the libvirt host."),
            Attribute::bool("isolated").default_bool(true).description(
                "`<port isolated='yes'/>`: guests on one bridge cannot talk to each other, only to the host and \
                 beyond.",
            ),
            Attribute::bool("graphics")
                .default_bool(false)
                .description("Add a VNC display listening on 127.0.0.1 of the libvirt host."),
            s("cdrom").optional().description(
                "Absolute path of an ISO image on the libvirt host, in the VM's CD-ROM drive (read-only; never \
                 written). Inserted, changed and ejected (unset) in place: a running guest sees a media change, \
                 with no restart. Checked to be a readable file at plan time when libvirt is local. Every VM has \
                 the drive, empty when unset.",
            ),
            s("wait_for").default_str("ssh").description(
                "What create waits for: `ssh` (an SSH banner on port 22 of the VM's address), `ip` (a DHCP \
                 lease) or `none`.",
            ),
            computed("ip", "IPv4 address from the network's DHCP lease (or the guest agent); null when stopped."),
            computed("mac", "MAC address, chosen at create and stable for the VM's life.").keep_prior(),
            computed("overlay_path", "Path of the VM's qcow2 overlay.").keep_prior(),
            computed(
                "state",
                "libvirt state: `running`, `shutoff`, `paused`, `shutdown`, `crashed`; `missing` when the domain \
                 is gone but its overlay or seed remains (the plan replaces the VM, destroy removes the files).",
            ),
            computed("console", "How to reach the serial console (and VNC display when `graphics`)."),
        ],
        blocks: vec![Timeouts::block(
            "Create, including the wait for address and SSH (default `10m`). On timeout every step is undone.",
            "Delete (default `5m`); the guest gets at most 60 s of it to power off before it is destroyed.",
        )],
        ..Default::default()
    }
}

pub struct VmResource {
    provider: ProviderHandle,
    /// Memory (MiB) of the VMs planned by this provider process, by host and name: the capacity
    /// check compares a host's sum with that host's free memory.
    planned_memory: Mutex<BTreeMap<(HostName, String), i64>>,
    /// Base images found at plan time, by host and path: one libvirt lookup per image, host and
    /// plan, not per VM.
    bases_seen: Mutex<BTreeMap<(HostName, PathBuf), Volume>>,
}

impl VmResource {
    pub fn new(provider: ProviderHandle) -> Self {
        VmResource { provider, planned_memory: Default::default(), bases_seen: Default::default() }
    }

    /// The libvirt connection of the VM's host (made on first use, reconnected when libvirtd drops it).
    async fn libvirt(&self, state: &LabVmState) -> Result<Libvirt, Diagnostics> {
        self.provider.libvirt_on(host_of(state), TYPE_NAME).await
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
        settings.check_host(&planned.host)?;
        let uri = settings.require_libvirt_uri_on(host_of(&planned), TYPE_NAME)?.to_string();
        // Where the VM's volumes go: an existing VM stays where it is; a new one takes its host's
        // pool (the provider's own without `host`) unless it names its own directory.
        if req.config.storage_pool.is_null() {
            planned.storage_pool = match &req.prior {
                Some(prior) => prior.storage_pool.clone(),
                None if !req.config.overlay_dir.is_null() => Attr::Null,
                None => match host_of(&planned) {
                    Some(host) => settings.named_host(host)?.storage_pool.clone().into(),
                    None => settings.storage_pool.clone().into(),
                },
            };
        }
        if let Some(base) = planned.base_image.known() {
            let size = planned.disk_size_gb.known().map(|g| (*g as u64) << 30);
            self.check_base(&planned, Path::new(base), size).await?;
        }
        if config::uri_is_local(&uri) {
            media::check_on_host(&planned)?;
        } else if req.prior.is_none() && planned.wait_for.known().map(String::as_str) == Some("ssh") {
            diags.push(Diagnostic::attr_warning(
                AttrPath::root("wait_for"),
                "The SSH wait connects from this machine",
                format!(
                    "This VM runs on the remote libvirt host `{uri}`, and `wait_for = \"ssh\"` (the default) \
                     connects to the VM's address from the machine Terraform runs on. If that address is private \
                     to the host, the create waits until its timeout. Set `wait_for = \"ip\"`: a `lab_terminal` \
                     checks SSH from the host itself."
                ),
            ));
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
            let host = planned.host.known().cloned();
            diags.extend(self.check_capacity(host, name, memory - prior_memory, settings.strict_capacity).await?);
        }
        let mut out = Planned::new(planned);
        if req.prior.as_ref().is_some_and(|p| p.state.known().is_some_and(|s| s == MISSING)) {
            out.requires_replace.push(AttrPath::root("state"));
        }
        out.diagnostics = diags;
        Ok(out)
    }

    async fn create(&self, planned: LabVmState, ctx: &OpContext) -> Result<LabVmState, Diagnostics> {
        let lv = self.libvirt(&planned).await?;
        let mut cfg = VmConfig::from_state(&planned)?;
        let timeout = cfg.create_timeout;
        let started = Instant::now();
        let place = placement_of(&lv, &cfg, true).await?;
        cfg.placed(&place.dir);
        let mut rollback = Rollback::new();
        // A domain under the planned name that Terraform never recorded (lifecycle.rs has the rule).
        let created = match lv.lookup(&cfg.name).await.or_diag("Looking up the domain")? {
            None => self.create_steps(&lv, &cfg, &place, &mut rollback, timeout, ctx).await,
            Some(found) => match orphan::judge_domain(&lv, &cfg, &found.summary).await {
                FoundDomain::Unowned => {
                    let what = format!("A libvirt domain named `{}`", cfg.name);
                    let id = import_id(host_of(&planned), &cfg.name);
                    return Err(exists_unowned(AttrPath::root("name"), TYPE_NAME, &what, &id).into());
                }
                FoundDomain::Matches => {
                    log::info(&format!("{}: adopting the domain of an apply that never recorded it", cfg.name));
                    self.adopt_steps(&lv, &cfg, &place, &found, &mut rollback, ctx).await
                }
                FoundDomain::Differs(fields) => {
                    log::info(&format!(
                        "{}: removing a domain of ours that differs from the plan ({}), then creating anew",
                        cfg.name,
                        fields.join(", ")
                    ));
                    orphan::remove_domain(&lv, &found).await?;
                    self.create_steps(&lv, &cfg, &place, &mut rollback, timeout, ctx).await
                }
            },
        };
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
        let lv = self.libvirt(&current).await?;
        let found = match current.id.known() {
            Some(uuid) => lv.lookup_uuid(uuid).await,
            None => match current.name.known() {
                Some(name) => lv.lookup(name).await,
                None => return Ok(None),
            },
        }
        .or_diag("Reading the domain")?;
        let Some(info) = found else {
            return half_deleted(&lv, current).await;
        };
        let mut state = current;
        refresh_state(&mut state, &info, &lv, false).await;
        Ok(Some(state))
    }

    async fn update(&self, prior: LabVmState, planned: LabVmState, ctx: &OpContext) -> Result<LabVmState, Diagnostics> {
        let lv = self.libvirt(&planned).await?;
        let mut cfg = VmConfig::from_state(&planned)?;
        let name = cfg.name.clone();
        let info = lv.lookup(&name).await.or_diag("Reading the domain")?.ok_or_else(|| {
            Diagnostic::error(
                "Domain vanished",
                format!("`{name}` no longer exists; run `terraform apply` again to re-create it"),
            )
        })?;
        let mut was_active = is_active(info.state);
        let old = VmConfig::from_state(&prior)?;
        let redefine = cfg.definition_differs(&old) || media::needs_drive(&cfg, &info.summary);
        if redefine {
            let uuid = prior.id.known().cloned().unwrap_or(info.summary.uuid.clone());
            let mac = prior.mac.known().cloned().or(info.summary.mac.clone()).unwrap_or_else(random_mac);
            let place = placement_of(&lv, &cfg, true).await?;
            cfg.placed(&place.dir);
            // The domain keeps the overlay it has (an imported VM's may be anywhere).
            if let Some(disk) = &info.summary.disk {
                cfg.overlay_path = disk.clone();
            }
            let seed = match &cfg.cloud_init {
                Some(user_data) => {
                    let bytes = cfg.seed(user_data).image().or_diag("Building the NoCloud seed")?;
                    let vol = storage::write_seed(&lv, &cfg, &place, &bytes, None).await?;
                    Some(vol.summary.path)
                }
                None => None,
            };
            let xml = cfg.domain_spec(Some(uuid), mac, seed.clone()).to_xml().or_diag("Building domain XML")?;
            lv.define(xml).await.or_diag("Redefining the domain")?;
            if seed.is_none() {
                let seed = storage::seed_volume(&name);
                lv.delete_volume(&place.pool, &seed).await.or_diag("Removing the old seed")?;
            }
            // A running guest only picks the new definition up after a cold restart.
            if was_active {
                stop_gracefully(&lv, &name, shutdown_grace(cfg.delete_timeout), ctx).await?;
                was_active = false;
            }
        } else {
            media::apply(&lv, &cfg, &info.summary).await?;
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
        let lv = self.libvirt(&current).await?;
        let Some(name) = current.name.known().cloned() else {
            return Ok(());
        };
        let (_, delete_timeout) = parse_timeouts(&current)?;
        let info = lv.lookup(&name).await.or_diag("Looking up the domain")?;
        // Files a domain that is not ours uses.
        let mut in_use = Vec::new();
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
                in_use.extend(info.summary.disk.iter().chain(&info.summary.seed).cloned());
            }
        }
        for vol in vm_volumes(&lv, &current).await? {
            if !in_use.contains(&vol.summary.path) {
                lv.delete_volume(&vol.pool, &vol.summary.name).await.or_diag("Removing the VM's disk volumes")?;
            }
        }
        Ok(())
    }

    async fn import(&self, id: &str, _ctx: &OpContext) -> Result<Option<LabVmState>, Diagnostics> {
        let (host, id) = host_and_id(id);
        if let Err(why) = crate::validate::name(id) {
            return Err(Diagnostic::error(
                "Invalid import id",
                format!("Import `lab_vm` by domain name, or `<host>/<name>` on a named host: {why}"),
            )
            .into());
        }
        let lv = self.provider.libvirt_on(host, TYPE_NAME).await?;
        let Some(info) = lv.lookup(id).await.or_diag("Looking up the domain")? else {
            return Ok(None);
        };
        let s = &info.summary;
        let disk = s.disk.clone().ok_or_else(|| {
            Diagnostic::error("Cannot import", format!("Domain `{id}` has no file-backed disk: not a lab_vm"))
        })?;
        let overlay = storage::volume_at(&lv, &disk).await.or_diag("Looking up the domain's overlay")?;
        let base_image = match &s.metadata.base_image {
            Some(b) => Some(b.clone()),
            None => overlay.as_ref().and_then(|v| v.summary.backing_path.as_ref()).map(|p| p.to_string_lossy().into()),
        };
        // A pool the host keeps is recorded; the transient pools over a directory are not.
        let storage_pool = match &overlay {
            Some(vol) => lv.pool(&vol.pool).await.or_diag("Looking up the overlay's pool")?.filter(|p| p.persistent),
            None => None,
        };
        let mut state = LabVmState {
            id: Attr::Known(s.uuid.clone()),
            name: Attr::Known(s.name.clone()),
            host: host.map(str::to_string).into(),
            base_image: base_image.into(),
            overlay_dir: disk.parent().map(|p| p.to_string_lossy().into_owned()).into(),
            storage_pool: storage_pool.map(|p| p.summary.name).into(),
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
        place: &storage::Placement,
        rollback: &mut Rollback,
        timeout: Duration,
        ctx: &OpContext,
    ) -> Result<(), Diagnostics> {
        let name = &cfg.name;
        // No domain has this name (checked by the caller).
        orphan::clear_stale_volumes(lv, cfg, place).await?;
        let t = Instant::now();
        let overlay = storage::create_overlay(lv, cfg, place, rollback).await?;
        log::debug(&format!("{name}: overlay_create_s={:.3}", t.elapsed().as_secs_f64()));

        let seed = match &cfg.cloud_init {
            Some(user_data) => {
                let bytes = cfg.seed(user_data).image().or_diag("Building the NoCloud seed")?;
                Some(storage::write_seed(lv, cfg, place, &bytes, Some(rollback)).await?.summary.path)
            }
            None => None,
        };

        let t0 = Instant::now();
        let mac = random_mac();
        let mut cfg = cfg.clone();
        cfg.overlay_path = overlay.summary.path;
        let xml = cfg.domain_spec(None, mac.clone(), seed).to_xml().or_diag("Building domain XML")?;
        lv.define(xml).await.or_diag("Defining the domain")?;
        undo_domain(rollback, lv, name);
        if cfg.autostart {
            lv.set_autostart(name, true).await.or_diag("Setting autostart")?;
        }
        if !cfg.running {
            return Ok(());
        }
        lv.start(name).await.or_diag("Starting the domain")?;
        log::debug(&format!("{name}: define_start_s={:.3}", t0.elapsed().as_secs_f64()));
        wait_ready(lv, &cfg, Some(&mac), t0, timeout.saturating_sub(t.elapsed()), ctx).await
    }

    /// Take over a domain of ours that matches the plan (a killed apply made it and never recorded
    /// it) and finish what create would have: autostart, power state, readiness. It is undone on
    /// failure like a fresh create, since Terraform still does not track it.
    async fn adopt_steps(
        &self,
        lv: &Libvirt,
        cfg: &VmConfig,
        place: &storage::Placement,
        found: &VmInfo,
        rollback: &mut Rollback,
        ctx: &OpContext,
    ) -> Result<(), Diagnostics> {
        let name = &cfg.name;
        storage::undo_volume(rollback, lv, "overlay", &place.pool, &storage::overlay_volume(name));
        if cfg.cloud_init.is_some() {
            storage::undo_volume(rollback, lv, "seed", &place.pool, &storage::seed_volume(name));
        }
        undo_domain(rollback, lv, name);
        if found.autostart != cfg.autostart {
            lv.set_autostart(name, cfg.autostart).await.or_diag("Setting autostart")?;
        }
        let mac = found.summary.mac.as_deref();
        match (cfg.running, is_active(found.state)) {
            (true, active) => {
                let t0 = Instant::now();
                if !active {
                    lv.start(name).await.or_diag("Starting the domain")?;
                }
                wait_ready(lv, cfg, mac, t0, cfg.create_timeout, ctx).await
            }
            (false, true) => stop_gracefully(lv, name, shutdown_grace(cfg.delete_timeout), ctx).await,
            (false, false) => Ok(()),
        }
    }

    /// The base image is on the libvirt host (through libvirt: in a pool, or in its directory), of
    /// a format an overlay can name, and not larger than the planned disk.
    async fn check_base(
        &self,
        planned: &LabVmState,
        base: &Path,
        disk_size_bytes: Option<u64>,
    ) -> Result<(), Diagnostics> {
        let key = (planned.host.known().cloned(), base.to_path_buf());
        let seen = self.bases_seen.lock().map_err(|_| lock_poisoned())?.get(&key).cloned();
        let vol = match seen {
            Some(vol) => vol,
            None => {
                let lv = self.libvirt(planned).await?;
                let vol = storage::base_volume(&lv, base).await?.ok_or_else(|| storage::base_not_found(&lv, base))?;
                self.bases_seen.lock().map_err(|_| lock_poisoned())?.insert(key, vol.clone());
                vol
            }
        };
        match storage::base_problem(&vol, disk_size_bytes) {
            Some((path, why)) => Err(Diagnostic::attr_error(path, "Unusable base image", why).into()),
            None => Ok(()),
        }
    }

    /// Warn (or fail with `strict_capacity`) when the VMs planned so far need more memory than
    /// the host has free. `extra_mb` is what this VM adds.
    async fn check_capacity(
        &self,
        host: HostName,
        name: &str,
        extra_mb: i64,
        strict: bool,
    ) -> Result<Diagnostics, Diagnostics> {
        let mut diags = Diagnostics::new();
        let total_mb = {
            let mut planned = self.planned_memory.lock().map_err(|_| lock_poisoned())?;
            planned.insert((host.clone(), name.to_string()), extra_mb.max(0));
            planned.iter().filter(|((h, _), _)| *h == host).map(|(_, mb)| mb).sum::<i64>()
        };
        let lv = self.provider.libvirt_on(host.as_deref(), TYPE_NAME).await?;
        let host = lv.host_info().await.or_diag("Reading host capacity")?;
        // Page cache counts as free: the kernel gives it to a guest that needs it.
        let free_mb = i64::try_from(host.available_memory_bytes / (1024 * 1024)).unwrap_or(i64::MAX);
        if total_mb > free_mb {
            let summary = "Not enough free memory for the planned VMs";
            let detail = format!(
                "The VMs planned so far need {total_mb} MiB; the libvirt host has {free_mb} MiB free \
                 (unused memory and page cache; {} MiB total, {} CPUs). Lower `memory_mb` or plan fewer VMs.",
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

/// The VM's `host` (None: the provider's own libvirt).
fn host_of(state: &LabVmState) -> Option<&str> {
    state.host.known().map(String::as_str)
}

fn lock_poisoned() -> Diagnostic {
    Diagnostic::error("Internal error", "a lock of the lab_vm resource was poisoned by an earlier panic")
}

/// The VM's placement; `build` makes the pool (and directory) when needed. Without `build`, a
/// directory that is not there is an error too: callers that only look use `vm_volumes`.
async fn placement_of(lv: &Libvirt, cfg: &VmConfig, build: bool) -> Result<storage::Placement, Diagnostics> {
    storage::placement(lv, cfg.storage_pool.as_deref(), &cfg.overlay_dir, build).await?.ok_or_else(|| {
        Diagnostic::attr_error(
            AttrPath::root("overlay_dir"),
            "Overlay directory not found",
            format!("`{}` does not exist on the libvirt host ({}).", cfg.overlay_dir.display(), lv.uri()),
        )
        .into()
    })
}

/// The overlay and seed volumes of the VM of `state` that exist (looked up through libvirt).
async fn vm_volumes(lv: &Libvirt, state: &LabVmState) -> Result<Vec<Volume>, Diagnostics> {
    let Some(name) = state.name.known() else { return Ok(vec![]) };
    let overlay_dir = PathBuf::from(state.overlay_dir.known().map_or(DEFAULT_OVERLAY_DIR, String::as_str));
    let pool = state.storage_pool.known().map(String::as_str);
    let Some(place) = storage::placement(lv, pool, &overlay_dir, false).await? else { return Ok(vec![]) };
    let mut found = Vec::new();
    for name in [storage::overlay_volume(name), storage::seed_volume(name)] {
        if let Some(vol) = lv.volume(&place.pool, &name).await.or_diag("Looking up the VM's disk volumes")? {
            found.push(vol);
        }
    }
    // An imported VM's overlay may be outside its pool: where the state says it is.
    if let Some(path) = state.overlay_path.known().map(PathBuf::from)
        && !found.iter().any(|v| v.summary.path == path)
        && let Some(vol) = storage::volume_at(lv, &path).await.or_diag("Looking up the VM's overlay")?
        && vol.summary.name == storage::overlay_volume(name)
    {
        found.push(vol);
    }
    Ok(found)
}

/// Undo step of a create: power off and undefine the domain `name`.
fn undo_domain(rollback: &mut Rollback, lv: &Libvirt, name: &str) {
    let (lv2, n2) = (lv.clone(), name.to_string());
    let virsh = |verb: &str| shell_command(["virsh", "-c", lv.uri(), verb, name]);
    let by_hand = format!("{}; {}", virsh("destroy"), virsh("undefine"));
    rollback.push_with_manual(format!("domain {name}"), by_hand, async move {
        lv2.destroy(&n2).await.map_err(|e| error_chain(&e))?;
        lv2.undefine(&n2).await.map_err(|e| error_chain(&e))
    });
}

/// Read of a VM whose domain is gone: while its overlay or seed volume remains it is present but
/// broken (`state = "missing"`), so the plan replaces it and destroy removes the volumes; only
/// when nothing is left is it gone.
async fn half_deleted(lv: &Libvirt, mut state: LabVmState) -> Result<Option<LabVmState>, Diagnostics> {
    if state.name.is_null() || vm_volumes(lv, &state).await?.is_empty() {
        return Ok(None);
    }
    state.state = Attr::Known(MISSING.into());
    state.running = Attr::Known(false);
    state.ip = Attr::Null;
    Ok(Some(state))
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
    state.cdrom = media::read(s).into();
    if let Some(disk) = &s.disk {
        state.overlay_path = Attr::Known(disk.to_string_lossy().into_owned());
    }
    let uri = lv.uri();
    // The URI is validated (provider config) and the name too, and each word is quoted anyway.
    let mut console = shell_command(["virsh", "-c", uri, "console", &s.name]);
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

/// What the tests of `lab_vm`'s parts share.
#[cfg(test)]
mod test_support {
    pub use super::LabVmState;
    pub use crate::lifecycle::Timeouts;
    pub use crate::protocol::{Attr, Diagnostics};

    pub fn config() -> LabVmState {
        LabVmState {
            name: Attr::Known("vm-1".into()),
            base_image: Attr::Known("/img/base.qcow2".into()),
            memory_mb: Attr::Known(512),
            wait_for: Attr::Known("ssh".into()),
            domain_type: Attr::Known("qemu".into()),
            ..Default::default()
        }
    }

    pub fn paths(d: &Diagnostics) -> Vec<String> {
        d.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect()
    }
}
