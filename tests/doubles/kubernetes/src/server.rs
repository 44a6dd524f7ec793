//! The HTTP side: paths, verbs and query parameters as the API server
//! takes them, answers as it gives them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::patch;
use crate::selector::Selector;
use crate::store::{resource, ApiError, Event, Resource, Store, WatchStart, RESOURCES};

pub struct Shared {
    pub store: Mutex<Store>,
    pub token: String,
    pub port: u16,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The server's version (`/version`): a made-up build of the release
/// whose API this double follows.
pub const VERSION: (&str, &str) = ("1", "30");

fn respond(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn error(e: &ApiError) -> Response {
    respond(e.code, &e.status())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            q.unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| matches!(v, "1" | "true" | "True"))
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!("Invalid dry run value: {v}: must be All"))),
        }
    }

    fn selectors(&self) -> Result<(Selector, Selector), ApiError> {
        let labels = Selector::parse(self.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("labelSelector: {e}")))?;
        let fields = Selector::parse(self.get("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("fieldSelector: {e}")))?;
        fields.check_fields().map_err(ApiError::bad_request)?;
        Ok((labels, fields))
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == shared.token)
}

fn api_resources(group_version: &str, group: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group)
        .map(|r| {
            json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": true, "kind": r.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]})
        })
        .chain(
            (group.is_empty())
                .then(|| json!({"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace", "verbs": ["get", "list"]})),
        )
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn namespace(name: &str) -> Value {
    json!({"kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

/// Every request.
pub async fn handle(shared: Arc<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let query = Query::parse(uri.query());
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => {
            return Response::builder()
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("ok"))
                .unwrap_or_default()
        }
        "/version" => {
            return respond(
                200,
                &json!({"major": VERSION.0, "minor": VERSION.1, "gitVersion": format!("v{}.{}.0-test-double", VERSION.0, VERSION.1),
                    "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "none",
                    "platform": "linux/amd64"}),
            )
        }
        _ => {}
    }
    if !authorized(&shared, &headers) {
        return error(&ApiError::new(401, "Unauthorized", "Unauthorized"));
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api"] => {
            return respond(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{}", shared.port)}]}),
            )
        }
        ["apis"] => {
            let gv = json!({"groupVersion": "coordination.k8s.io/v1", "version": "v1"});
            return respond(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "coordination.k8s.io", "versions": [gv], "preferredVersion": gv}]}),
            );
        }
        ["apis", "coordination.k8s.io"] => {
            let gv = json!({"groupVersion": "coordination.k8s.io/v1", "version": "v1"});
            return respond(
                200,
                &json!({"kind": "APIGroup", "apiVersion": "v1", "name": "coordination.k8s.io",
                "versions": [gv], "preferredVersion": gv}),
            );
        }
        ["api", "v1"] => return respond(200, &api_resources("v1", "")),
        ["apis", "coordination.k8s.io", "v1"] => {
            return respond(200, &api_resources("coordination.k8s.io/v1", "coordination.k8s.io"))
        }
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", "coordination.k8s.io", "v1", rest @ ..] => ("coordination.k8s.io", rest),
        _ => return error(&ApiError::new(404, "NotFound", "the server could not find the requested resource")),
    };
    let not_found = || error(&ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    let (ns, plural, name): (Option<&str>, &str, Option<&str>) = match rest {
        ["namespaces"] if group.is_empty() => {
            if method != Method::GET {
                return method_not_allowed(&method);
            }
            let store = shared.store();
            let mut names = store.namespaces();
            for n in ["default", "kube-system"] {
                if !names.iter().any(|x| x == n) {
                    names.push(n.into());
                }
            }
            names.sort();
            let items: Vec<Value> = names.iter().map(|n| namespace(n)).collect();
            return respond(
                200,
                &json!({"kind": "NamespaceList", "apiVersion": "v1",
                "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": items}),
            );
        }
        ["namespaces", ns] if group.is_empty() => {
            if method != Method::GET {
                return method_not_allowed(&method);
            }
            return respond(200, &namespace(ns));
        }
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        _ => return not_found(),
    };
    let Some(r) = resource(group, plural) else { return not_found() };
    let body_json = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded: {e}")))
    };
    let result = match (method.clone(), ns, name) {
        (Method::GET, _, None) if query.flag("watch") => return watch(shared, r, ns, &query),
        (Method::GET, _, None) => list(&shared, r, ns, &query),
        (Method::GET, Some(ns), Some(name)) => shared.store().get(r, ns, name),
        (Method::POST, Some(ns), None) => body_json().and_then(|b| {
            let d = query.dry_run()?;
            let created = shared.store().create(r, ns, b, d)?;
            return_code(created, 201)
        }),
        (Method::PUT, Some(ns), Some(name)) => body_json().and_then(|b| put(&shared, r, ns, name, b, &query)),
        (Method::PATCH, Some(ns), Some(name)) => patch_object(&shared, r, ns, name, &headers, &body, &query),
        (Method::DELETE, Some(ns), Some(name)) => body_json().and_then(|b| {
            let d = query.dry_run()?;
            let gone = shared.store().delete(r, ns, name, &b, d)?;
            Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": r.plural, "uid": gone.pointer("/metadata/uid").cloned().unwrap_or_default()}}))
        }),
        (Method::DELETE, Some(ns), None) => body_json().and_then(|b| delete_collection(&shared, r, ns, &b, &query)),
        _ => return method_not_allowed(&method),
    };
    match result {
        Ok(v) => match v.get("__code").and_then(Value::as_u64) {
            Some(code) => respond(code as u16, &v["object"]),
            None => respond(200, &v),
        },
        Err(e) => error(&e),
    }
}

fn return_code(object: Value, code: u16) -> Result<Value, ApiError> {
    Ok(json!({"__code": code, "object": object}))
}

fn method_not_allowed(method: &Method) -> Response {
    error(&ApiError::new(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource: {method}"),
    ))
}

fn list_kind(r: &Resource) -> String {
    format!("{}List", r.kind)
}

/// Items in a list carry no `kind`/`apiVersion`, as on the API server.
fn list_item(mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

fn list(shared: &Shared, r: &'static Resource, ns: Option<&str>, query: &Query) -> Result<Value, ApiError> {
    let (labels, fields) = query.selectors()?;
    let store = shared.store();
    let current = store.resource_version();
    if let Some(rv) = query.get("resourceVersion").filter(|v| !v.is_empty()) {
        let n: u64 = rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
        if n > current {
            return Err(ApiError::new(504, "Timeout", format!("Too large resource version: {n}, current: {current}")));
        }
        if query.get("resourceVersionMatch") == Some("Exact") && n != current {
            return Err(ApiError::new(410, "Expired", format!("too old resource version: {n} ({current})")));
        }
    }
    let mut items: Vec<Value> = store.list(r, ns, &labels, &fields);
    // Pages: `limit`, and `continue` with the token of the previous page
    // (the position after its last item; a page reads the objects as they
    // are now, not as they were when the first page was read).
    if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
        let after = decode_continue(token)
            .ok_or_else(|| ApiError::bad_request(format!("continue key is not valid: {token}")))?;
        items.retain(|o| position(o) > after);
    }
    let mut metadata = json!({"resourceVersion": current.to_string()});
    let limit = match query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("limit: not a number: {l}")))?,
        None => 0,
    };
    if limit > 0 && items.len() > limit {
        let rest = items.len() - limit;
        items.truncate(limit);
        if let Some(last) = items.last() {
            metadata["continue"] = json!(encode_continue(&position(last)));
            metadata["remainingItemCount"] = json!(rest);
        }
    }
    let items: Vec<Value> = items.into_iter().map(list_item).collect();
    Ok(json!({"kind": list_kind(r), "apiVersion": r.api_version, "metadata": metadata, "items": items}))
}

/// Where an object sorts in a list: (namespace, name).
fn position(o: &Value) -> (String, String) {
    let field = |f: &str| o.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).unwrap_or_default().to_string();
    (field("namespace"), field("name"))
}

fn encode_continue((ns, name): &(String, String)) -> String {
    format!("{ns}/{name}").bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Option<(String, String)> {
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (ns, name) = text.split_once('/')?;
    Some((ns.to_string(), name.to_string()))
}

fn put(
    shared: &Shared,
    r: &'static Resource,
    ns: &str,
    name: &str,
    body: Value,
    query: &Query,
) -> Result<Value, ApiError> {
    let body_name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if body.pointer("/metadata/namespace").and_then(Value::as_str).is_some_and(|n| n != ns) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let d = query.dry_run()?;
    let mut store = shared.store();
    let existed = store.get(r, ns, name).is_ok();
    let o = store.update(r, ns, name, body, d, r.create_on_update)?;
    if existed {
        Ok(o)
    } else {
        return_code(o, 201)
    }
}

fn patch_object(
    shared: &Shared,
    r: &'static Resource,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
    query: &Query,
) -> Result<Value, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let kind = match ctype.as_str() {
        "application/merge-patch+json" => 0,
        "application/strategic-merge-patch+json" => 1,
        "application/json-patch+json" => 2,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?}; this test double does not do server-side apply)"),
            ))
        }
    };
    let p: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded: {e}")))?;
    let d = query.dry_run()?;
    let mut store = shared.store();
    let mut obj = store.get(r, ns, name)?;
    match kind {
        0 => patch::merge(&mut obj, &p),
        1 => patch::strategic(&mut obj, &p).map_err(ApiError::bad_request)?,
        _ => patch::json_patch(&mut obj, &p).map_err(|e| ApiError::new(422, "Invalid", e))?,
    }
    store.update(r, ns, name, obj, d, false)
}

fn delete_collection(
    shared: &Shared,
    r: &'static Resource,
    ns: &str,
    options: &Value,
    query: &Query,
) -> Result<Value, ApiError> {
    let (labels, fields) = query.selectors()?;
    let d = query.dry_run()?;
    let mut store = shared.store();
    let mut gone = Vec::new();
    for o in store.list(r, Some(ns), &labels, &fields) {
        let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        gone.push(list_item(store.delete(r, ns, &name, options, d)?));
    }
    Ok(json!({"kind": list_kind(r), "apiVersion": r.api_version,
        "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": gone}))
}

fn event_line(kind: &str, object: &Value) -> String {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    s
}

struct WatchFilter {
    plural: &'static str,
    ns: Option<String>,
    labels: Selector,
    fields: Selector,
}

impl WatchFilter {
    fn matches(&self, o: &Value) -> bool {
        self.labels.matches_labels(o) && self.fields.matches_fields(o)
    }

    /// The line this watch sends for `ev`, if any: an object that starts
    /// or stops matching the selectors is ADDED or DELETED for it.
    fn line(&self, ev: &Event) -> Option<String> {
        if ev.plural != self.plural || self.ns.as_ref().is_some_and(|ns| *ns != ev.namespace) {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.previous.as_ref().map(|p| self.matches(p));
        let kind = match (ev.kind, before, now) {
            ("MODIFIED", Some(true), true) => "MODIFIED",
            ("MODIFIED", Some(false), true) => "ADDED",
            ("MODIFIED", Some(true), false) => "DELETED",
            ("MODIFIED", _, _) => return None,
            (k, _, true) => k,
            _ => return None,
        };
        Some(event_line(kind, &ev.object))
    }
}

struct WatchState {
    pending: VecDeque<String>,
    rx: broadcast::Receiver<Arc<Event>>,
    filter: WatchFilter,
    deadline: tokio::time::Instant,
    done: bool,
    /// Changes up to this resourceVersion were sent (or are not for this
    /// watch): later ones only, and the resourceVersion of a bookmark.
    seen: u64,
    /// `allowWatchBookmarks`: a BOOKMARK this often, and when the next is due.
    bookmarks: Option<(Duration, tokio::time::Instant)>,
    kind: &'static str,
    api_version: &'static str,
}

fn expired(message: String) -> String {
    event_line("ERROR", &ApiError::new(410, "Expired", message).status())
}

fn watch(shared: Arc<Shared>, r: &'static Resource, ns: Option<&str>, query: &Query) -> Response {
    let (labels, fields) = match query.selectors() {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let timeout = match query.get("timeoutSeconds").map(str::parse::<u64>) {
        None => 1800,
        Some(Ok(t)) => t,
        Some(Err(_)) => return error(&ApiError::bad_request("timeoutSeconds: must be a number")),
    };
    let filter = WatchFilter { plural: r.plural, ns: ns.map(String::from), labels, fields };
    let mut pending = VecDeque::new();
    let store = shared.store();
    let rx = store.events.subscribe();
    let mut seen = store.resource_version();
    match store.watch_start(query.get("resourceVersion").unwrap_or_default()) {
        // A watch from a compacted resourceVersion is answered 200 with
        // one ERROR event carrying a 410 Expired Status, as the API server does.
        Err(e) if e.code == 410 => pending.push_back(event_line("ERROR", &e.status())),
        Err(e) => return error(&e),
        Ok(WatchStart::After(rv)) => {
            pending.extend(store.history_after(rv).iter().filter_map(|e| filter.line(e)));
            // A resourceVersion ahead of the server: changes after it only.
            seen = seen.max(rv);
        }
        Ok(WatchStart::Current) => {
            for o in store.list(r, ns, &filter.labels, &filter.fields) {
                pending.push_back(event_line("ADDED", &o));
            }
            if query.flag("sendInitialEvents") {
                let bookmark = json!({"kind": r.kind, "apiVersion": r.api_version, "metadata": {
                    "resourceVersion": store.resource_version().to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}}});
                pending.push_back(event_line("BOOKMARK", &bookmark));
            }
        }
    }
    drop(store);
    let done = pending.front().is_some_and(|l| l.starts_with("{\"type\":\"ERROR\""));
    let now = tokio::time::Instant::now();
    let bookmarks =
        query.flag("allowWatchBookmarks").then(|| (shared.bookmark_interval, now + shared.bookmark_interval));
    let state = WatchState {
        pending,
        rx,
        filter,
        deadline: now + Duration::from_secs(timeout),
        done,
        seen,
        bookmarks,
        kind: r.kind,
        api_version: r.api_version,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.pending.pop_front() {
                return Some((Ok::<_, std::io::Error>(line), st));
            }
            if st.done {
                return None;
            }
            let wake = st.bookmarks.map_or(st.deadline, |(_, at)| at.min(st.deadline));
            match tokio::time::timeout_at(wake, st.rx.recv()).await {
                Err(_) if wake < st.deadline => {
                    if let Some((every, at)) = st.bookmarks.as_mut() {
                        *at += *every;
                    }
                    let bookmark = json!({"kind": st.kind, "apiVersion": st.api_version,
                        "metadata": {"resourceVersion": st.seen.to_string()}});
                    st.pending.push_back(event_line("BOOKMARK", &bookmark));
                }
                Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    st.done = true;
                    st.pending.push_back(expired("the watch fell too far behind".into()));
                }
                Ok(Ok(ev)) if ev.rv > st.seen => {
                    st.seen = ev.rv;
                    if let Some(line) = st.filter.line(&ev) {
                        st.pending.push_back(line);
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}
