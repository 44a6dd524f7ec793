//! Asking other members for their status (`GET /patroni`) during the
//! leader race, as Patroni does: all at once, two seconds each, no retry.

use std::time::Duration;

use palisade_ha::PeerStatus;
use palisade_model::Member;

/// How long a member may take to answer; a slow member is most likely an
/// unhealthy one (Patroni uses the same two seconds).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
}

impl PeerClient {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// Fetch the status of one member.
    pub async fn status(&self, member: &Member) -> PeerStatus {
        let Some(url) = member.api_url() else {
            return PeerStatus::unreachable(&member.name);
        };
        let result = async {
            let response = self.http.get(url).timeout(PEER_TIMEOUT).send().await?;
            response.json::<serde_json::Value>().await
        }
        .await;
        match result {
            Ok(body) => {
                tracing::info!("Got response from {} {}: {}", member.name, url, body);
                PeerStatus::from_api_response(&member.name, &body)
            }
            Err(e) => {
                tracing::warn!("Request failed to {}: GET {} ({})", member.name, url, e);
                PeerStatus::unreachable(&member.name)
            }
        }
    }

    /// Fetch several members concurrently.
    pub async fn statuses(&self, members: Vec<Member>) -> Vec<PeerStatus> {
        let mut set = tokio::task::JoinSet::new();
        for (i, m) in members.into_iter().enumerate() {
            let me = self.clone();
            set.spawn(async move { (i, me.status(&m).await) });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(v) = r {
                out.push(v);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, s)| s).collect()
    }
}
