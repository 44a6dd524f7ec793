//! Reading and writing the cluster's objects: merge patches (with
//! `metadata.resourceVersion` for compare-and-set), creates, and
//! Patroni's "patch or create".

use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::annotations::{self, Changes};
use crate::connection::{Budget, Connection, Failure};
use crate::store::Kubernetes;

impl Kubernetes {
    pub(crate) async fn list(
        &self,
        budget: &Budget,
        ar: &ApiResource,
    ) -> Result<(Vec<DynamicObject>, Option<String>), Failure> {
        self.list_selected(budget, ar, &self.settings.label_selector()).await
    }

    /// The objects of `ar` matching the label `selector`.
    pub(crate) async fn list_selected(
        &self,
        budget: &Budget,
        ar: &ApiResource,
        selector: &str,
    ) -> Result<(Vec<DynamicObject>, Option<String>), Failure> {
        let lp = ListParams::default().labels(selector);
        let ns = self.conn.namespace.clone();
        let list = self
            .conn
            .call(budget, |c| {
                let (lp, ns) = (lp.clone(), ns.clone());
                async move { Connection::api(c, &ns, ar).list(&lp).await }
            })
            .await?;
        Ok((list.items, list.metadata.resource_version))
    }

    pub(crate) async fn get(
        &self,
        budget: &Budget,
        ar: &ApiResource,
        name: &str,
    ) -> Result<Option<DynamicObject>, Failure> {
        let ns = self.conn.namespace.clone();
        self.conn
            .call(budget, |c| {
                let ns = ns.clone();
                async move { Connection::api(c, &ns, ar).get_opt(name).await }
            })
            .await
    }

    /// A merge patch of `name`; `body` is the whole patch document.
    pub(crate) async fn patch(
        &self,
        budget: &Budget,
        ar: &ApiResource,
        name: &str,
        body: Value,
    ) -> Result<DynamicObject, Failure> {
        let ns = self.conn.namespace.clone();
        self.conn
            .call(budget, |c| {
                let (ns, body) = (ns.clone(), body.clone());
                async move { Connection::api(c, &ns, ar).patch(name, &PatchParams::default(), &Patch::Merge(body)).await }
            })
            .await
    }

    pub(crate) async fn create(
        &self,
        budget: &Budget,
        ar: &ApiResource,
        name: &str,
        body: Value,
    ) -> Result<DynamicObject, Failure> {
        let ns = self.conn.namespace.clone();
        let mut obj = DynamicObject::new(name, ar).within(&ns);
        let mut body = body;
        if let Some(meta) = body.as_object_mut().and_then(|b| b.remove("metadata")) {
            obj.metadata.labels = meta.get("labels").and_then(|l| serde_json::from_value(l.clone()).ok());
            obj.metadata.annotations = meta.get("annotations").and_then(|l| serde_json::from_value(l.clone()).ok());
        }
        obj.data = body;
        self.conn
            .call(budget, |c| {
                let (ns, obj) = (ns.clone(), obj.clone());
                async move { Connection::api(c, &ns, ar).create(&PostParams::default(), &obj).await }
            })
            .await
    }

    pub(crate) async fn delete_collection(&self, budget: &Budget, ar: &ApiResource) -> Result<(), Failure> {
        let lp = ListParams::default().labels(&self.settings.label_selector());
        let ns = self.conn.namespace.clone();
        self.conn
            .call(budget, |c| {
                let (lp, ns) = (lp.clone(), ns.clone());
                async move { Connection::api(c, &ns, ar).delete_collection(&DeleteParams::default(), &lp).await.map(|_| ()) }
            })
            .await
    }

    pub(crate) async fn delete(&self, budget: &Budget, ar: &ApiResource, name: &str) -> Result<(), Failure> {
        let ns = self.conn.namespace.clone();
        match self
            .conn
            .call(budget, |c| {
                let ns = ns.clone();
                async move { Connection::api(c, &ns, ar).delete(name, &DeleteParams::default()).await.map(|_| ()) }
            })
            .await
        {
            Err(Failure::NotFound) => Ok(()),
            other => other,
        }
    }

    /// The metadata of a write: our labels, the annotation changes and,
    /// for a compare-and-set, the resourceVersion to match.
    pub(crate) fn metadata(&self, changes: Option<&Changes>, version: Option<&str>, create: bool) -> Value {
        let mut meta = json!({ "labels": self.settings.labels });
        if let Some(c) = changes {
            meta["annotations"] = if create { annotations::create_value(c) } else { annotations::patch_value(c) };
        }
        if let Some(v) = version {
            meta["resourceVersion"] = Value::String(v.to_string());
        }
        meta
    }

    /// Patroni's `patch_or_create` for a ConfigMap/Endpoints: with a
    /// version, a compare-and-set patch (`None` when it lost: 409, or the
    /// object is gone); without, a patch, or a create when the object does
    /// not exist yet. `extra` adds top-level fields (Endpoints `subsets`).
    pub(crate) async fn write_kind(
        &self,
        budget: &Budget,
        name: &str,
        changes: &Changes,
        version: Option<&str>,
        extra: Option<(&str, Value)>,
    ) -> Result<Option<DynamicObject>, Failure> {
        let body = |create: bool, version: Option<&str>| {
            let mut b = json!({ "metadata": self.metadata(Some(changes), version, create) });
            if let Some((k, v)) = &extra {
                b[*k] = v.clone();
            }
            b
        };
        if version.is_some() {
            return match self.patch(budget, &self.kind, name, body(false, version)).await {
                Ok(o) => Ok(Some(o)),
                Err(Failure::Conflict | Failure::NotFound) => Ok(None),
                Err(e) => Err(e),
            };
        }
        match self.patch(budget, &self.kind, name, body(false, None)).await {
            Ok(o) => return Ok(Some(o)),
            Err(Failure::NotFound) => {}
            Err(e) => return Err(e),
        }
        if self.settings.use_endpoints && name == self.names.config() {
            self.create_config_service(budget).await;
        }
        match self.create(budget, &self.kind, name, body(true, None)).await {
            Ok(o) => Ok(Some(o)),
            // Created by someone else in between: patch it after all.
            Err(Failure::AlreadyExists) => match self.patch(budget, &self.kind, name, body(false, None)).await {
                Ok(o) => Ok(Some(o)),
                Err(Failure::Conflict | Failure::NotFound) => Ok(None),
                Err(e) => Err(e),
            },
            Err(Failure::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// With Endpoints, `<scope>-config` needs a headless Service of the
    /// same name, or Kubernetes may clean the Endpoints up (Patroni's
    /// `_create_config_service`). 409 (exists) and 403 (not allowed) end
    /// the attempts; other errors are tried again on the next write.
    pub(crate) async fn create_config_service(&self, budget: &Budget) {
        use std::sync::atomic::Ordering;
        if !self.should_create_config_service.load(Ordering::Relaxed) {
            return;
        }
        let name = self.names.config();
        let body = json!({
            "metadata": self.metadata(None, None, true),
            "spec": {"clusterIP": "None"},
        });
        match self.create(budget, &self.services, &name, body).await {
            Ok(_) | Err(Failure::AlreadyExists | Failure::Conflict) => {
                self.should_create_config_service.store(false, Ordering::Relaxed)
            }
            Err(Failure::Refused(m)) if m.starts_with("403") => {
                self.should_create_config_service.store(false, Ordering::Relaxed)
            }
            Err(e) => tracing::error!("create_config_service failed: {e:?}"),
        }
    }
}
