//! The status page: `GET /ui`, and `GET /` when a browser asks for HTML.
//!
//! One self-contained HTML file (`ui.html`: inline CSS and JavaScript, no
//! CDN, no build step) embedded in the binary. It reads `/cluster`,
//! `/history`, `/config` and `/patroni` from the same origin, so the API's
//! TLS applies; it sends credentials (basic auth) only with the actions
//! (switchover, restart of this node, pause/resume), which the API checks
//! as it checks any unsafe request. Member names, tags and every other
//! value read from the DCS (written by others) reach the page as text
//! nodes, never as HTML.
//!
//! `GET /` is Patroni's primary health check (HAProxy's default probe).
//! The page is served there only to clients that list `text/html` in
//! `Accept` (browsers do, health checkers do not), and with the status
//! code of the health check, so a probe still reads the same answer.

use axum::extract::State;
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::{ApiState, Params};

/// The page, as shipped.
pub const PAGE: &str = include_str!("ui.html");

/// The page only loads from its own origin: inline script and style, and
/// requests back to the API that served it.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; \
                   base-uri 'none'";

fn page(code: StatusCode) -> Response {
    let mut r = (code, PAGE).into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP));
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    r
}

/// `GET /ui`.
pub async fn ui() -> Response {
    page(StatusCode::OK)
}

/// Whether `Accept` names `text/html` itself (not only through `*/*`)
/// with a quality above zero.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let kind = parts.next().unwrap_or("");
        let zero = parts.any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        kind.eq_ignore_ascii_case("text/html") && !zero
    })
}

/// `GET /`: Patroni's health check, or the page for a browser, with the
/// health check's status code.
pub async fn root(st: State<ApiState>, headers: HeaderMap, uri: Uri, q: Params) -> Response {
    let health = super::health_get(st, uri, q).await;
    if !wants_html(&headers) {
        return health;
    }
    page(health.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
        h
    }

    #[test]
    fn only_browsers_get_the_page_at_the_root() {
        let cases = [
            ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true),
            ("TEXT/HTML", true),
            ("application/json, text/html;q=0.5", true),
            ("*/*", false),
            ("", false),
            ("application/json", false),
            ("text/html;q=0", false),
            ("text/*", false),
        ];
        for (value, html) in cases {
            assert_eq!(wants_html(&accept(value)), html, "{value}");
        }
        assert!(!wants_html(&HeaderMap::new()), "no Accept header: a health check");
    }

    async fn get(app: axum::Router, path: &str, accept: Option<&str>) -> (u16, String, String) {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let mut req = axum::http::Request::get(path);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        let Ok(req) = req.body(axum::body::Body::empty()) else { panic!("bad request") };
        let Ok(r) = app.oneshot(req).await;
        let code = r.status().as_u16();
        let kind = r.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = r.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        (code, kind, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_root_stays_a_health_check_and_ui_is_the_page() {
        use crate::status::{NodeStatus, StatusBoard};
        // A node that is no primary: `/` answers 503, whoever asks.
        let app = super::super::router(ApiState::new(StatusBoard::new(NodeStatus::new("s", "n1")), None));
        let browser = "text/html,application/xhtml+xml,*/*;q=0.8";
        let (code, kind, body) = get(app.clone(), "/", None).await;
        assert_eq!((code, kind.as_str()), (503, "application/json"), "{body}");
        assert!(body.contains("\"role\""), "{body}");
        let (code, _, body) = get(app.clone(), "/", Some("*/*")).await;
        assert_eq!(code, 503, "{body}");
        assert!(body.starts_with('{'), "{body}");
        let (code, kind, body) = get(app.clone(), "/", Some(browser)).await;
        assert_eq!((code, kind.as_str()), (503, "text/html; charset=utf-8"));
        assert_eq!(body, PAGE);
        let (code, kind, body) = get(app.clone(), "/ui", None).await;
        assert_eq!((code, kind.as_str(), body.as_str()), (200, "text/html; charset=utf-8", PAGE));
        // Other health paths are untouched by Accept.
        let (code, kind, _) = get(app, "/primary", Some(browser)).await;
        assert_eq!((code, kind.as_str()), (503, "application/json"));
    }

    #[test]
    fn the_page_is_self_contained() {
        // No script, style or font from anywhere else.
        for needle in ["src=\"http", "href=\"http", "@import", "url(", "<link"] {
            assert!(!PAGE.contains(needle), "the page loads {needle}");
        }
        // Values from the DCS are never parsed as HTML.
        for needle in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"] {
            assert!(!PAGE.contains(needle), "the page uses {needle}");
        }
        // Every path it fetches is one the API serves.
        for path in ["\"/cluster\"", "\"/history\"", "\"/config\"", "\"/patroni\"", "\"/switchover\"", "\"/restart\""] {
            assert!(PAGE.contains(path), "{path}");
        }
    }
}
