//! The REST API's accept loop: a listen backlog of `request_queue_size`,
//! TLS when `certfile` is set (taken up again after a reload that changed
//! the files or settings), and each connection's address and client
//! certificate passed to the handlers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use palisade_config::RestApiConfig;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tower::ServiceExt;

use super::security::ConnInfo;
use super::ApiState;

/// What decides the TLS settings: the section and the files' times.
type TlsKey = (RestApiConfig, Vec<Option<SystemTime>>);

fn tls_key(r: &RestApiConfig) -> TlsKey {
    let files = [&r.certfile, &r.keyfile, &r.cafile];
    let times =
        files.iter().map(|f| f.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())).collect();
    (r.clone(), times)
}

/// The acceptor in force, rebuilt when the settings or files changed.
struct Tls {
    cache: Mutex<Option<(TlsKey, Option<tokio_rustls::TlsAcceptor>)>>,
}

impl Tls {
    fn acceptor(&self, st: &ApiState, initial: &RestApiConfig) -> Option<tokio_rustls::TlsAcceptor> {
        let r = match &st.shared {
            Some(s) => s.config.read().unwrap_or_else(|p| p.into_inner()).local.restapi.clone(),
            None => initial.clone(),
        };
        r.certfile.as_ref()?;
        let key = tls_key(&r);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, a)) = cache.as_ref() {
            if *k == key {
                return a.clone();
            }
        }
        match super::super::tls::server_config(&r) {
            Ok(cfg) => {
                let acceptor = cfg.map(tokio_rustls::TlsAcceptor::from);
                *cache = Some((key, acceptor.clone()));
                acceptor
            }
            Err(e) => {
                tracing::error!("REST API TLS: {e}");
                // Keep serving with the last good certificate, if any.
                cache.as_ref().and_then(|(_, a)| a.clone())
            }
        }
    }
}

/// Check the TLS settings before starting (a bad file stops the start).
pub fn check(r: &RestApiConfig) -> Result<(), String> {
    super::super::tls::server_config(r).map(|_| ())
}

fn listener(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

async fn serve_conn(app: Router, stream: TcpStream, remote: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let http = hyper::server::conn::http1::Builder::new();
    match tls {
        None => {
            let info = ConnInfo { remote, tls: false, client_cert: false };
            let svc = service(app, info);
            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("REST API: TLS handshake with {remote} failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let client_cert = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
            let svc = service(app, ConnInfo { remote, tls: true, client_cert });
            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
        }
    }
}

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
        async move { app.oneshot(req.map(axum::body::Body::new)).await }
    })
}

/// Bind `addr` and serve the API until the process ends.
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
    restapi: RestApiConfig,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = listener(addr, restapi.request_queue_size)?;
    let app = super::router(state.clone());
    let tls = Arc::new(Tls { cache: Mutex::new(None) });
    Ok(tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("REST API: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = tls.acceptor(&state, &restapi);
            tokio::spawn(serve_conn(app.clone(), stream, remote, acceptor));
        }
    }))
}
