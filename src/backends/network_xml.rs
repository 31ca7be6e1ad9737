//! libvirt network XML for `lab_network`, written with quick-xml's writer (escaping by
//! construction, as domain_xml.rs does) and read back (`NetworkSummary::parse`) for refresh,
//! import and the objects a killed apply left.
//!
//! A lab network is one bridge with one IPv4 subnet: the host holds the first address, DHCP hands
//! out the addresses after it, and the last eighth of the subnet is kept out of DHCP for the
//! lab's terminal containers (Docker assigns those). Without NAT the network has no `<forward>`:
//! libvirt's isolated mode, whose firewall rules reject everything routed into or out of the
//! bridge, so labs never reach each other; guests on the bridge and the host still do.

use std::io::Cursor;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use quick_xml::Writer;
use quick_xml::events::BytesText;

use super::xml_read;

/// Namespace of the ownership marker `<metadata><lab:network>`.
pub const LAB_NETWORK_XMLNS: &str = "https://classroom.lab/xmlns/network/1";

#[derive(Debug, thiserror::Error)]
pub enum NetworkXmlError {
    #[error("writing network XML for {name}: {source}")]
    Write { name: String, source: std::io::Error },
    #[error("parsing network XML: {0}")]
    Parse(String),
}

/// The addresses of a lab subnet: who gets which part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetPlan {
    pub net: Ipv4Net,
    /// The host's address on the bridge: the guests' gateway and DNS server.
    pub host: Ipv4Addr,
    pub dhcp_start: Ipv4Addr,
    pub dhcp_end: Ipv4Addr,
    /// Kept out of DHCP: the addresses Docker gives the lab's terminal containers.
    pub terminals: Ipv4Net,
}

impl SubnetPlan {
    /// Smallest and largest prefix lengths a lab subnet may have: a /16 is 65534 guests, a /27
    /// still leaves 25 addresses for DHCP and 2 for terminals.
    pub const PREFIXES: std::ops::RangeInclusive<u8> = 16..=27;

    /// `None` unless `net` is a network address (no host bits) with a prefix in `PREFIXES`.
    pub fn of(net: Ipv4Net) -> Option<Self> {
        if !Self::PREFIXES.contains(&net.prefix_len()) || net.trunc() != net {
            return None;
        }
        let base = u32::from(net.network());
        let terminals =
            Ipv4Net::new(Ipv4Addr::from(base + (1 << (32 - net.prefix_len())) / 8 * 7), net.prefix_len() + 3).ok()?;
        Some(SubnetPlan {
            net,
            host: Ipv4Addr::from(base + 1),
            dhcp_start: Ipv4Addr::from(base + 2),
            dhcp_end: Ipv4Addr::from(u32::from(terminals.network()) - 1),
            terminals,
        })
    }
}

/// Everything `lab_network` puts into a network definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub uuid: Option<String>,
    /// `None`: libvirt picks a free `virbrN`.
    pub bridge: Option<String>,
    pub subnet: SubnetPlan,
    /// `<forward mode='nat'/>`: guests reach beyond the host through masquerading.
    pub nat: bool,
}

impl NetworkSpec {
    pub fn to_xml(&self) -> Result<String, NetworkXmlError> {
        let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
        self.write(&mut w).map_err(|source| NetworkXmlError::Write { name: self.name.clone(), source })?;
        String::from_utf8(w.into_inner().into_inner()).map_err(|e| NetworkXmlError::Parse(e.to_string()))
    }

    /// What a defined network holds differently from this spec, by field name (empty: it is this
    /// definition). The UUID is libvirt's; the bridge is compared only when the spec names one.
    pub fn differences(&self, found: &NetworkSummary) -> Vec<&'static str> {
        let s = &self.subnet;
        let checks = [
            ("bridge", self.bridge.is_none() || found.bridge == self.bridge),
            ("cidr", found.subnet == Some(s.net) && found.host == Some(s.host)),
            ("dhcp", found.dhcp == Some((s.dhcp_start, s.dhcp_end))),
            ("nat", found.forward.as_deref() == self.nat.then_some("nat")),
        ];
        checks.into_iter().filter(|(_, same)| !same).map(|(field, _)| field).collect()
    }

    fn write(&self, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
        let s = &self.subnet;
        w.create_element("network").write_inner_content(|w| {
            text(w, "name", &self.name)?;
            if let Some(uuid) = &self.uuid {
                text(w, "uuid", uuid)?;
            }
            w.create_element("metadata").write_inner_content(|w| {
                w.create_element("lab:network")
                    .with_attribute(("xmlns:lab", LAB_NETWORK_XMLNS))
                    .write_inner_content(|w| text(w, "lab:cidr", &s.net.to_string()))?;
                Ok(())
            })?;
            if self.nat {
                w.create_element("forward").with_attribute(("mode", "nat")).write_empty()?;
            }
            let bridge = w.create_element("bridge").with_attributes([("stp", "off"), ("delay", "0")]);
            match &self.bridge {
                Some(name) => bridge.with_attribute(("name", name.as_str())).write_empty()?,
                None => bridge.write_empty()?,
            };
            let (host, mask) = (s.host.to_string(), s.net.netmask().to_string());
            w.create_element("ip")
                .with_attributes([("address", host.as_str()), ("netmask", mask.as_str())])
                .write_inner_content(|w| {
                    w.create_element("dhcp").write_inner_content(|w| {
                        let (start, end) = (s.dhcp_start.to_string(), s.dhcp_end.to_string());
                        w.create_element("range")
                            .with_attributes([("start", start.as_str()), ("end", end.as_str())])
                            .write_empty()?;
                        Ok(())
                    })?;
                    Ok(())
                })?;
            Ok(())
        })?;
        Ok(())
    }
}

fn text(w: &mut Writer<Cursor<Vec<u8>>>, tag: &str, value: &str) -> std::io::Result<()> {
    w.create_element(tag).write_text_content(BytesText::new(value))?;
    Ok(())
}

/// What the provider reads back from a defined network (`virNetworkGetXMLDesc`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkSummary {
    pub name: String,
    pub uuid: String,
    pub bridge: Option<String>,
    /// `<forward mode=...>`; `None` is libvirt's isolated network.
    pub forward: Option<String>,
    /// The first IPv4 `<ip>`: the host's address and the subnet it is in.
    pub host: Option<Ipv4Addr>,
    pub subnet: Option<Ipv4Net>,
    pub dhcp: Option<(Ipv4Addr, Ipv4Addr)>,
    /// The network carries this provider's marker: a `<metadata>` child `<lab:network>` declaring
    /// `xmlns:lab` as [`LAB_NETWORK_XMLNS`].
    pub lab_marker: bool,
}

impl NetworkSummary {
    pub fn parse(xml: &str) -> Result<Self, NetworkXmlError> {
        let mut s = NetworkSummary::default();
        // The DHCP range of the <ip> being read: it ends before its <ip>, which decides whether it
        // counts (only the first IPv4 <ip> does; libvirt allows one per family with DHCP).
        let mut range: Option<(Ipv4Addr, Ipv4Addr)> = None;
        xml_read::walk(xml, |path, attrs, text| {
            match path {
                ["network", "name"] => s.name = text,
                ["network", "uuid"] => s.uuid = text,
                ["network", "metadata", "lab:network"] => {
                    s.lab_marker = attrs.get("xmlns:lab").is_some_and(|ns| ns == LAB_NETWORK_XMLNS);
                }
                ["network", "forward"] => s.forward = attrs.get("mode").cloned().or(Some("nat".into())),
                ["network", "bridge"] => s.bridge = attrs.get("name").cloned(),
                ["network", "ip", "dhcp", "range"] if range.is_none() => {
                    let addr = |k: &str| attrs.get(k).and_then(|a| a.parse::<Ipv4Addr>().ok());
                    range = addr("start").zip(addr("end"));
                }
                ["network", "ip"] => {
                    let this_range = range.take();
                    if s.host.is_some() || attrs.get("family").is_some_and(|f| f != "ipv4") {
                        return Ok(());
                    }
                    let host: Option<Ipv4Addr> = attrs.get("address").and_then(|a| a.parse().ok());
                    let prefix = match (attrs.get("prefix"), attrs.get("netmask")) {
                        (Some(p), _) => p.parse::<u8>().ok(),
                        (None, Some(m)) => m.parse::<Ipv4Addr>().ok().and_then(|m| ipnet::ipv4_mask_to_prefix(m).ok()),
                        (None, None) => None,
                    };
                    if let (Some(host), Some(prefix)) = (host, prefix) {
                        s.host = Some(host);
                        s.subnet = Ipv4Net::new(host, prefix).ok().map(|n| n.trunc());
                        s.dhcp = this_range;
                    }
                }
                _ => {}
            }
            Ok(())
        })
        .map_err(NetworkXmlError::Parse)?;
        if s.name.is_empty() {
            return Err(NetworkXmlError::Parse("no <network><name>".into()));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NetworkSpec {
        NetworkSpec {
            name: "lab-ada".into(),
            uuid: None,
            bridge: Some("lab-ada".into()),
            subnet: SubnetPlan::of("192.168.160.0/24".parse().unwrap()).unwrap(),
            nat: false,
        }
    }

    #[test]
    fn a_subnet_is_split_into_host_dhcp_and_terminals() {
        let p = SubnetPlan::of("192.168.160.0/24".parse().unwrap()).unwrap();
        assert_eq!(p.host, Ipv4Addr::new(192, 168, 160, 1));
        assert_eq!((p.dhcp_start, p.dhcp_end), (Ipv4Addr::new(192, 168, 160, 2), Ipv4Addr::new(192, 168, 160, 223)));
        assert_eq!(p.terminals.to_string(), "192.168.160.224/27");
        let small = SubnetPlan::of("10.0.0.32/27".parse().unwrap()).unwrap();
        assert_eq!(small.dhcp_end, Ipv4Addr::new(10, 0, 0, 59));
        assert_eq!(small.terminals.to_string(), "10.0.0.60/30");
        let big = SubnetPlan::of("10.8.0.0/16".parse().unwrap()).unwrap();
        assert_eq!(big.terminals.to_string(), "10.8.224.0/19");
        for bad in ["192.168.160.1/24", "10.0.0.0/8", "10.0.0.0/28"] {
            assert_eq!(SubnetPlan::of(bad.parse().unwrap()), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_and_is_isolated_unless_nat() {
        let xml = spec().to_xml().unwrap();
        assert!(!xml.contains("<forward"), "{xml}");
        assert!(xml.contains("<range start=\"192.168.160.2\" end=\"192.168.160.223\"/>"), "{xml}");
        let back = NetworkSummary::parse(&xml).unwrap();
        assert!(back.lab_marker);
        assert_eq!(back.forward, None);
        assert_eq!(back.bridge.as_deref(), Some("lab-ada"));
        assert_eq!(spec().differences(&back), Vec::<&str>::new());

        let mut nat = spec();
        nat.nat = true;
        nat.bridge = None;
        let back = NetworkSummary::parse(&nat.to_xml().unwrap()).unwrap();
        assert_eq!(back.forward.as_deref(), Some("nat"));
        assert_eq!(back.bridge, None);
        assert_eq!(spec().differences(&back), ["bridge", "nat"]);
    }

    #[test]
    fn hostile_names_are_escaped() {
        let mut s = spec();
        s.name = "n'\"<&>".into();
        let xml = s.to_xml().unwrap();
        assert!(xml.contains("<name>n&apos;&quot;&lt;&amp;&gt;</name>"), "{xml}");
        assert_eq!(NetworkSummary::parse(&xml).unwrap().name, "n'\"<&>");
    }

    #[test]
    fn parses_what_libvirt_writes_back() {
        let xml = "<network>\n  <name>labnet</name>\n  <uuid>b1039</uuid>\n  <forward mode='route'/>\n  \
                   <bridge name='labbr0' stp='off' delay='0'/>\n  <mac address='52:54:00:3f:45:bd'/>\n  \
                   <ip address='192.168.150.1' netmask='255.255.255.0'>\n    <dhcp>\n      \
                   <range start='192.168.150.100' end='192.168.150.250'/>\n    </dhcp>\n  </ip>\n</network>\n";
        let s = NetworkSummary::parse(xml).unwrap();
        assert_eq!(s.uuid, "b1039");
        assert_eq!(s.forward.as_deref(), Some("route"));
        assert_eq!(s.subnet.unwrap().to_string(), "192.168.150.0/24");
        assert_eq!(s.dhcp, Some((Ipv4Addr::new(192, 168, 150, 100), Ipv4Addr::new(192, 168, 150, 250))));
        assert!(!s.lab_marker);
    }
}
