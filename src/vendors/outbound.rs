//! Where vendor calls may go. A connection's `settings.baseUrl` and an SMTP `settings.host`
//! are chosen by a client, so without a check they could point Herald at its own loopback
//! services, the private network or a cloud metadata endpoint, and the send error or the
//! health view would tell whether something answered there (server-side request forgery).
//!
//! Only public unicast addresses are called, unless the operator names a host, address or
//! network in `HERALD_OUTBOUND_ALLOW` (e.g. a relay on the LAN, or a vendor stand-in in tests).
//! The check runs where the address is used: the HTTP client's resolver drops forbidden
//! addresses of every name it resolves for a connection (so a name that resolves to a public
//! address when the connection is saved and to `127.0.0.1` when a message is sent, DNS
//! rebinding, still never reaches loopback), literal addresses are checked before a request,
//! and SMTP connects to an address it resolved and checked itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The operator's exceptions to "public addresses only".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Host names allowed whatever they resolve to, lower-cased.
    hosts: Vec<String>,
    /// Networks (an address is a /32 or /128) allowed.
    nets: Vec<(IpAddr, u8)>,
}

impl OutboundPolicy {
    /// Parses `HERALD_OUTBOUND_ALLOW`: a comma-separated list of host names, addresses and
    /// CIDR networks (`relay.lan, 10.1.2.3, 192.168.0.0/16, ::1`). Empty allows nothing extra.
    pub fn parse(list: &str) -> Result<OutboundPolicy, String> {
        let mut policy = OutboundPolicy::default();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Some((addr, bits)) = item.split_once('/') {
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| format!("HERALD_OUTBOUND_ALLOW: {item:?} is not a network"))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let bits: u8 =
                    bits.parse().ok().filter(|b| *b <= max).ok_or_else(|| {
                        format!("HERALD_OUTBOUND_ALLOW: {item:?} has a bad prefix")
                    })?;
                policy.nets.push((addr, bits));
            } else if let Ok(addr) = item.trim_matches(['[', ']']).parse::<IpAddr>() {
                policy
                    .nets
                    .push((addr, if addr.is_ipv4() { 32 } else { 128 }));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                policy.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "HERALD_OUTBOUND_ALLOW: {item:?} is not a host name, address or network"
                ));
            }
        }
        Ok(policy)
    }

    /// Whether a vendor call may connect to `ip`.
    pub fn permits_ip(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.nets.iter().any(|(net, bits)| in_net(ip, *net, *bits))
    }

    /// Whether `host` is named in the allow list (then any address it resolves to is fine).
    pub fn names(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Resolves `host` and keeps the addresses a call may go to: all of them for a host named
    /// in the allow list, else the permitted ones. An error says why nothing is left.
    pub async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return if self.permits_ip(ip) || self.names(host) {
                Ok(vec![SocketAddr::new(ip, port)])
            } else {
                Err(refused(host))
            };
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        if self.names(host) {
            return Ok(found);
        }
        let kept: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| self.permits_ip(a.ip()))
            .collect();
        if kept.is_empty() {
            Err(refused(host))
        } else {
            Ok(kept)
        }
    }

    /// The refusal for a literal address in a URL or setting, if it is one Herald may not call.
    pub fn check_literal(&self, host: &str) -> Result<(), String> {
        match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) if !self.permits_ip(ip) && !self.names(host) => Err(refused(host).to_string()),
            _ => Ok(()),
        }
    }
}

fn refused(host: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "{host} is (or resolves only to) a loopback, private, link-local or otherwise non-public address, which vendor calls may not reach; an operator can allow it in HERALD_OUTBOUND_ALLOW"
        ),
    )
}

/// Whether `ip` is in `net/bits`.
fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (canonical(ip), canonical(net)) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A globally routable unicast address: not loopback, private, link-local (where cloud
/// metadata services answer), shared (CGNAT), unspecified, broadcast, multicast, reserved,
/// documentation or benchmarking space, nor an IPv6 form of one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address: judge that one.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [hi, lo] = [segments[6], segments[7]];
        return public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if segments[0] == 0x2002 {
        return public_v4(Ipv4Addr::from(
            (u32::from(segments[1]) << 16) | u32::from(segments[2]),
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || segments[0] == 0x2001 && segments[1] == 0x0db8 // documentation
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
}

/// The HTTP client and policy vendor adapters call out with.
#[derive(Clone)]
pub struct Outbound {
    pub http: reqwest::Client,
    pub policy: Arc<OutboundPolicy>,
}

impl Outbound {
    /// A client whose every name lookup goes through `policy`, with a whole-request timeout and
    /// no redirects (a vendor API that redirects is misconfigured, and following one would
    /// resend credentials).
    pub fn new(timeout: Duration, policy: Arc<OutboundPolicy>) -> Outbound {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .build()
            .expect("the rustls HTTP client builds with a static configuration");
        Outbound { http, policy }
    }
}

/// reqwest's resolver for vendor calls: only the addresses the policy permits.
struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addrs = policy.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_unicast_addresses_are_called() {
        for forbidden in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.170",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip(forbidden)), "{forbidden} counted as public");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(public)), "{public} refused");
        }
    }

    #[test]
    fn the_allow_list_names_hosts_addresses_and_networks() {
        let policy = OutboundPolicy::parse(" relay.LAN , 127.0.0.1, 10.0.0.0/8, [::1] ").unwrap();
        assert!(policy.permits_ip(ip("127.0.0.1")));
        assert!(!policy.permits_ip(ip("127.0.0.2")));
        assert!(policy.permits_ip(ip("10.200.3.4")));
        assert!(policy.permits_ip(ip("::ffff:10.1.1.1")));
        assert!(policy.permits_ip(ip("::1")));
        assert!(!policy.permits_ip(ip("192.168.0.1")));
        assert!(policy.names("relay.lan."));
        assert!(!policy.names("other.lan"));
        assert!(policy.check_literal("169.254.169.254").is_err());
        assert!(policy.check_literal("10.9.9.9").is_ok());
        assert!(policy.check_literal("example.com").is_ok());
        for bad in ["10.0.0.0/33", "not a host!", "1.2.3.4/x"] {
            assert!(OutboundPolicy::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            OutboundPolicy::parse("").unwrap(),
            OutboundPolicy::default()
        );
    }

    #[tokio::test]
    async fn names_resolving_to_forbidden_addresses_are_refused() {
        let strict = OutboundPolicy::default();
        let error = strict.resolve("localhost", 80).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(strict.resolve("127.0.0.1", 80).await.is_err());
        let allowed = OutboundPolicy::parse("localhost").unwrap();
        assert!(!allowed.resolve("localhost", 80).await.unwrap().is_empty());
    }
}
