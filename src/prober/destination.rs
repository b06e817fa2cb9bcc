//! Where a probe may connect: [`DestinationPolicy`], a list of denied address ranges with
//! holes punched by allowed ones, checked on the address actually dialled — IP literals
//! before the request, names after DNS resolution ([`FilteringResolver`], so a name that
//! resolves to `127.0.0.1` is refused however it is spelled; DNS rebinding gains nothing
//! because the checked addresses are the ones connected to). Redirects are never followed
//! (see `session::http_client`), so a server cannot bounce the prober elsewhere.
//!
//! The operator probes remote servers (without a gateway) under a policy: by default
//! loopback, link-local (cloud metadata at 169.254.169.254), "this host" and the API
//! server's own addresses are refused (`--probe-denied-cidrs`, `--probe-allowed-cidrs`).
//! The `mcp-operator probe` command, run by hand, has no policy.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use url::{Host, Url};

use super::error::ProbeError;

/// The default of `--probe-denied-cidrs`: loopback, "this host", link-local (IPv4 and
/// IPv6). IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are checked as IPv4.
pub const DEFAULT_DENIED_CIDRS: &str =
    "127.0.0.0/8,0.0.0.0/8,169.254.0.0/16,::1/128,::/128,fe80::/10";

/// An address range: `10.0.0.0/8`, `fd00::/8`, or one address (`/32`, `/128` implied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address range (e.g. 10.0.0.0/8, fd00::/8, 127.0.0.1)")]
pub struct InvalidCidr(String);

impl Cidr {
    /// The range of `network`/`prefix` (host bits are cleared).
    pub fn new(network: IpAddr, prefix: u8) -> Option<Self> {
        let max = max_prefix(network);
        (prefix <= max).then(|| Self {
            network: mask(network, prefix),
            prefix,
        })
    }

    /// The single address `ip`.
    pub fn host(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        Self {
            network: ip,
            prefix: max_prefix(ip),
        }
    }

    /// Whether `ip` (IPv4-mapped IPv6 taken as IPv4) lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidCidr(s.to_owned());
        let t = s.trim();
        match t.split_once('/') {
            None => t.parse::<IpAddr>().map(Cidr::host).map_err(|_| bad()),
            Some((ip, prefix)) => {
                let ip: IpAddr = ip.parse().map_err(|_| bad())?;
                let prefix: u8 = prefix.parse().map_err(|_| bad())?;
                // A mapped network (::ffff:10.0.0.0/104) is the IPv4 one.
                match (ip.to_canonical(), ip) {
                    (IpAddr::V4(v4), IpAddr::V6(_)) if prefix >= 96 => {
                        Cidr::new(IpAddr::V4(v4), prefix - 96)
                    }
                    _ => Cidr::new(ip, prefix),
                }
                .ok_or_else(bad)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A comma-separated list of ranges, as given on the command line (empty: none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrList(pub Vec<Cidr>);

impl FromStr for CidrList {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(CidrList)
    }
}

impl fmt::Display for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Which addresses a probe may connect to: refused when a denied range holds the address
/// and no allowed range does (allowed ranges punch holes, also in added denials such as
/// the API server's addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationPolicy {
    denied: Vec<Cidr>,
    allowed: Vec<Cidr>,
}

impl Default for DestinationPolicy {
    /// The operator's default: [`DEFAULT_DENIED_CIDRS`], nothing allowed.
    fn default() -> Self {
        let denied = DEFAULT_DENIED_CIDRS
            .parse::<CidrList>()
            .expect("the default list parses")
            .0;
        Self {
            denied,
            allowed: Vec::new(),
        }
    }
}

impl DestinationPolicy {
    /// Refuses `denied` except `allowed`.
    pub fn new(denied: Vec<Cidr>, allowed: Vec<Cidr>) -> Self {
        Self { denied, allowed }
    }

    /// Allows every address (`mcp-operator dev`, where every server is on loopback).
    pub fn allow_all() -> Self {
        let all = ["0.0.0.0/0", "::/0"].map(|c| c.parse().expect("valid range"));
        Self::new(Vec::new(), all.to_vec())
    }

    /// The default with loopback allowed (tests whose remote servers listen on loopback).
    pub fn allow_loopback() -> Self {
        let loopback = ["127.0.0.0/8", "::1/128"].map(|c| c.parse().expect("valid range"));
        Self {
            allowed: loopback.to_vec(),
            ..Self::default()
        }
    }

    /// This policy with `more` denied as well.
    pub fn with_denied(&self, more: impl IntoIterator<Item = Cidr>) -> Self {
        let mut out = self.clone();
        for c in more {
            if !out.denied.contains(&c) {
                out.denied.push(c);
            }
        }
        out
    }

    /// The denied ranges.
    pub fn denied(&self) -> &[Cidr] {
        &self.denied
    }

    /// The allowed ranges.
    pub fn allowed(&self) -> &[Cidr] {
        &self.allowed
    }

    /// The denied range holding `ip`, unless an allowed range holds it too.
    pub fn denying(&self, ip: IpAddr) -> Option<Cidr> {
        if self.allowed.iter().any(|c| c.contains(ip)) {
            return None;
        }
        self.denied.iter().copied().find(|c| c.contains(ip))
    }

    /// Checks the host of `url` when it is an IP address (names are checked once
    /// resolved, by [`FilteringResolver`]).
    pub fn check_url(&self, url: &Url, shown: &str) -> Result<(), ProbeError> {
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        match self.denying(ip) {
            Some(range) => Err(denied(shown, ip, range)),
            None => Ok(()),
        }
    }
}

fn denied(shown: &str, ip: IpAddr, range: Cidr) -> ProbeError {
    ProbeError::DestinationDenied(format!(
        "{shown}: address {ip} is in the denied range {range}; the operator does not probe \
         it (see --probe-denied-cidrs and --probe-allowed-cidrs)"
    ))
}

/// A DNS resolver that resolves with the system resolver and drops every denied address;
/// when none is left the lookup fails with `DestinationDenied`, before any connection.
#[derive(Clone, Debug)]
pub struct FilteringResolver {
    policy: Arc<DestinationPolicy>,
}

impl FilteringResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<DestinationPolicy>) -> Self {
        Self { policy }
    }

    /// The addresses of `resolved` that `policy` allows; Err names the first refusal when
    /// none is allowed.
    pub fn filter(
        policy: &DestinationPolicy,
        name: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, ProbeError> {
        let mut kept = Vec::new();
        let mut refused = None;
        for addr in resolved {
            match policy.denying(addr.ip()) {
                None => kept.push(addr),
                Some(range) => {
                    refused.get_or_insert((addr.ip(), range));
                }
            }
        }
        match (kept.is_empty(), refused) {
            (true, Some((ip, range))) => Err(denied(&format!("host {name}"), ip, range)),
            _ => Ok(kept),
        }
    }
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept = Self::filter(&policy, &host, resolved)?;
            if kept.is_empty() {
                return Err(format!("{host}: no address").into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
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
    fn the_default_refuses_loopback_link_local_and_this_host_in_every_spelling() {
        let p = DestinationPolicy::default();
        for bad in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "169.254.169.254",
            "169.254.0.1",
            "::1",
            "::",
            "fe80::1",
            "febf::ffff",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
        ] {
            assert!(p.denying(ip(bad)).is_some(), "{bad} must be denied");
        }
        for good in [
            "10.0.0.1",
            "8.8.8.8",
            "172.18.0.2",
            "fd00::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "169.255.0.1",
            "128.0.0.1",
        ] {
            assert_eq!(p.denying(ip(good)), None, "{good} must be allowed");
        }
    }

    #[test]
    fn allowed_ranges_punch_holes_and_denials_can_be_added() {
        let api: Cidr = "10.96.0.1".parse().unwrap();
        let p = DestinationPolicy::default().with_denied([api]);
        assert_eq!(p.denying(ip("10.96.0.1")), Some(api));
        assert_eq!(p.denying(ip("::ffff:10.96.0.1")), Some(api));
        assert_eq!(p.denying(ip("10.96.0.2")), None);
        let lo = DestinationPolicy::allow_loopback();
        assert_eq!(lo.denying(ip("127.0.0.1")), None);
        assert_eq!(lo.denying(ip("::1")), None);
        assert!(lo.denying(ip("169.254.169.254")).is_some());
        let all = DestinationPolicy::allow_all().with_denied([api]);
        assert_eq!(all.denying(ip("10.96.0.1")), None);
        assert_eq!(all.denying(ip("127.0.0.1")), None);
    }

    #[test]
    fn ranges_parse_print_and_match() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")) && !c.contains(ip("11.0.0.0")));
        assert_eq!(
            "::ffff:10.0.0.0/104".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("fd00::/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("1.2.3.4")));
        assert!(!"0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("::2")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "x",
            "10.0.0.0/",
            "/8",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let list: CidrList = " 10.0.0.0/8 , fd00::/8,".parse().unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,fd00::/8");
        assert_eq!("".parse::<CidrList>().unwrap(), CidrList::default());
        assert!("10.0.0.0/8,nope".parse::<CidrList>().is_err());
        let default: CidrList = DEFAULT_DENIED_CIDRS.parse().unwrap();
        assert_eq!(default.to_string(), DEFAULT_DENIED_CIDRS);
    }

    #[test]
    fn urls_with_denied_ip_hosts_are_refused_before_connecting() {
        let p = DestinationPolicy::default();
        for bad in [
            "http://127.0.0.1:8080/mcp",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/mcp",
            "http://[::ffff:7f00:1]/mcp",
            "http://2130706433/mcp",
            "http://0x7f.1/mcp",
            "http://0/mcp",
            "https://[fe80::1]/mcp",
        ] {
            let url = Url::parse(bad).unwrap();
            let e = p.check_url(&url, bad).unwrap_err();
            assert_eq!(
                e.code(),
                super::super::ProbeErrorCode::DestinationDenied,
                "{bad}"
            );
        }
        // Names are left to the resolver.
        for ok in [
            "http://localhost/mcp",
            "https://example.com/mcp",
            "http://10.0.0.1/",
        ] {
            assert!(p.check_url(&Url::parse(ok).unwrap(), ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn resolved_addresses_are_filtered_and_all_denied_is_an_error() {
        let p = DestinationPolicy::default();
        let sa = |s: &str| SocketAddr::new(ip(s), 0);
        let mixed = FilteringResolver::filter(&p, "h", [sa("127.0.0.1"), sa("10.0.0.1")]);
        assert_eq!(mixed.unwrap(), [sa("10.0.0.1")]);
        let e = FilteringResolver::filter(&p, "h", [sa("127.0.0.1"), sa("::1")]).unwrap_err();
        assert_eq!(e.code(), super::super::ProbeErrorCode::DestinationDenied);
        assert!(e.message().contains("127.0.0.1"), "{e}");
        assert!(FilteringResolver::filter(&p, "h", []).unwrap().is_empty());
    }

    #[tokio::test]
    async fn localhost_resolves_to_nothing_allowed() {
        use reqwest::dns::Resolve;
        let r = FilteringResolver::new(Arc::new(DestinationPolicy::default()));
        let err = r
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("refused");
        let p = err.downcast_ref::<ProbeError>().expect("a ProbeError");
        assert_eq!(p.code(), super::super::ProbeErrorCode::DestinationDenied);
        let open = FilteringResolver::new(Arc::new(DestinationPolicy::allow_loopback()));
        let addrs: Vec<_> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
