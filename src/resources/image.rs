//! `lab_image`: a base image uploaded from the machine running Terraform into a storage pool of
//! the libvirt host (the provider's own, or the `host` block it names), through libvirt's volume
//! upload stream (virStorageVolUpload), so the host needs no shared filesystem and no copy by hand. The volume is read-only (mode 0444); VMs name
//! its `path` as their `base_image` and never write to it. Schema first, then validate, plan,
//! create, read, update, delete, import.
//!
//! Once per host: the state keeps the SHA-256 of what was uploaded, and plans compare only the
//! source's size with the volume's (no file is hashed at plan time), so a second apply uploads
//! nothing and plans nothing. A volume found under the name at create is adopted only when its
//! bytes are the source's (hashed on both sides); any other is someone's and left alone.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backends::libvirt::{Libvirt, Volume};
use crate::backends::volume_xml::VolumeSpec;
use crate::lifecycle::{Rollback, Timeouts, exists_unowned, host_and_id, import_id, shell_command};
use crate::protocol::diag::error_chain;
use crate::protocol::log;
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, DiagResultExt, Diagnostic, Diagnostics, OpContext, PlanRequest, Planned,
    Resource, Schema,
};
use crate::settings::{ProviderHandle, Settings};

const TYPE_NAME: &str = "lab_image";
const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// What no one may write: the image backs every VM made from it.
const READ_ONLY: &str = "0444";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabImageState {
    pub id: Attr<String>,
    pub name: Attr<String>,
    pub host: Attr<String>,
    pub source: Attr<String>,
    pub pool: Attr<String>,
    pub format: Attr<String>,
    pub sha256: Attr<String>,
    pub source_sha256: Attr<String>,
    pub path: Attr<String>,
    pub size_bytes: Attr<i64>,
    pub capacity_bytes: Attr<i64>,
    pub timeouts: Option<Timeouts>,
}

fn image_block() -> Block {
    let s = |name: &str| Attribute::string(name);
    Block {
        description: "A base image uploaded from the machine running Terraform into a libvirt storage pool, \
                      through libvirt's volume upload stream: once per host, checksummed, read-only. `lab_vm`s \
                      use it as `base_image = lab_image.<name>.path`."
            .into(),
        attributes: vec![
            s("id")
                .computed()
                .keep_prior()
                .description("`<pool>/<name>`, or `<host>/<pool>/<name>` on a named host; import takes the same."),
            s("name").required().requires_replace().description(
                "Volume name in the pool, e.g. `debian-12.qcow2`: 1-128 characters `[A-Za-z0-9._-]`, not starting \
                 with `-` or `.`.",
            ),
            s("host").optional().requires_replace().description(
                "The provider's `host \"<name>\"` block whose libvirt receives the image; unset: the provider's own \
                 `libvirt_uri`. A name without a block is a plan-time error. One `lab_image` per host puts the same \
                 file on each (`for_each` over the hosts); changing it uploads to the new host.",
            ),
            s("source").required().description(
                "Path of the image file on the machine running Terraform. Its size is compared with the volume's at \
                 every plan (a different size uploads again); set `sha256` to pin its content.",
            ),
            s("pool").optional().computed().requires_replace().description(
                "Storage pool on the libvirt host; defaults to the `storage_pool` of the `host` block (the \
                     provider's own without `host`).",
            ),
            s("format")
                .optional()
                .computed()
                .requires_replace()
                .description("`qcow2` or `raw`; by default read from the file's header (qcow2's magic, else raw)."),
            s("sha256").optional().description(
                "Expected SHA-256 (hex) of the source, e.g. `filesha256(\"debian.qcow2\")`: create fails, and \
                 keeps nothing, when the bytes sent differ; a value other than the uploaded image's replaces it.",
            ),
            s("source_sha256")
                .computed()
                .keep_prior()
                .description("SHA-256 of the bytes uploaded, checked against a read-back of the volume."),
            s("path")
                .computed()
                .keep_prior()
                .description("The volume's path on the libvirt host: what `lab_vm.base_image` names."),
            Attribute::number("size_bytes")
                .computed()
                .unit("bytes")
                .description("Length of the volume's file: the source's size. A different size replaces the image."),
            Attribute::number("capacity_bytes")
                .computed()
                .keep_prior()
                .unit("bytes")
                .description("Virtual size of the image (what a guest's disk starts as)."),
        ],
        blocks: vec![Timeouts::block(
            "Create: the upload and its read-back (default `30m`). On timeout the volume is deleted.",
            "Delete (default `5m`).",
        )],
        ..Default::default()
    }
}

pub struct ImageResource {
    provider: ProviderHandle,
}

impl ImageResource {
    pub fn new(provider: ProviderHandle) -> Self {
        ImageResource { provider }
    }

    /// The libvirt connection of the image's host (None: the provider's own).
    async fn libvirt(&self, host: Option<&str>) -> Result<Libvirt, Diagnostics> {
        self.provider.libvirt_on(host, TYPE_NAME).await
    }
}

#[async_trait]
impl Resource for ImageResource {
    type State = LabImageState;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema { version: 0, block: image_block() }
    }

    async fn validate(&self, config: &LabImageState) -> Diagnostics {
        validate_config(config)
    }

    async fn plan(&self, req: PlanRequest<LabImageState>) -> Result<Planned<LabImageState>, Diagnostics> {
        let mut planned = req.planned;
        let diags = validate_config(&planned);
        if diags.has_errors() {
            return Err(diags);
        }
        let settings = self.provider.settings()?;
        settings.check_host(&planned.host)?;
        // A host known only at apply (computed from another resource) is checked then.
        if !planned.host.is_unknown() {
            settings.require_libvirt_uri_on(host_of(&planned), TYPE_NAME)?;
        }
        if req.config.pool.is_null() {
            planned.pool = match &req.prior {
                Some(prior) => prior.pool.clone(),
                None if planned.host.is_unknown() => Attr::Unknown,
                None => Attr::Known(default_pool(settings, host_of(&planned))?),
            };
        }
        let mut out_replace = Vec::new();
        if let Some(source) = planned.source.known() {
            let source = Path::new(source);
            let (len, format) = inspect_source(source).map_err(|why| source_error(source, &why))?;
            if let Some(configured) = req.config.format.known()
                && *configured != format
            {
                return Err(Diagnostic::attr_error(
                    AttrPath::root("format"),
                    "Format does not match the file",
                    format!("`{}` is a {format} image, not {configured}.", source.display()),
                )
                .into());
            }
            if req.config.format.is_null() {
                planned.format = match &req.prior {
                    Some(prior) if prior.format.known().is_some() => prior.format.clone(),
                    _ => Attr::Known(format),
                };
            }
            planned.size_bytes = Attr::Known(len);
            if req.prior.as_ref().is_some_and(|p| p.size_bytes.known() != Some(&len)) {
                out_replace.push(AttrPath::root("size_bytes"));
            }
            // A pinned checksum other than what was uploaded: the image to have is another one.
            if let (Some(prior), Some(pinned)) = (&req.prior, planned.sha256.known())
                && prior.source_sha256.known().is_some_and(|had| !had.eq_ignore_ascii_case(pinned))
            {
                out_replace.push(AttrPath::root("sha256"));
            }
        } else {
            planned.size_bytes = Attr::Unknown;
        }
        match &req.prior {
            Some(prior) if out_replace.is_empty() => {
                planned.id = prior.id.clone();
                planned.path = prior.path.clone();
                planned.source_sha256 = prior.source_sha256.clone();
                planned.capacity_bytes = prior.capacity_bytes.clone();
            }
            _ => {
                planned.id = Attr::Unknown;
                planned.path = Attr::Unknown;
                planned.source_sha256 = Attr::Unknown;
                planned.capacity_bytes = Attr::Unknown;
            }
        }
        let mut out = Planned::new(planned);
        out.requires_replace = out_replace;
        out.diagnostics = diags;
        Ok(out)
    }

    async fn create(&self, mut planned: LabImageState, ctx: &OpContext) -> Result<LabImageState, Diagnostics> {
        if planned.pool.is_unknown() {
            planned.pool = Attr::Known(default_pool(self.provider.settings()?, host_of(&planned))?);
        }
        let lv = self.libvirt(host_of(&planned)).await?;
        let image = Image::from_state(&planned)?;
        let mut rollback = Rollback::new();
        let made = tokio::select! {
            made = tokio::time::timeout(image.create_timeout, self.create_steps(&lv, &image, &mut rollback)) => {
                made.unwrap_or_else(|_| Err(Diagnostic::error(
                    "Upload timed out",
                    format!("`{}` was not uploaded within timeouts.create ({:?}); the volume is deleted.",
                        image.name, image.create_timeout),
                ).into()))
            }
            () = ctx.cancel.cancelled() => Err(Diagnostic::error(
                "Upload interrupted",
                format!("The upload of `{}` was stopped; the volume is deleted.", image.name),
            ).into()),
        };
        let (vol, sha256) = rollback.finish(made).await?;
        let mut state = planned;
        fill_state(&mut state, &vol);
        state.source_sha256 = Attr::Known(sha256);
        Ok(state)
    }

    async fn read(&self, current: LabImageState, _ctx: &OpContext) -> Result<Option<LabImageState>, Diagnostics> {
        let (Some(pool), Some(name)) = (current.pool.known(), current.name.known()) else { return Ok(None) };
        let lv = self.libvirt(host_of(&current)).await?;
        // Gone (deleted out of band, or the pool with it): the plan makes it again.
        let pool_there = lv.pool(pool).await.or_diag("Looking up the storage pool")?.is_some();
        if !pool_there {
            return Ok(None);
        }
        let Some(vol) = lv.volume(pool, name).await.or_diag("Reading the image volume")? else { return Ok(None) };
        let mut state = current;
        fill_state(&mut state, &vol);
        Ok(Some(state))
    }

    /// Only `source` can change in place (a file of the same size at another path, e.g. after an
    /// import): nothing is uploaded.
    async fn update(
        &self,
        prior: LabImageState,
        planned: LabImageState,
        _ctx: &OpContext,
    ) -> Result<LabImageState, Diagnostics> {
        let mut state = planned;
        state.source_sha256 = prior.source_sha256;
        Ok(state)
    }

    async fn delete(&self, current: LabImageState, _ctx: &OpContext) -> Result<(), Diagnostics> {
        let (Some(pool), Some(name)) = (current.pool.known(), current.name.known()) else { return Ok(()) };
        let (_, delete_timeout) = parse_timeouts(&current)?;
        let lv = self.libvirt(host_of(&current)).await?;
        if lv.pool(pool).await.or_diag("Looking up the storage pool")?.is_none() {
            return Ok(());
        }
        match tokio::time::timeout(delete_timeout, lv.delete_volume(pool, name)).await {
            Ok(done) => done.or_diag("Deleting the image volume"),
            Err(_) => Err(Diagnostic::error(
                "Delete timed out",
                format!(
                    "Volume `{name}` of pool `{pool}` was not deleted within timeouts.delete ({delete_timeout:?})."
                ),
            )
            .into()),
        }
    }

    async fn import(&self, id: &str, _ctx: &OpContext) -> Result<Option<LabImageState>, Diagnostics> {
        let Some((host, pool, name)) = parse_import_id(id) else {
            return Err(Diagnostic::error(
                "Invalid import id",
                format!(
                    "Import `lab_image` as `<pool>/<volume name>`, e.g. `default/debian-12.qcow2`, or \
                     `<host>/<pool>/<volume name>` on a named host, e.g. `h1/default/debian-12.qcow2`; got `{id}`."
                ),
            )
            .into());
        };
        let lv = self.libvirt(host).await?;
        if lv.pool(pool).await.or_diag("Looking up the storage pool")?.is_none() {
            return Ok(None);
        }
        let Some(vol) = lv.volume(pool, name).await.or_diag("Reading the image volume")? else { return Ok(None) };
        let sha256 =
            lv.volume_sha256(pool, name, vol.summary.physical_bytes).await.or_diag("Reading the image back")?;
        let mut state = LabImageState {
            name: Attr::Known(name.to_string()),
            host: host.map(str::to_string).into(),
            pool: Attr::Known(pool.to_string()),
            format: vol.summary.format.clone().into(),
            source_sha256: Attr::Known(sha256),
            ..Default::default()
        };
        fill_state(&mut state, &vol);
        Ok(Some(state))
    }
}

/// The planned image with defaults applied.
struct Image {
    name: String,
    host: Option<String>,
    source: PathBuf,
    pool: String,
    format: String,
    sha256: Option<String>,
    create_timeout: Duration,
}

impl Image {
    /// Where the image goes, for the log: `pool lab`, or `pool lab of host h1`.
    fn place(&self) -> String {
        match &self.host {
            Some(host) => format!("pool {} of host {host}", self.pool),
            None => format!("pool {}", self.pool),
        }
    }

    fn from_state(s: &LabImageState) -> Result<Self, Diagnostics> {
        let missing = |attr: &str| crate::validate::missing(AttrPath::root(attr));
        let (create_timeout, _) = parse_timeouts(s)?;
        Ok(Image {
            name: s.name.known().cloned().ok_or_else(|| missing("name"))?,
            host: s.host.known().cloned(),
            source: PathBuf::from(s.source.known().ok_or_else(|| missing("source"))?),
            pool: s.pool.known().cloned().ok_or_else(|| missing("pool"))?,
            format: s.format.known().cloned().unwrap_or_else(|| "raw".into()),
            sha256: s.sha256.known().map(|h| h.to_ascii_lowercase()),
            create_timeout,
        })
    }
}

impl ImageResource {
    /// Adopt the identical volume found under the name, or create, upload and read back.
    async fn create_steps(
        &self,
        lv: &Libvirt,
        image: &Image,
        rollback: &mut Rollback,
    ) -> Result<(Volume, String), Diagnostics> {
        let name = &image.name;
        let (len, _) = inspect_source(&image.source).map_err(|why| source_error(&image.source, &why))?;
        if let Some(found) = lv.volume(&image.pool, name).await.or_diag("Looking up the image volume")? {
            return adopt(lv, image, found, len).await;
        }
        let capacity = match image.format.as_str() {
            "qcow2" => qcow2_virtual_size(&image.source).map_err(|why| source_error(&image.source, &why))?,
            _ => len as u64,
        };
        let spec = VolumeSpec {
            name: name.clone(),
            capacity_bytes: capacity,
            format: image.format.clone(),
            backing: None,
            mode: Some(READ_ONLY.into()),
        };
        undo_volume(rollback, lv, &image.pool, name);
        lv.create_volume(&image.pool, &spec).await.or_diag("Creating the image volume")?;
        log::info(&format!(
            "lab_image {name}: uploading {} ({} MiB) into {}",
            image.source.display(),
            len >> 20,
            image.place()
        ));
        let report = lv.upload_file(&image.pool, name, &image.source).await.or_diag("Uploading the image")?;
        let mib_s = report.bytes as f64 / report.seconds.max(1e-6) / f64::from(1u32 << 20);
        log::info(&format!(
            "lab_image {name}: uploaded {} bytes in {:.2} s ({mib_s:.1} MiB/s), sha256 {}",
            report.bytes, report.seconds, report.sha256
        ));
        if let Some(expected) = &image.sha256
            && *expected != report.sha256
        {
            return Err(checksum_mismatch(&image.source, expected, &report.sha256));
        }
        let t = Instant::now();
        let landed = lv.volume_sha256(&image.pool, name, report.bytes).await.or_diag("Reading the image back")?;
        if landed != report.sha256 {
            return Err(Diagnostic::error(
                "The uploaded image differs from its source",
                format!(
                    "Volume `{name}` of pool `{}` reads back with SHA-256 {landed}, but {} bytes with SHA-256 {} \
                     were sent. The volume is deleted; apply again.",
                    image.pool, report.bytes, report.sha256
                ),
            )
            .into());
        }
        log::info(&format!("lab_image {name}: read back and verified in {:.2} s", t.elapsed().as_secs_f64()));
        let vol = lv.volume(&image.pool, name).await.or_diag("Reading the image volume")?.ok_or_else(|| {
            Diagnostic::error("Volume vanished", format!("`{name}` disappeared right after its upload"))
        })?;
        Ok((vol, report.sha256))
    }
}

/// A volume found under the image's name at create: the image of an apply that never recorded
/// it (or the same file uploaded by hand) when its bytes are the source's, so it is kept and
/// nothing is uploaded; anything else is someone's volume.
async fn adopt(lv: &Libvirt, image: &Image, found: Volume, len: i64) -> Result<(Volume, String), Diagnostics> {
    let name = &image.name;
    let unowned = || {
        let what = format!("A volume `{name}` in pool `{}` with other content", image.pool);
        let id = import_id(image.host.as_deref(), &format!("{}/{name}", image.pool));
        exists_unowned(AttrPath::root("name"), TYPE_NAME, &what, &id).into()
    };
    if i64::try_from(found.summary.physical_bytes).ok() != Some(len) {
        return Err(unowned());
    }
    let source = image.source.clone();
    let local = tokio::task::spawn_blocking(move || sha256_file(&source))
        .await
        .map_err(|e| Diagnostic::error("Hashing the source failed", e.to_string()))?
        .map_err(|why| source_error(&image.source, &why))?;
    if let Some(expected) = &image.sha256
        && *expected != local
    {
        return Err(checksum_mismatch(&image.source, expected, &local));
    }
    let remote = lv
        .volume_sha256(&image.pool, name, found.summary.physical_bytes)
        .await
        .or_diag("Reading the found volume back")?;
    if remote != local {
        return Err(unowned());
    }
    log::info(&format!("lab_image {name}: {} already holds these bytes; nothing uploaded", image.place()));
    Ok((found, local))
}

fn host_of(state: &LabImageState) -> Option<&str> {
    state.host.known().map(String::as_str)
}

/// The pool an image goes to when it names none: its host block's `storage_pool`, or the
/// provider's own without `host`.
fn default_pool(settings: &Settings, host: Option<&str>) -> Result<String, Diagnostics> {
    let (pool, fix) = match host {
        Some(name) => (
            settings.named_host(name)?.storage_pool.clone(),
            format!("Set `pool` here, or `storage_pool` in the provider's `host \"{name}\"` block."),
        ),
        None => (
            settings.storage_pool.clone(),
            "Set `pool` here, or `storage_pool` in the provider block (or $LAB_STORAGE_POOL).".to_string(),
        ),
    };
    pool.ok_or_else(|| Diagnostic::attr_error(AttrPath::root("pool"), "No storage pool for the image", fix).into())
}

/// An import id: `<pool>/<name>` on the provider's own libvirt, `<host>/<pool>/<name>` on a named
/// host (lifecycle's `import_id` of `<pool>/<name>`); None when it is neither.
fn parse_import_id(id: &str) -> Option<(Option<&str>, &str, &str)> {
    let (host, rest) = if id.matches('/').count() == 2 { host_and_id(id) } else { (None, id) };
    let (pool, name) = rest.split_once('/')?;
    let valid = host.is_none_or(|h| crate::validate::name(h).is_ok())
        && crate::validate::pool_name(pool).is_ok()
        && crate::validate::pool_name(name).is_ok();
    valid.then_some((host, pool, name))
}

fn validate_config(config: &LabImageState) -> Diagnostics {
    let mut diags = Diagnostics::new();
    if let Some(name) = config.name.known() {
        crate::validate::check(&mut diags, AttrPath::root("name"), crate::validate::pool_name(name));
    }
    if let Some(pool) = config.pool.known() {
        crate::validate::check(&mut diags, AttrPath::root("pool"), crate::validate::pool_name(pool));
    }
    if let Some(format) = config.format.known()
        && !matches!(format.as_str(), "qcow2" | "raw")
    {
        let why = format!("`{format}`: use `qcow2` or `raw`");
        crate::validate::check(&mut diags, AttrPath::root("format"), Err::<(), _>(why));
    }
    if let Some(sha) = config.sha256.known()
        && !(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        let why = format!("`{sha}` is not a SHA-256: 64 hex digits, as `filesha256()` gives");
        crate::validate::check(&mut diags, AttrPath::root("sha256"), Err::<(), _>(why));
    }
    if let Some(source) = config.source.known()
        && !Path::new(source).is_absolute()
    {
        let why = format!("`{source}` must be an absolute path (e.g. \"${{path.module}}/{source}\")");
        crate::validate::check(&mut diags, AttrPath::root("source"), Err::<(), _>(why));
    }
    diags.extend(
        Timeouts::resolve(config.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))
            .err()
            .unwrap_or_default(),
    );
    diags
}

fn parse_timeouts(s: &LabImageState) -> Result<(Duration, Duration), Diagnostics> {
    Timeouts::resolve(s.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))
}

/// The qcow2 magic, `QFI\xfb`, opens every qcow2 image.
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// The source's length and format (from its first bytes), or why it cannot be read.
fn inspect_source(path: &Path) -> Result<(i64, String), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut magic = [0u8; 4];
    let format = match file.read_exact(&mut magic) {
        Ok(()) if magic == QCOW2_MAGIC => "qcow2",
        _ => "raw",
    };
    Ok((i64::try_from(meta.len()).map_err(|e| e.to_string())?, format.into()))
}

/// The virtual size in a qcow2 header (bytes 24-31, big-endian).
fn qcow2_virtual_size(path: &Path) -> Result<u64, String> {
    let mut header = [0u8; 32];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).map_err(|e| e.to_string())?;
    if header[..4] != QCOW2_MAGIC {
        return Err("not a qcow2 image (no qcow2 magic)".into());
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&header[24..32]);
    Ok(u64::from_be_bytes(size))
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn source_error(source: &Path, why: &str) -> Diagnostics {
    Diagnostic::attr_error(
        AttrPath::root("source"),
        "Cannot read the image",
        format!("`{}` on this machine: {why}", source.display()),
    )
    .into()
}

fn checksum_mismatch(source: &Path, expected: &str, got: &str) -> Diagnostics {
    Diagnostic::attr_error(
        AttrPath::root("sha256"),
        "Checksum mismatch",
        format!(
            "`{}` has SHA-256 {got}, but `sha256` is {expected}. Nothing was kept on the host; check the file or \
             the checksum.",
            source.display()
        ),
    )
    .into()
}

/// Fill what the volume says: id, path, sizes.
fn fill_state(state: &mut LabImageState, vol: &Volume) {
    let s = &vol.summary;
    state.id = Attr::Known(import_id(host_of(state), &format!("{}/{}", vol.pool, s.name)));
    state.path = Attr::Known(s.path.to_string_lossy().into_owned());
    state.size_bytes = i64::try_from(s.physical_bytes).ok().into();
    state.capacity_bytes = i64::try_from(s.capacity_bytes).ok().into();
}

/// Undo step of a create: delete the volume.
fn undo_volume(rollback: &mut Rollback, lv: &Libvirt, pool: &str, name: &str) {
    let (lv2, pool2, name2) = (lv.clone(), pool.to_string(), name.to_string());
    rollback.push_with_manual(
        format!("image volume {name} (pool {pool})"),
        shell_command(["virsh", "-c", lv.uri(), "vol-delete", "--pool", pool, name]),
        async move { lv2.delete_volume(&pool2, &name2).await.map_err(|e| error_chain(&e)) },
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::settings::HostSettings;

    #[test]
    fn the_source_format_is_read_from_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk.img");
        std::fs::write(&raw, vec![0u8; 4096]).unwrap();
        assert_eq!(inspect_source(&raw).unwrap(), (4096, "raw".to_string()));
        assert!(qcow2_virtual_size(&raw).unwrap_err().contains("not a qcow2"));
        let mut header = vec![0u8; 512];
        header[..4].copy_from_slice(&QCOW2_MAGIC);
        header[24..32].copy_from_slice(&(3u64 << 30).to_be_bytes());
        let qcow2 = dir.path().join("disk.qcow2");
        std::fs::write(&qcow2, &header).unwrap();
        assert_eq!(inspect_source(&qcow2).unwrap(), (512, "qcow2".to_string()));
        assert_eq!(qcow2_virtual_size(&qcow2).unwrap(), 3 << 30);
        assert!(inspect_source(dir.path()).unwrap_err().contains("not a regular file"));
        assert!(inspect_source(&dir.path().join("missing")).is_err());
        // sha256 of "abc", as `sha256sum` prints it.
        let abc = dir.path().join("abc");
        std::fs::write(&abc, b"abc").unwrap();
        assert_eq!(sha256_file(&abc).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn each_bad_value_names_its_attribute() {
        let config = LabImageState {
            name: Attr::Known("a/b".into()),
            pool: Attr::Known("-p".into()),
            format: Attr::Known("vmdk".into()),
            sha256: Attr::Known("abc".into()),
            source: Attr::Known("relative.qcow2".into()),
            ..Default::default()
        };
        let diags = validate_config(&config);
        let paths: Vec<String> = diags.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect();
        assert_eq!(paths, ["name", "pool", "format", "sha256", "source"], "{diags:?}");
        let ok = LabImageState {
            name: Attr::Known("debian-12.qcow2".into()),
            source: Attr::Known("/img/debian.qcow2".into()),
            sha256: Attr::Known("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD".into()),
            ..Default::default()
        };
        assert!(!validate_config(&ok).has_errors(), "{:?}", validate_config(&ok));
    }

    fn two_hosts() -> ProviderHandle {
        let host = |pool: Option<&str>| HostSettings {
            libvirt_uri: Some("qemu+ssh://root@10.77.1.2/system".into()),
            storage_pool: pool.map(str::to_string),
            ..Default::default()
        };
        ProviderHandle::with_settings(Settings {
            libvirt_uri: Some("qemu:///system".into()),
            storage_pool: Some("default".into()),
            hosts: BTreeMap::from([("h1".to_string(), host(Some("lab"))), ("h2".to_string(), host(None))]),
            ..Default::default()
        })
    }

    async fn plan_on(host: Attr<String>, source: &Path) -> Result<Planned<LabImageState>, Diagnostics> {
        let config = LabImageState {
            name: Attr::Known("base.qcow2".into()),
            host,
            source: Attr::Known(source.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let req = PlanRequest { prior: None, config: config.clone(), planned: config };
        ImageResource::new(two_hosts()).plan(req).await
    }

    #[tokio::test]
    async fn the_host_picks_the_pool_and_an_unknown_host_fails_the_plan_on_its_attribute() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("base.img");
        std::fs::write(&source, vec![0u8; 4096]).unwrap();

        let own = plan_on(Attr::Null, &source).await.unwrap();
        assert_eq!(own.state.pool, Attr::Known("default".into()), "the provider's storage_pool without `host`");
        let h1 = plan_on(Attr::Known("h1".into()), &source).await.unwrap();
        assert_eq!(h1.state.pool, Attr::Known("lab".into()), "host h1's storage_pool");
        assert_eq!((h1.state.id, h1.state.size_bytes), (Attr::Unknown, Attr::Known(4096)));

        // A host known only at apply: its pool is too.
        let later = plan_on(Attr::Unknown, &source).await.unwrap();
        assert_eq!(later.state.pool, Attr::Unknown);

        let err = plan_on(Attr::Known("h2".into()), &source).await.err().unwrap();
        assert_eq!(err.0[0].attribute, Some(AttrPath::root("pool")), "{err:?}");
        assert!(err.0[0].detail.contains("`host \"h2\"` block"), "{err:?}");

        let err = plan_on(Attr::Known("h9".into()), &source).await.err().unwrap();
        assert_eq!(err.0[0].summary, "Unknown host");
        assert_eq!(err.0[0].attribute, Some(AttrPath::root("host")));
        assert!(
            err.0[0].detail.contains("No `host \"h9\"` block") && err.0[0].detail.contains("`h1`, `h2`"),
            "{err:?}"
        );
    }

    #[test]
    fn import_ids_name_the_pool_and_on_a_named_host_the_host() {
        assert_eq!(parse_import_id("default/base.qcow2"), Some((None, "default", "base.qcow2")));
        assert_eq!(parse_import_id("h1/lab/base.qcow2"), Some((Some("h1"), "lab", "base.qcow2")));
        for bad in ["base.qcow2", "h1/lab/", "/lab/base.qcow2", "a/b/c/d", "H 1/lab/base.qcow2", "lab/-x"] {
            assert_eq!(parse_import_id(bad), None, "{bad}");
        }
        // The state's id is what import takes.
        let vol = |pool: &str| Volume {
            pool: pool.into(),
            summary: crate::backends::volume_xml::VolumeSummary {
                name: "base.qcow2".into(),
                path: PathBuf::from("/pool/base.qcow2"),
                ..Default::default()
            },
        };
        for (host, id) in [(Attr::Null, "lab/base.qcow2"), (Attr::Known("h1".to_string()), "h1/lab/base.qcow2")] {
            let mut state = LabImageState { host, ..Default::default() };
            fill_state(&mut state, &vol("lab"));
            assert_eq!(state.id.known().map(String::as_str), Some(id));
            let (host, pool, name) = parse_import_id(id).unwrap();
            assert_eq!((host, pool, name), (state.host.known().map(String::as_str), "lab", "base.qcow2"));
        }
    }

    #[test]
    fn state_round_trips_through_the_schema_type() {
        use crate::protocol::serde_bridge::{from_value, to_value};
        let ty = image_block().value_type();
        let state = LabImageState {
            name: Attr::Known("base.qcow2".into()),
            host: Attr::Known("h1".into()),
            source: Attr::Known("/img/base.qcow2".into()),
            size_bytes: Attr::Known(4096),
            ..Default::default()
        };
        let value = to_value(&state, &ty).unwrap();
        assert_eq!(from_value::<LabImageState>(&value).unwrap(), state);
    }
}
