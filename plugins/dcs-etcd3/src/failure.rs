//! What an etcd error means for the caller: try again, our lease is gone,
//! or the store refused.

use palisade_plugin_api::PluginError;
use tonic::Code;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Worth retrying until the deadline: the store is unreachable, slow,
    /// or electing a leader.
    Transient(String),
    /// Retries ran out (the message says what was tried and why it failed).
    Unreachable(String),
    /// The lease the request used does not exist (any more).
    LeaseGone,
    /// The store refused the request; retrying will not help.
    Refused(String),
}

impl Failure {
    /// The error the host sees; `what` names the operation.
    pub(crate) fn into_plugin_error(self, what: &str) -> PluginError {
        match self {
            Failure::Transient(m) | Failure::Unreachable(m) => PluginError::dcs(format!("{what}: {m}")),
            Failure::LeaseGone => PluginError::dcs(format!("{what}: our lease disappeared from etcd")),
            Failure::Refused(m) => PluginError::dcs(format!("{what}: etcd refused the request: {m}")),
        }
    }
}

const LEASE_NOT_FOUND: &str = "requested lease not found";

pub(crate) fn classify(e: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => {
            let message = format!("{:?}: {}", status.code(), status.message());
            match status.code() {
                Code::NotFound if status.message().contains(LEASE_NOT_FOUND) => Failure::LeaseGone,
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::Cancelled
                | Code::ResourceExhausted
                | Code::Internal
                | Code::Unknown
                | Code::Unauthenticated => Failure::Transient(message),
                _ => Failure::Refused(message),
            }
        }
        E::LeaseKeepAliveError(m) if m.contains("lease not found") => Failure::LeaseGone,
        E::TransportError(_)
        | E::IoError(_)
        | E::WatchError(_)
        | E::LeaseKeepAliveError(_)
        | E::Internal(_)
        | E::EndpointError(_) => Failure::Transient(e.to_string()),
        _ => Failure::Refused(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let status = |code, msg: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg));
        assert_eq!(classify(&status(Code::NotFound, "etcdserver: requested lease not found")), Failure::LeaseGone);
        assert!(matches!(classify(&status(Code::Unavailable, "etcdserver: leader changed")), Failure::Transient(_)));
        assert!(matches!(
            classify(&status(Code::PermissionDenied, "etcdserver: permission denied")),
            Failure::Refused(_)
        ));
        assert_eq!(classify(&etcd_client::Error::LeaseKeepAliveError("lease not found".into())), Failure::LeaseGone);
        let e = Failure::Refused("x".into()).into_plugin_error("get_cluster");
        assert_eq!(e.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert_eq!(e.message, "get_cluster: etcd refused the request: x");
    }

    /// Every failure, whatever its kind, reaches the host as "the DCS is
    /// not accessible", so failsafe mode engages on all of them (Patroni
    /// only on some: its issue #3572).
    #[test]
    fn every_failure_is_a_dcs_error() {
        let status = |code, msg: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg));
        let errors = [
            ("timeout", status(Code::DeadlineExceeded, "context deadline exceeded")),
            ("no quorum", status(Code::Unavailable, "etcdserver: no leader")),
            ("leader changed", status(Code::Unavailable, "etcdserver: leader changed")),
            (
                "authentication",
                status(Code::InvalidArgument, "etcdserver: authentication failed, invalid user ID or password"),
            ),
            ("token expired", status(Code::Unauthenticated, "etcdserver: invalid auth token")),
            ("permission", status(Code::PermissionDenied, "etcdserver: permission denied")),
            ("too many requests", status(Code::ResourceExhausted, "etcdserver: too many requests")),
            ("lease gone", status(Code::NotFound, "etcdserver: requested lease not found")),
            (
                "refused connection",
                etcd_client::Error::IoError(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            ),
            ("bad endpoint", etcd_client::Error::InvalidArgs("no endpoint".into())),
        ];
        for (what, e) in errors {
            let err = classify(&e).into_plugin_error("update_leader");
            assert_eq!(err.kind, palisade_plugin_api::ErrorKind::DcsUnavailable, "{what}: {err}");
        }
    }
}
