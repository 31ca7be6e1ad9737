//! The release config cannot silently drift from what the Terraform Registry needs. GoReleaser
//! itself cannot be installed where the tests run (its installers download from GitHub), so
//! instead of `goreleaser check` this reads `.goreleaser.yml` and checks the shape the Registry's
//! publishing rules depend on: file names, formats, checksum, signature, manifest, targets.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

const PROJECT: &str = "terraform-provider-lab";
/// The libvirt helper: the provider finds it by this exact name next to itself.
const HELPER: &str = terraform_provider_lab::backends::libvirt::HELPER_NAME;
const ARCHIVE_NAME: &str = "{{ .ProjectName }}_{{ .Version }}_{{ .Os }}_{{ .Arch }}";
const CHECKSUM_NAME: &str = "{{ .ProjectName }}_{{ .Version }}_SHA256SUMS";
const MANIFEST_NAME: &str = "{{ .ProjectName }}_{{ .Version }}_manifest.json";
const MANIFEST_FILE: &str = "terraform-registry-manifest.json";
const LINUX_TARGETS: [&str; 2] = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

/// The parts of GoReleaser's v2 schema that this test looks at; other keys are ignored.
#[derive(Debug, Deserialize)]
struct Config {
    version: u32,
    project_name: String,
    #[serde(default)]
    builds: Vec<Build>,
    #[serde(default)]
    archives: Vec<Archive>,
    checksum: Checksum,
    #[serde(default)]
    signs: Vec<Sign>,
    release: Release,
    #[serde(default)]
    changelog: Changelog,
}

#[derive(Debug, Deserialize)]
struct Build {
    id: Option<String>,
    builder: Option<String>,
    binary: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
    command: Option<String>,
    #[serde(default)]
    hooks: BuildHooks,
}

#[derive(Debug, Default, Deserialize)]
struct BuildHooks {
    #[serde(default)]
    pre: Vec<Hook>,
}

/// A hook is either a bare command or `{cmd, dir, env, output}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Hook {
    Command(String),
    Detailed { cmd: String },
}

impl Hook {
    fn cmd(&self) -> &str {
        match self {
            Hook::Command(cmd) | Hook::Detailed { cmd } => cmd,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Archive {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    formats: Vec<String>,
    name_template: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Checksum {
    name_template: String,
    algorithm: String,
    #[serde(default)]
    extra_files: Vec<ExtraFile>,
}

#[derive(Debug, Deserialize)]
struct ExtraFile {
    glob: String,
    name_template: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Sign {
    artifacts: String,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Release {
    #[serde(default)]
    extra_files: Vec<ExtraFile>,
}

#[derive(Debug, Default, Deserialize)]
struct Changelog {
    #[serde(default)]
    disable: bool,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    version: u32,
    metadata: BTreeMap<String, Vec<String>>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn config() -> Config {
    serde_norway::from_str(&read(".goreleaser.yml")).expect(".goreleaser.yml parses as GoReleaser v2 config")
}

fn the_build(config: &Config) -> &Build {
    build_of(config, PROJECT)
}

fn build_of<'a>(config: &'a Config, id: &str) -> &'a Build {
    assert_eq!(config.builds.len(), 2, "the provider and its libvirt helper: {:?}", config.builds);
    let mut matching = config.builds.iter().filter(|b| b.id.as_deref() == Some(id));
    match (matching.next(), matching.next()) {
        (Some(build), None) => build,
        _ => panic!("exactly one build with id {id}: {:?}", config.builds),
    }
}

#[test]
fn is_goreleaser_v2_for_this_project() {
    let config = config();
    assert_eq!(config.version, 2);
    assert_eq!(config.project_name, PROJECT);
}

#[test]
fn builds_the_provider_with_the_rust_builder_for_linux_amd64_and_arm64() {
    let config = config();
    let build = the_build(&config);
    assert_eq!(build.builder.as_deref(), Some("rust"));
    assert_eq!(build.binary.as_deref(), Some("terraform-provider-lab_v{{ .Version }}"));
    for target in LINUX_TARGETS {
        assert!(build.targets.iter().any(|t| t == target), "target {target} missing from {:?}", build.targets);
    }
    // zigbuild is what makes the aarch64 cross build work without a cross toolchain.
    assert!(matches!(build.command.as_deref(), None | Some("zigbuild")), "command: {:?}", build.command);
}

/// The Rust builder copies `target/<target>/release/<binary>`, but cargo names its output after
/// `[[bin]]`: unless a pre hook builds and renames, the versioned binary name would not exist.
#[test]
fn a_pre_hook_gives_cargos_binary_the_versioned_name() {
    let config = config();
    let build = the_build(&config);
    let commands: Vec<&str> = build.hooks.pre.iter().map(Hook::cmd).collect();
    let builds = commands.iter().position(|c| c.starts_with("cargo zigbuild") && c.contains("{{ .Target }}"));
    let copies = commands.iter().position(|c| {
        c.starts_with("cp ") && c.contains(&format!("release/{PROJECT} ")) && c.ends_with("release/{{ .Name }}")
    });
    match (builds, copies) {
        (Some(b), Some(c)) => assert!(b < c, "the copy must come after the build: {commands:?}"),
        _ => panic!("pre hooks must build with zigbuild and then copy to {{{{ .Name }}}}: {commands:?}"),
    }
}

#[test]
fn cargo_builds_a_binary_named_like_the_project() {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml parses");
    let bins = manifest["bin"].as_array().expect("Cargo.toml has [[bin]]");
    let names: Vec<&str> = bins.iter().filter_map(|b| b.get("name")?.as_str()).collect();
    assert_eq!(names, [PROJECT, HELPER]);
}

/// Terraform runs the first file in the package directory named `terraform-provider-lab`
/// followed by nothing, `_` or `.`: the helper must never be that file.
#[test]
fn the_libvirt_helper_ships_in_every_zip_and_is_never_taken_for_the_provider() {
    let config = config();
    let helper = build_of(&config, HELPER);
    assert_eq!(helper.binary.as_deref(), Some(HELPER), "unversioned: the provider looks for this exact name");
    assert_eq!(helper.builder.as_deref(), Some("rust"));
    assert_eq!(helper.targets, the_build(&config).targets, "the helper is built for every provider target");
    let archive = &config.archives[0];
    assert!(
        archive.ids.is_empty() || [PROJECT, HELPER].iter().all(|id| archive.ids.iter().any(|i| i == id)),
        "the zip must hold both binaries: ids {:?}",
        archive.ids
    );
    let after_prefix = HELPER.strip_prefix(PROJECT).and_then(|rest| rest.chars().next());
    assert!(!matches!(after_prefix, None | Some('_') | Some('.')), "{HELPER} would be taken for the provider");
}

#[test]
fn archives_are_zips_named_for_the_registry() {
    let config = config();
    assert_eq!(config.archives.len(), 1, "exactly one archive: {:?}", config.archives);
    let archive = &config.archives[0];
    assert_eq!(archive.formats, ["zip"]);
    assert_eq!(archive.name_template.as_deref(), Some(ARCHIVE_NAME));
}

#[test]
fn checksums_are_sha256_and_cover_the_manifest() {
    let config = config();
    assert_eq!(config.checksum.name_template, CHECKSUM_NAME);
    assert_eq!(config.checksum.algorithm, "sha256");
    assert!(
        config.checksum.extra_files.iter().any(|f| f.glob == MANIFEST_FILE),
        "the manifest is listed in SHA256SUMS: {:?}",
        config.checksum.extra_files
    );
}

#[test]
fn the_checksum_file_gets_a_detached_gpg_signature() {
    let config = config();
    let sign = config.signs.iter().find(|s| s.artifacts == "checksum").expect("a signs entry for the checksum");
    for arg in ["--detach-sign", "--batch", "${signature}", "${artifact}"] {
        assert!(sign.args.iter().any(|a| a == arg), "signs args lack {arg}: {:?}", sign.args);
    }
    let user = sign.args.iter().position(|a| a == "--local-user").expect("--local-user");
    let key = sign.args.get(user + 1).map(String::as_str);
    assert!(
        matches!(key, Some("${GPG_FINGERPRINT}" | "{{ .Env.GPG_FINGERPRINT }}")),
        "the signing key comes from GPG_FINGERPRINT: {key:?}"
    );
}

#[test]
fn the_release_carries_the_manifest_under_its_versioned_name() {
    let config = config();
    let manifest = config
        .release
        .extra_files
        .iter()
        .find(|f| f.glob == MANIFEST_FILE)
        .expect("release.extra_files carries terraform-registry-manifest.json");
    assert_eq!(manifest.name_template.as_deref(), Some(MANIFEST_NAME));
    assert!(root().join(MANIFEST_FILE).is_file(), "{MANIFEST_FILE} exists at the repository root");
}

#[test]
fn the_manifest_declares_plugin_protocol_6() {
    let manifest: Manifest = serde_json::from_str(&read(MANIFEST_FILE)).expect("manifest is JSON");
    assert_eq!(manifest.version, 1);
    assert_eq!(manifest.metadata.get("protocol_versions").map(Vec::as_slice), Some(&["6.0".to_string()][..]));
}

#[test]
fn release_notes_come_from_the_changelog_not_from_commits() {
    assert!(config().changelog.disable, "changelog.disable: true (notes are in CHANGELOG.md)");
    assert!(read("CHANGELOG.md").contains("## [Unreleased]"), "CHANGELOG.md has an Unreleased section");
}
