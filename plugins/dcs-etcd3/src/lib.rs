//! The etcd v3 DCS plugin (work in progress).
