//! `lab_network`: a private network for one student's lab: a libvirt network with its own bridge,
//! subnet and DHCP, isolated from every other lab (libvirt's isolated mode unless `nat`). The lab's
//! VMs join it by name (`lab_vm.network`). Schema first, then validate, plan, create, read, update,
//! delete, import.

use std::time::Duration;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::backends::docker::{DockerClient, OnBridge};
use crate::backends::libvirt::{Libvirt, NetworkInfo};
use crate::backends::network_xml::{NetworkSpec, SubnetPlan};
use crate::lifecycle::{MANAGED_LABEL, Rollback, Timeouts, exists_unowned, shell_command};
use crate::protocol::diag::error_chain;
use crate::protocol::log;
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, DiagResultExt, Diagnostic, Diagnostics, OpContext, PlanRequest, Planned,
    Resource, Schema,
};
use crate::settings::ProviderHandle;
use crate::validate;

const TYPE_NAME: &str = "lab_network";
const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(120);
/// Label naming the lab network a Docker network belongs to.
const LABEL_NETWORK: &str = "lab.lab-network";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabNetworkState {
    pub id: Attr<String>,
    pub name: Attr<String>,
    pub cidr: Attr<String>,
    pub bridge: Attr<String>,
    pub nat: Attr<bool>,
    pub host_address: Attr<String>,
    pub dhcp_range: Attr<String>,
    pub terminal_range: Attr<String>,
    pub terminals: Attr<bool>,
    pub docker_network: Attr<String>,
    pub active: Attr<bool>,
    pub timeouts: Option<Timeouts>,
}

fn network_block() -> Block {
    let computed = |name: &str, text: &str| Attribute::string(name).computed().keep_prior().description(text);
    Block {
        description: "A private network for one student's lab: a libvirt network with its own bridge, IPv4 subnet \
                      and DHCP. Without `nat` it is libvirt's isolated mode: nothing is routed into or out of it, \
                      so one lab's VMs never reach another lab's; they reach each other (set `isolated = false` on \
                      their `lab_vm`s) and the host's address on the network."
            .into(),
        attributes: vec![
            computed("id", "Network UUID."),
            Attribute::string("name").required().requires_replace().description(
                "libvirt network name, what `lab_vm.network` takes: 1-63 characters `[a-z0-9-]`, not starting or \
                 ending with `-`. Import uses it as the id.",
            ),
            Attribute::string("cidr").required().requires_replace().description(
                "IPv4 subnet in CIDR notation, e.g. `192.168.160.0/24`, prefix /16 to /27, without host bits. The \
                 host takes the first address, DHCP the ones after it up to the last eighth of the subnet, which is \
                 kept for terminals (`terminal_range`). Each lab needs a subnet of its own: a new network whose subnet \
                 overlaps another network of the host is refused at plan time.",
            ),
            Attribute::string("bridge").optional().computed().keep_prior().requires_replace().description(
                "Bridge device on the libvirt host: 1-15 characters `[a-z0-9-]`, not starting with `-`. Unset: \
                 libvirt picks a free `virbrN`.",
            ),
            Attribute::bool("nat").default_bool(false).requires_replace().description(
                "Let guests reach beyond the host, masqueraded (libvirt's NAT mode). Off by default: the lab \
                 reaches only itself and the host.",
            ),
            Attribute::bool("terminals").default_bool(true).requires_replace().description(
                "Make a Docker network of the same name on this network's bridge, for the lab's `lab_terminal` \
                 (its `lab_network`): the terminal then reaches the lab's VMs over the bridge itself, and no other \
                 lab's. Internal unless `nat` (no route beyond the bridge); addresses from `terminal_range`. \
                 Needs the provider's `docker_host` to be the libvirt host.",
            ),
            computed(
                "docker_network",
                "Name of the Docker network for the lab's terminals (null without `terminals`).",
            ),
            Attribute::bool("active").computed().keep_prior().description(
                "Whether the network runs. One stopped outside Terraform (`virsh net-destroy`) reads `false`, and \
                 the plan starts it again in place.",
            ),
            computed("host_address", "The host's address on the network: the guests' gateway and DNS server."),
            computed("dhcp_range", "First and last address DHCP hands out, as `first-last`."),
            computed("terminal_range", "The part of the subnet kept out of DHCP for the lab's terminals (CIDR)."),
        ],
        blocks: vec![Timeouts::block(
            "Create: define and start the network (default `2m`). On timeout or failure it is removed again.",
            "Delete: stop and undefine the network (default `2m`).",
        )],
        ..Default::default()
    }
}

pub struct NetworkResource {
    provider: ProviderHandle,
}

impl NetworkResource {
    pub fn new(provider: ProviderHandle) -> Self {
        NetworkResource { provider }
    }

    async fn libvirt(&self) -> Result<Libvirt, Diagnostics> {
        self.provider.libvirt(TYPE_NAME).await
    }
}

/// A checked configuration: what create and the adoption rule compare against.
struct NetworkConfig {
    spec: NetworkSpec,
    terminals: bool,
    create_timeout: Duration,
}

impl NetworkConfig {
    fn from_state(s: &LabNetworkState) -> Result<Self, Diagnostics> {
        let diags = validate_config(s);
        if diags.has_errors() {
            return Err(diags);
        }
        let name = s.name.known().ok_or_else(|| validate::missing(AttrPath::root("name")))?;
        let cidr = s.cidr.known().ok_or_else(|| validate::missing(AttrPath::root("cidr")))?;
        let subnet =
            lab_cidr(cidr).map_err(|why| Diagnostic::attr_error(AttrPath::root("cidr"), "Invalid cidr", why))?;
        let (create_timeout, _) =
            Timeouts::resolve(s.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))?;
        let spec = NetworkSpec {
            name: name.clone(),
            uuid: None,
            bridge: s.bridge.known().cloned(),
            subnet,
            nat: s.nat.known().copied().unwrap_or(false),
        };
        let terminals = s.terminals.known().copied().unwrap_or(true);
        Ok(NetworkConfig { spec, terminals, create_timeout })
    }
}

fn validate_config(s: &LabNetworkState) -> Diagnostics {
    let mut diags = Diagnostics::new();
    if let Some(name) = s.name.known() {
        validate::check(&mut diags, AttrPath::root("name"), validate::name(name));
    }
    if let Some(cidr) = s.cidr.known() {
        validate::check(&mut diags, AttrPath::root("cidr"), lab_cidr(cidr));
    }
    if let Some(bridge) = s.bridge.known() {
        validate::check(&mut diags, AttrPath::root("bridge"), bridge_name(bridge));
    }
    if let Err(more) = Timeouts::resolve(s.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT)) {
        diags.extend(more);
    }
    diags
}

fn lab_cidr(cidr: &str) -> Result<SubnetPlan, String> {
    let net: Ipv4Net = cidr
        .parse()
        .map_err(|_| format!("`{cidr}` is not an IPv4 subnet in CIDR notation, like `192.168.160.0/24`"))?;
    let (min, max) = (SubnetPlan::PREFIXES.start(), SubnetPlan::PREFIXES.end());
    if !SubnetPlan::PREFIXES.contains(&net.prefix_len()) {
        return Err(format!("`{cidr}`: use a prefix from /{min} (65534 addresses) to /{max} (30 addresses)"));
    }
    if net.trunc() != net {
        return Err(format!("`{cidr}` has host bits set: the subnet is `{}`", net.trunc()));
    }
    SubnetPlan::of(net).ok_or_else(|| format!("`{cidr}` cannot be split into host, DHCP and terminal addresses"))
}

/// Why `subnet` cannot be a new network `name` beside the host's `others` (name, subnet): the
/// first one whose subnet overlaps it, unless it is the network of that name (its adoption is
/// create's rule). Two networks sharing addresses route into each other or fail to start.
fn overlap<'a>(name: &str, subnet: Ipv4Net, others: impl Iterator<Item = (&'a str, Ipv4Net)>) -> Option<String> {
    others
        .filter(|(other, _)| *other != name)
        .find(|(_, s)| s.contains(&subnet.network()) || subnet.contains(&s.network()))
        .map(|(other, s)| {
            format!(
                "`{subnet}` overlaps the libvirt network `{other}` ({s}) on this host: each lab needs a subnet of \
                 its own (labs on shared addresses would reach each other). Pick a free range."
            )
        })
}

/// Linux interface names: at most 15 bytes; kept to `[a-z0-9-]` so they are safe everywhere.
fn bridge_name(bridge: &str) -> Result<(), String> {
    let ok = !bridge.is_empty()
        && bridge.len() <= 15
        && !bridge.starts_with('-')
        && bridge.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(format!("`{bridge}`: use 1-15 characters [a-z0-9-], not starting with '-'")) }
}

#[async_trait]
impl Resource for NetworkResource {
    type State = LabNetworkState;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema { version: 0, block: network_block() }
    }

    async fn validate(&self, config: &LabNetworkState) -> Diagnostics {
        validate_config(config)
    }

    async fn plan(&self, req: PlanRequest<LabNetworkState>) -> Result<Planned<LabNetworkState>, Diagnostics> {
        let mut planned = req.planned;
        let diags = validate_config(&planned);
        if diags.has_errors() {
            return Err(diags);
        }
        // The addresses follow from the subnet alone: known at plan time.
        let subnet = planned.cidr.known().and_then(|c| lab_cidr(c).ok());
        if let Some(plan) = &subnet {
            fill_addresses(&mut planned, plan);
        }
        if req.prior.is_none() {
            if let (Some(name), Some(plan)) = (planned.name.known(), &subnet) {
                let lv = self.libvirt().await?;
                let others = lv.networks().await.or_diag("Listing the host's networks")?;
                let subnets = others.iter().filter_map(|n| Some((n.summary.name.as_str(), n.summary.subnet?)));
                if let Some(why) = overlap(name, plan.net, subnets) {
                    return Err(Diagnostic::attr_error(AttrPath::root("cidr"), "The subnet is taken", why).into());
                }
            }
        }
        let terminals_gone =
            req.prior.as_ref().is_some_and(|p| p.terminals.known() == Some(&true) && p.docker_network.is_null());
        // Stopped out of band: planned to run again (update starts it).
        if req.prior.as_ref().is_some_and(|p| p.active.known() == Some(&false)) {
            planned.active = Attr::Known(true);
        }
        let mut out = Planned::new(planned);
        if terminals_gone {
            out.requires_replace.push(AttrPath::root("docker_network"));
        }
        out.diagnostics = diags;
        Ok(out)
    }

    async fn create(&self, planned: LabNetworkState, ctx: &OpContext) -> Result<LabNetworkState, Diagnostics> {
        let lv = self.libvirt().await?;
        let cfg = NetworkConfig::from_state(&planned)?;
        let name = cfg.spec.name.clone();
        let mut rollback = Rollback::new();
        let steps = async {
            // A network under the planned name that Terraform never recorded (lifecycle.rs has the rule).
            if let Some(found) = lv.lookup_network(&name).await.or_diag("Looking up the network")? {
                if !found.summary.lab_marker {
                    let what = format!("A libvirt network named `{name}`");
                    return Err(exists_unowned(AttrPath::root("name"), TYPE_NAME, &what, &name).into());
                }
                let differs = cfg.spec.differences(&found.summary);
                if differs.is_empty() {
                    log::info(&format!("{name}: adopting the network of an apply that never recorded it"));
                } else {
                    log::info(&format!(
                        "{name}: removing a network of ours that differs from the plan ({}), then creating anew",
                        differs.join(", ")
                    ));
                    remove(&lv, &name).await?;
                }
            }
            if lv.lookup_network(&name).await.or_diag("Looking up the network")?.is_none() {
                let xml = cfg.spec.to_xml().or_diag("Building network XML")?;
                lv.define_network(xml).await.or_diag("Defining the network")?;
            }
            undo_network(&mut rollback, &lv, &name);
            lv.start_network(&name).await.or_diag("Starting the network")?;
            if cfg.terminals {
                let info = lv.lookup_network(&name).await.or_diag("Reading the new network")?;
                let bridge = info.and_then(|i| i.summary.bridge).ok_or_else(|| {
                    Diagnostic::error("Network has no bridge", format!("libvirt reports no bridge for `{name}`"))
                })?;
                let docker = self.provider.docker(TYPE_NAME)?;
                claim_docker_network(docker, &cfg, &on_bridge(&cfg, bridge)).await?;
                let (undo, n2) = (docker.clone(), name.clone());
                rollback.push_with_manual(
                    format!("Docker network {name}"),
                    shell_command(["docker", "-H", docker.host(), "network", "rm", &name]),
                    async move { undo.remove_network(&n2).await.map(|_| ()).map_err(|e| error_chain(&e)) },
                );
            }
            Ok::<_, Diagnostics>(())
        };
        let done = within(cfg.create_timeout, "creating the network", ctx, steps).await;
        rollback.finish(done).await?;
        let info =
            lv.lookup_network(&name).await.or_diag("Reading the new network")?.ok_or_else(|| {
                Diagnostic::error("Network vanished", format!("`{name}` disappeared right after create"))
            })?;
        let mut state = planned;
        refresh_state(&mut state, &info);
        state.docker_network = cfg.terminals.then(|| name.clone()).into();
        Ok(state)
    }

    async fn read(&self, current: LabNetworkState, _ctx: &OpContext) -> Result<Option<LabNetworkState>, Diagnostics> {
        let lv = self.libvirt().await?;
        let found = match (current.id.known(), current.name.known()) {
            (Some(uuid), _) => lv.lookup_network_uuid(uuid).await,
            (None, Some(name)) => lv.lookup_network(name).await,
            (None, None) => return Ok(None),
        }
        .or_diag("Reading the network")?;
        // Removed out of band: gone, so the plan creates it again.
        let Some(info) = found else { return Ok(None) };
        let mut state = current;
        refresh_state(&mut state, &info);
        // The terminals' network removed out of band: null, so the plan replaces the network.
        if state.terminals.known() != Some(&false)
            && let Some(name) = state.docker_network.known().cloned()
        {
            let docker = self.provider.docker(TYPE_NAME)?;
            let found = docker.inspect_network(&name).await.or_diag("Reading the terminals' Docker network")?;
            state.docker_network = found.is_some_and(|n| n.labels == docker_labels(&name)).then_some(name).into();
        }
        Ok(Some(state))
    }

    /// Everything but `timeouts` replaces the network; a stopped one is started again (`active`).
    async fn update(
        &self,
        _prior: LabNetworkState,
        planned: LabNetworkState,
        _ctx: &OpContext,
    ) -> Result<LabNetworkState, Diagnostics> {
        let lv = self.libvirt().await?;
        let name = planned.name.known().cloned().ok_or_else(|| validate::missing(AttrPath::root("name")))?;
        lv.start_network(&name).await.or_diag("Starting the network")?;
        let info = lv.lookup_network(&name).await.or_diag("Reading the network")?.ok_or_else(|| {
            Diagnostic::error(
                "Network vanished",
                format!("`{name}` no longer exists; run `terraform apply` again to re-create it"),
            )
        })?;
        let mut state = planned;
        refresh_state(&mut state, &info);
        Ok(state)
    }

    async fn delete(&self, current: LabNetworkState, ctx: &OpContext) -> Result<(), Diagnostics> {
        let lv = self.libvirt().await?;
        let Some(name) = current.name.known().cloned() else { return Ok(()) };
        let (_, delete_timeout) =
            Timeouts::resolve(current.timeouts.as_ref(), (DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT))?;
        let steps = async {
            if current.terminals.known() != Some(&false) {
                remove_docker_network(self.provider.docker(TYPE_NAME)?, &name).await?;
            }
            let Some(info) = lv.lookup_network(&name).await.or_diag("Looking up the network")? else {
                return Ok(());
            };
            // A network re-created out of band under the same name is not ours to remove.
            if current.id.known().is_some_and(|id| *id != info.summary.uuid) {
                log::debug(&format!(
                    "{name}: network UUID {} is not ours ({:?}); left alone",
                    info.summary.uuid, current.id
                ));
                return Ok(());
            }
            remove(&lv, &name).await
        };
        within(delete_timeout, "deleting the network", ctx, steps).await
    }

    async fn import(&self, id: &str, _ctx: &OpContext) -> Result<Option<LabNetworkState>, Diagnostics> {
        if let Err(why) = validate::name(id) {
            return Err(
                Diagnostic::error("Invalid import id", format!("Import `lab_network` by network name: {why}")).into()
            );
        }
        let lv = self.libvirt().await?;
        let Some(info) = lv.lookup_network(id).await.or_diag("Looking up the network")? else {
            return Ok(None);
        };
        let s = &info.summary;
        let not_a_lab =
            |why: String| Diagnostic::error("Cannot import", format!("Network `{id}` {why}: not a lab_network"));
        let subnet = s.subnet.ok_or_else(|| not_a_lab("has no IPv4 subnet".into()))?;
        if !matches!(s.forward.as_deref(), None | Some("nat")) {
            return Err(not_a_lab(format!("forwards in `{}` mode", s.forward.as_deref().unwrap_or_default())).into());
        }
        // A Docker network of ours for the terminals, if this host's Docker has one.
        let docker_network = match self.provider.docker(TYPE_NAME) {
            Ok(docker) => docker
                .inspect_network(id)
                .await
                .or_diag("Reading the terminals' Docker network")?
                .filter(|n| n.labels == docker_labels(id))
                .map(|n| n.name),
            Err(_) => None,
        };
        let mut state = LabNetworkState {
            name: Attr::Known(s.name.clone()),
            cidr: Attr::Known(subnet.to_string()),
            nat: Attr::Known(s.forward.is_some()),
            terminals: Attr::Known(docker_network.is_some()),
            docker_network: docker_network.into(),
            ..Default::default()
        };
        refresh_state(&mut state, &info);
        Ok(Some(state))
    }
}

/// Run `steps` within `limit`, and stop when Terraform asks (Ctrl-C).
async fn within<T>(
    limit: Duration,
    what: &str,
    ctx: &OpContext,
    steps: impl Future<Output = Result<T, Diagnostics>>,
) -> Result<T, Diagnostics> {
    tokio::select! {
        done = tokio::time::timeout(limit, steps) => done.unwrap_or_else(|_| {
            Err(Diagnostic::error("Timed out", format!("{what} took longer than {limit:?} (`timeouts`)")).into())
        }),
        _ = ctx.cancel.cancelled() => Err(Diagnostic::error("Cancelled", format!("{what} was interrupted")).into()),
    }
}

/// Stop and undefine the network `name`.
async fn remove(lv: &Libvirt, name: &str) -> Result<(), Diagnostics> {
    lv.stop_network(name).await.or_diag("Stopping the network")?;
    lv.undefine_network(name).await.or_diag("Undefining the network")
}

/// Undo step of a create: stop and undefine the network `name`.
fn undo_network(rollback: &mut Rollback, lv: &Libvirt, name: &str) {
    let (lv2, n2) = (lv.clone(), name.to_string());
    let virsh = |verb: &str| shell_command(["virsh", "-c", lv.uri(), verb, name]);
    let by_hand = format!("{}; {}", virsh("net-destroy"), virsh("net-undefine"));
    rollback.push_with_manual(format!("network {name}"), by_hand, async move {
        lv2.stop_network(&n2).await.map_err(|e| error_chain(&e))?;
        lv2.undefine_network(&n2).await.map_err(|e| error_chain(&e))
    });
}

fn docker_labels(name: &str) -> std::collections::BTreeMap<String, String> {
    [(MANAGED_LABEL, "true"), (LABEL_NETWORK, name)].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Where the terminals' Docker network goes: on the libvirt network's bridge, the host's address
/// as its gateway, containers in `terminal_range` (kept out of DHCP).
fn on_bridge(cfg: &NetworkConfig, bridge: String) -> OnBridge {
    let s = &cfg.spec.subnet;
    OnBridge {
        bridge,
        subnet: s.net.to_string(),
        gateway: s.host.to_string(),
        ip_range: s.terminals.to_string(),
        internal: !cfg.spec.nat,
    }
}

/// Make the terminals' Docker network, or take over one of ours that matches (a killed apply's);
/// one of ours that differs is made anew, one not ours is an error.
async fn claim_docker_network(docker: &DockerClient, cfg: &NetworkConfig, on: &OnBridge) -> Result<(), Diagnostics> {
    let name = &cfg.spec.name;
    let labels = docker_labels(name);
    if let Some(found) = docker.inspect_network(name).await.or_diag("Reading the terminals' Docker network")? {
        if found.labels != labels {
            let what = format!("A Docker network named `{name}` (on {})", docker.host());
            return Err(Diagnostic::attr_error(
                AttrPath::root("name"),
                format!("{what} exists already"),
                format!(
                    "{what} exists already and was not made for this lab network, so it is left alone. Remove it, \
                     choose another `name`, or set `terminals = false`."
                ),
            )
            .into());
        }
        let same = found.bridge.as_ref() == Some(&on.bridge)
            && found.subnet.as_ref() == Some(&on.subnet)
            && found.internal == on.internal;
        if same {
            return Ok(());
        }
        remove_docker_network(docker, name).await?;
    }
    docker.create_network_on_bridge(name, &labels, on).await.or_diag("Creating the terminals' Docker network")?;
    Ok(())
}

async fn remove_docker_network(docker: &DockerClient, name: &str) -> Result<(), Diagnostics> {
    match docker.inspect_network(name).await.or_diag("Reading the terminals' Docker network")? {
        Some(n) if n.labels == docker_labels(name) => {}
        // Not ours (or gone): not ours to remove.
        _ => return Ok(()),
    }
    docker.remove_network(name).await.map(|_| ()).map_err(|e| match e {
        crate::backends::docker::DockerError::NetworkInUse { .. } => {
            Diagnostic::from_error("The lab network's terminals still use it: destroy its lab_terminals first", &e)
                .into()
        }
        e => Diagnostics::from(Diagnostic::from_error("Removing the terminals' Docker network", &e)),
    })
}

fn fill_addresses(state: &mut LabNetworkState, plan: &SubnetPlan) {
    state.host_address = Attr::Known(plan.host.to_string());
    state.dhcp_range = Attr::Known(format!("{}-{}", plan.dhcp_start, plan.dhcp_end));
    state.terminal_range = Attr::Known(plan.terminals.to_string());
}

/// Fill the computed attributes (and those that can drift out of band) from libvirt.
fn refresh_state(state: &mut LabNetworkState, info: &NetworkInfo) {
    let s = &info.summary;
    state.id = Attr::Known(s.uuid.clone());
    state.name = Attr::Known(s.name.clone());
    state.bridge = s.bridge.clone().into();
    state.active = Attr::Known(info.active);
    if let Some(plan) = state.cidr.known().and_then(|c| lab_cidr(c).ok()) {
        fill_addresses(state, &plan);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LabNetworkState {
        LabNetworkState {
            name: Attr::Known("lab-ada".into()),
            cidr: Attr::Known("192.168.160.0/24".into()),
            nat: Attr::Known(false),
            terminals: Attr::Known(true),
            ..Default::default()
        }
    }

    fn paths(d: &Diagnostics) -> Vec<String> {
        d.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect()
    }

    #[test]
    fn each_bad_value_is_an_error_on_its_attribute_in_the_users_words() {
        assert!(!validate_config(&config()).has_errors());
        let mut c = config();
        c.name = Attr::Known("Lab_Ada".into());
        c.cidr = Attr::Known("192.168.160.7/24".into());
        c.bridge = Attr::Known("a-bridge-name-too-long".into());
        c.timeouts = Some(Timeouts { create: Attr::Known("soon".into()), delete: Attr::Null });
        let d = validate_config(&c);
        assert_eq!(paths(&d), ["name", "cidr", "bridge", "timeouts.create"]);
        assert!(d.0[1].detail.contains("host bits set: the subnet is `192.168.160.0/24`"), "{:?}", d.0[1]);
        for (cidr, says) in
            [("10.0.0.0/8", "prefix from /16"), ("fe80::/64", "not an IPv4 subnet"), ("10.1.2.0/30", "prefix")]
        {
            c = config();
            c.cidr = Attr::Known(cidr.into());
            let d = validate_config(&c);
            assert_eq!(paths(&d), ["cidr"], "{cidr}");
            assert!(d.0[0].detail.contains(says), "{cidr}: {:?}", d.0[0]);
        }
        // Unknown values (another resource's output) wait for apply.
        c = config();
        c.cidr = Attr::Unknown;
        assert!(!validate_config(&c).has_errors());
    }

    #[test]
    fn the_addresses_are_planned_from_the_subnet() {
        let mut s = config();
        fill_addresses(&mut s, &lab_cidr("192.168.160.0/24").unwrap());
        assert_eq!(s.host_address, Attr::Known("192.168.160.1".into()));
        assert_eq!(s.dhcp_range, Attr::Known("192.168.160.2-192.168.160.223".into()));
        assert_eq!(s.terminal_range, Attr::Known("192.168.160.224/27".into()));
    }

    #[test]
    fn a_new_subnet_must_not_overlap_another_network() {
        let net = |s: &str| s.parse::<Ipv4Net>().expect("subnet");
        let host = [("default", net("192.168.122.0/24")), ("lab-ann", net("192.168.160.0/24"))];
        let others = || host.iter().map(|(n, s)| (*n, *s));
        assert_eq!(overlap("lab-bob", net("192.168.161.0/24"), others()), None);
        let why = overlap("lab-bob", net("192.168.160.0/25"), others()).expect("inside lab-ann");
        assert!(why.contains("`192.168.160.0/25` overlaps the libvirt network `lab-ann` (192.168.160.0/24)"), "{why}");
        assert!(overlap("lab-bob", net("192.168.0.0/16"), others()).is_some(), "contains both");
        assert_eq!(overlap("lab-ann", net("192.168.160.0/24"), others()), None, "its own network: create adopts it");
    }
}
