//! The REST API's accept loop: a listen backlog of `request_queue_size`,
//! TLS when `certfile` is set (taken up again when a reload changed the
//! settings or the files changed), and each connection's address and
//! client certificate passed to the handlers as a `ConnInfo`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use palisade_config::RestApiConfig;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::security::ConnInfo;
use super::ApiState;
use crate::tls;

/// How long a client may take over the TLS handshake, and over sending a
/// request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The modification times of the files the TLS settings name.
fn stamps(r: &RestApiConfig) -> Vec<Option<SystemTime>> {
    [&r.certfile, &r.keyfile, &r.cafile]
        .iter()
        .map(|f| f.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()))
        .collect()
}

/// What the acceptor was made from: the section and its files' times.
type TlsKey = (RestApiConfig, Vec<Option<SystemTime>>);

/// The TLS acceptor in force, rebuilt when the settings or files changed.
#[derive(Default)]
struct Tls {
    cache: Mutex<Option<(TlsKey, Option<TlsAcceptor>)>>,
}

impl Tls {
    /// The acceptor for `r` (`None`: plain HTTP). When new settings do not
    /// work, the error is logged once and the last good acceptor stays.
    fn acceptor(&self, r: &RestApiConfig) -> Option<TlsAcceptor> {
        r.certfile.as_ref()?;
        let times = stamps(r);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(((cfg, t), acceptor)) = cache.as_ref() {
            if cfg == r && *t == times {
                return acceptor.clone();
            }
        }
        let acceptor = match tls::server_config(r) {
            Ok((config, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                config.map(TlsAcceptor::from)
            }
            Err(e) => {
                tracing::error!("REST API TLS: {e}; keeping the previous certificate");
                cache.as_ref().and_then(|(_, a)| a.clone())
            }
        };
        *cache = Some(((r.clone(), times), acceptor.clone()));
        acceptor
    }

    /// The acceptor for the `restapi` section in force.
    fn current(&self, st: &ApiState, initial: &RestApiConfig) -> Option<TlsAcceptor> {
        match &st.shared {
            Some(s) => self.acceptor(&s.config.read().unwrap_or_else(|p| p.into_inner()).local.restapi),
            None => self.acceptor(initial),
        }
    }
}

/// Check the TLS settings before starting (a bad file stops the start).
pub fn check(r: &RestApiConfig) -> Result<(), String> {
    tls::server_config(r).map(|_| ())
}

fn listener(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

async fn serve_conn(app: Router, stream: TcpStream, remote: SocketAddr, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    let Some(acceptor) = tls else {
        let svc = service(app, ConnInfo { remote, tls: false, client_cert: false });
        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
        return;
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("Connection from {remote} failed during the TLS handshake: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("Connection from {remote}: no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    // rustls keeps a client's certificates only once it verified them.
    let client_cert = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
    let svc = service(app, ConnInfo { remote, tls: true, client_cert });
    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
}

/// The router as a hyper service, each request carrying `info`.
fn service(
    app: Router,
    info: ConnInfo,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info);
        let app = app.clone();
        async move { app.oneshot(req.map(|b| axum::body::Body::new(IdleBody::new(b)))).await }
    })
}

/// A request body that fails when its sender stays silent for
/// `HEADER_TIMEOUT` (a body announced and never sent, found by the REST
/// fuzzer), so that the handler answers 400 and the connection ends
/// instead of waiting forever.
struct IdleBody<B> {
    inner: B,
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleBody<B> {
    fn new(inner: B) -> Self {
        Self { inner, idle: Box::pin(tokio::time::sleep(HEADER_TIMEOUT)) }
    }
}

impl<B> hyper::body::Body for IdleBody<B>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + HEADER_TIMEOUT;
                self.idle.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "the client sent nothing of the body for {} s",
                    HEADER_TIMEOUT.as_secs()
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Bind `addr` with `restapi.request_queue_size` as the backlog and serve
/// the API until the process ends. The other settings are read from the
/// daemon's configuration as each connection arrives (`restapi` when
/// there is no daemon).
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
    restapi: RestApiConfig,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = listener(addr, restapi.request_queue_size)?;
    let app = super::router(state.clone());
    let tls = Arc::new(Tls::default());
    // Build the acceptor now: its warnings belong to the start.
    let _ = tls.current(&state, &restapi);
    Ok(tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!("REST API: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = tls.current(&state, &restapi);
            tokio::spawn(serve_conn(app.clone(), stream, remote, acceptor));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_good_settings_there_is_no_acceptor() {
        let tls = Tls::default();
        assert!(tls.acceptor(&RestApiConfig::default()).is_none());
        // Nothing good to keep: the previous setup (plain HTTP) stays.
        let broken = RestApiConfig { certfile: Some("/nonexistent.crt".into()), ..Default::default() };
        assert!(tls.acceptor(&broken).is_none());
    }
}
