//! Name resolution for `ETCD_ENDPOINTS` hosts without NSS (placeholder: IP literals only; the
//! hosts-file and DNS resolver replaces it).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

pub struct Resolver;

impl Resolver {
    pub fn system() -> Resolver {
        Resolver
    }

    pub fn lookup(
        &self,
        host: &str,
        port: u16,
        _deadline: Instant,
    ) -> Result<Vec<SocketAddr>, String> {
        if host == "localhost" {
            return Ok(vec![SocketAddr::new([127, 0, 0, 1].into(), port)]);
        }
        host.parse::<IpAddr>()
            .map(|ip| vec![SocketAddr::new(ip, port)])
            .map_err(|_| format!("{host}: no such host"))
    }
}
