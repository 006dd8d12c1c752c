//! Discovery: the cluster view on etcd (Dynamo's discovery plane). Workers register their ready
//! endpoints under one lease; the frontend role lists every registered instance from a watched
//! cache. etcd is never in the path of local health: everything here runs on its own threads and
//! only ever reads the local state.

pub mod resolve;
