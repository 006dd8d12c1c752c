//! Name resolution for `ETCD_ENDPOINTS` hosts without NSS (placeholder; being written).
