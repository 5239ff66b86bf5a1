//! Host lookups for the agent: cached, and without a thread per request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a looked-up address is reused (curl's default DNS cache time).
const DNS_CACHE_TTL: Duration = Duration::from_secs(60);

/// Host lookups without a thread per request. ureq's default resolver looks the host up before it checks
/// its connection pool, and with a timeout set it starts a thread for every lookup: a thread per request.
/// An IP literal needs no lookup; a name is looked up (by ureq, bounded by the timeout) once a minute.
/// `ureq::unversioned` is not covered by ureq's semver: Cargo.lock pins the version this was written for.
#[derive(Debug, Default)]
pub(super) struct CachingResolver {
    /// By scheme and authority as written in the URL (a client talks to one host, so this stays short).
    cache: Mutex<Vec<Resolved>>,
    lookup: DefaultResolver,
    /// The proxy every connection goes to, when one is set: its name is looked up instead of the server's,
    /// which only the proxy may be able to look up.
    proxy: Option<(Uri, String)>,
}

#[derive(Debug)]
struct Resolved {
    https: bool,
    authority: String,
    /// When a name was looked up; `None` for an IP literal, which never expires.
    at: Option<Instant>,
    addrs: ResolvedSocketAddrs,
}

/// Hosts whose addresses are kept at once.
const DNS_CACHE_ENTRIES: usize = 8;

impl CachingResolver {
    pub(super) fn new(proxy: Option<&crate::config::Proxy>) -> CachingResolver {
        let proxy = proxy.and_then(|p| Some((Uri::try_from(p.url()).ok()?, p.url())));
        CachingResolver { proxy, ..Default::default() }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Vec<Resolved>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let Some((proxy, name)) = &self.proxy else {
            return self.resolve_uri(uri, config, timeout);
        };
        self.resolve_uri(proxy, config, timeout).map_err(|e| match e {
            ureq::Error::HostNotFound => super::PathError::carry(crate::error::Error::new(
                crate::error::ErrorKind::Network,
                format!("the proxy {name}: its host name does not resolve (DNS)"),
            )),
            other => other,
        })
    }
}

impl CachingResolver {
    fn resolve_uri(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(authority) = uri.authority() else {
            return self.lookup.resolve(uri, config, timeout);
        };
        let https = uri.scheme_str() == Some("https");
        let fresh = |r: &Resolved| r.at.is_none_or(|at| at.elapsed() < DNS_CACHE_TTL);
        if let Some(r) = self.cache().iter().find(|r| r.https == https && r.authority == authority.as_str()) {
            if fresh(r) {
                return Ok(r.addrs.clone());
            }
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority.host();
        let (at, addrs) = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                (None, addrs)
            }
            Err(_) => (Some(Instant::now()), self.lookup.resolve(uri, config, timeout)?),
        };
        let mut cache = self.cache();
        cache.retain(|r| !(r.https == https && r.authority == authority.as_str()) && fresh(r));
        if cache.len() >= DNS_CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push(Resolved { https, authority: authority.as_str().to_string(), at, addrs: addrs.clone() });
        Ok(addrs)
    }
}
