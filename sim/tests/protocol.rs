//! The simulated API server, exercised through a real `kube::Client`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_store_sim::{ApiServer, Fault, Route, Verb};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, PartialObjectMeta, PostParams,
    WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

const STEP: Duration = Duration::from_secs(5);

fn meta(ns: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        ..Default::default()
    }
}

fn cm(ns: &str, name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(ns, name, labels),
        data: Some(BTreeMap::from([("key".to_string(), name.to_string())])),
        ..Default::default()
    }
}

/// The code and reason of a `kube::Error::Api`.
fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The next item of a stream, failing the test after `STEP`.
async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(STEP, stream.next())
        .await
        .expect("timed out waiting for the stream")
        .expect("the stream ended")
}

/// A raw HTTP/1.1 request; returns the status line + headers (lower-cased) and the body
/// (raw: chunk framing included), read until the server closes or resets the connection.
async fn raw(server: &ApiServer, request: String) -> Result<(String, String), BoxError> {
    let addr = server.addr();
    let response = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut tcp = std::net::TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(STEP))?;
        tcp.write_all(request.as_bytes())?;
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        Ok(out)
    })
    .await??;
    let response = String::from_utf8(response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((head.to_ascii_lowercase(), body.to_string()))
}

fn get_request(path: &str, accept: Option<&str>) -> String {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: sim\r\n{accept}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn crud_through_typed_api() -> TestResult {
    let server = ApiServer::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let pp = PostParams::default();

    let created = api.create(&pp, &cm("default", "a", &[])).await?;
    let uid = created.uid().expect("uid assigned");
    let rv1: u64 = created.resource_version().expect("rv assigned").parse()?;
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(
        created
            .data
            .as_ref()
            .and_then(|d| d.get("key"))
            .map(String::as_str),
        Some("a")
    );

    let fetched = api.get("a").await?;
    assert_eq!(fetched.uid().as_deref(), Some(uid.as_str()));
    assert_eq!(api.list(&ListParams::default()).await?.items.len(), 1);

    // Replace: new RV, same UID.
    let mut changed = fetched.clone();
    changed.data = Some(BTreeMap::from([("key".into(), "b".into())]));
    let replaced = api.replace("a", &pp, &changed).await?;
    let rv2: u64 = replaced.resource_version().unwrap_or_default().parse()?;
    assert!(rv2 > rv1);
    assert_eq!(replaced.uid(), Some(uid.clone()));

    // A stale resourceVersion conflicts; a duplicate create already exists.
    assert_eq!(
        api_error(api.replace("a", &pp, &changed).await),
        (409, "Conflict".into())
    );
    assert_eq!(
        api_error(api.create(&pp, &cm("default", "a", &[])).await),
        (409, "AlreadyExists".into())
    );

    // Delete returns the object; then it is gone.
    let deleted = api.delete("a", &DeleteParams::default()).await?;
    let deleted = deleted.left().expect("the deleted object");
    assert_eq!(deleted.uid(), Some(uid));
    assert_eq!(api_error(api.get("a").await), (404, "NotFound".into()));
    assert_eq!(
        api_error(api.delete("a", &DeleteParams::default()).await),
        (404, "NotFound".into())
    );
    assert!(api.get_opt("a").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn crud_other_resources() -> TestResult {
    let server = ApiServer::start().await?;
    let client = server.client();
    let pp = PostParams::default();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "ns1");
    let mut secret = Secret {
        metadata: meta("ns1", "s", &[]),
        ..Default::default()
    };
    secret.data = Some(BTreeMap::from([(
        "password".to_string(),
        k8s_openapi::ByteString(b"hunter2".to_vec()),
    )]));
    let created = secrets.create(&pp, &secret).await?;
    assert_eq!(created.data, secret.data);

    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "ns1");
    ingresses
        .create(
            &pp,
            &Ingress {
                metadata: meta("ns1", "i", &[]),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(ingresses.get("i").await?.name_any(), "i");

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "ns2");
    let slice = EndpointSlice {
        metadata: meta("ns2", "e", &[]),
        address_type: "IPv4".into(),
        ..Default::default()
    };
    slices.create(&pp, &slice).await?;
    let all: Api<EndpointSlice> = Api::all(client.clone());
    assert_eq!(all.list(&ListParams::default()).await?.items.len(), 1);
    slices.delete("e", &DeleteParams::default()).await?;
    assert_eq!(all.list(&ListParams::default()).await?.items.len(), 0);

    // A cluster-scoped resource.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("team".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let ns = namespaces.create(&pp, &ns).await?;
    assert_eq!(ns.metadata.namespace, None);
    assert_eq!(namespaces.get("team").await?.name_any(), "team");

    // The in-process view agrees with the HTTP one.
    assert_eq!(server.list::<Secret>()?.len(), 1);
    assert_eq!(
        server
            .get::<Ingress>(Some("ns1"), "i")?
            .map(|i| i.name_any()),
        Some("i".into())
    );
    assert_eq!(
        server.get::<Namespace>(None, "team")?.and_then(|n| n.uid()),
        ns.uid()
    );
    Ok(())
}

#[tokio::test]
async fn direct_mutations_are_visible_over_http() -> TestResult {
    let server = ApiServer::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let created = server.create(&cm("default", "direct", &[]))?;
    let rv = created.resource_version().unwrap_or_default();
    assert_eq!(
        api.get("direct").await?.resource_version(),
        Some(rv.clone())
    );

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some(BTreeMap::from([("x".into(), "y".into())]));
    let replaced = server.replace(&fresh)?;
    assert_ne!(replaced.resource_version(), Some(rv));
    stale.data = Some(BTreeMap::new());
    assert!(server.replace(&stale).unwrap_err().is_conflict());

    // A replace that changes nothing writes nothing.
    let again = server.replace(&replaced)?;
    assert_eq!(again.resource_version(), replaced.resource_version());

    let upserted = server.upsert(&cm("default", "direct", &[("new", "label")]))?;
    assert_eq!(
        upserted.labels().get("new").map(String::as_str),
        Some("label")
    );
    server.upsert(&cm("default", "other", &[]))?;
    assert_eq!(server.list::<ConfigMap>()?.len(), 2);

    let deleted: ConfigMap = server.delete(Some("default"), "direct")?;
    assert_eq!(deleted.uid(), created.uid());
    assert_eq!(api_error(api.get("direct").await).0, 404);
    assert!(
        server
            .delete::<ConfigMap>(Some("default"), "direct")
            .unwrap_err()
            .is_not_found()
    );
    Ok(())
}

#[tokio::test]
async fn invalid_requests_fail_like_a_real_server() -> TestResult {
    let server = ApiServer::start().await?;
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    let mut nameless = cm("default", "x", &[]);
    nameless.metadata.name = None;
    assert_eq!(
        api_error(api.create(&pp, &nameless).await),
        (422, "Invalid".into())
    );

    let mut generated = nameless.clone();
    generated.metadata.generate_name = Some("gen-".into());
    let made = api.create(&pp, &generated).await?;
    assert!(made.name_any().starts_with("gen-") && made.name_any().len() == 9);

    let elsewhere = cm("other", "x", &[]);
    assert_eq!(
        api_error(api.create(&pp, &elsewhere).await),
        (400, "BadRequest".into())
    );

    let mut with_rv = cm("default", "y", &[]);
    with_rv.metadata.resource_version = Some("5".into());
    assert_eq!(api_error(api.create(&pp, &with_rv).await).0, 500);

    // PATCH is not implemented: 405, never a fake success.
    let patch = kube::api::Patch::Merge(serde_json::json!({"data": {"a": "b"}}));
    let (code, reason) = api_error(
        api.patch(made.name_any().as_str(), &Default::default(), &patch)
            .await,
    );
    assert_eq!((code, reason.as_str()), (405, "MethodNotAllowed"));

    // Unregistered resources are 404 NotFound.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        api_error(pods.list(&ListParams::default()).await),
        (404, "NotFound".into())
    );

    // Status bodies look like the real thing.
    let (head, body) = raw(
        &server,
        get_request("/api/v1/namespaces/default/configmaps/nope", None),
    )
    .await?;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    let status: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);
    assert_eq!(status["details"]["name"], "nope");
    assert_eq!(status["details"]["kind"], "configmaps");
    assert_eq!(status["message"], "configmaps \"nope\" not found");

    let (head, _) = raw(
        &server,
        get_request("/api/v1/namespaces/default/configmaps/x/status", None),
    )
    .await?;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    let (head, _) = raw(&server, get_request("/api/v1/configmaps/x", None)).await?;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    let (head, _) = raw(
        &server,
        get_request(
            "/api/v1/namespaces/default/configmaps",
            Some("application/vnd.kubernetes.protobuf"),
        ),
    )
    .await?;
    assert!(head.starts_with("http/1.1 406"), "{head}");
    let (head, _) = raw(&server, get_request("/api/v1/configmaps?limit=abc", None)).await?;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    Ok(())
}

#[tokio::test]
async fn paging_with_limit_and_continue() -> TestResult {
    let server = ApiServer::start().await?;
    for name in ["e", "d", "c", "b", "a"] {
        server.create(&cm("default", name, &[]))?;
    }
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");

    let mut names = Vec::new();
    let mut pages = 0;
    let mut lp = ListParams::default().limit(2);
    loop {
        let page = api.list(&lp).await?;
        pages += 1;
        assert!(page.items.len() <= 2);
        names.extend(page.items.iter().map(|c| c.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);

    // Later pages are a consistent snapshot at the first page's resourceVersion.
    let first = api.list(&ListParams::default().limit(2)).await?;
    let token = first.metadata.continue_.clone().expect("more pages");
    let mut d = server
        .get::<ConfigMap>(Some("default"), "d")?
        .expect("d exists");
    d.data = Some(BTreeMap::from([("key".into(), "changed".into())]));
    server.replace(&d)?;
    server.delete::<ConfigMap>(Some("default"), "e")?;
    server.create(&cm("default", "cc", &[]))?;
    let rest = api
        .list(&ListParams::default().continue_token(&token))
        .await?;
    let rest_names: Vec<String> = rest.items.iter().map(|c| c.name_any()).collect();
    assert_eq!(rest_names, ["c", "d", "e"]);
    let old_d = &rest.items[1];
    assert_eq!(
        old_d
            .data
            .as_ref()
            .and_then(|m| m.get("key"))
            .map(String::as_str),
        Some("d")
    );
    assert_eq!(
        rest.metadata.resource_version,
        first.metadata.resource_version
    );

    // Once the log is compacted, the continuation has expired.
    server.compact();
    let (code, reason) = api_error(
        api.list(&ListParams::default().continue_token(&token))
            .await,
    );
    assert_eq!((code, reason.as_str()), (410, "Expired"));

    // Garbage tokens are bad requests.
    assert_eq!(
        api_error(api.list(&ListParams::default().continue_token("zz")).await).0,
        400
    );
    Ok(())
}

#[tokio::test]
async fn label_and_field_selectors() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(&cm("default", "web", &[("app", "web"), ("tier", "front")]))?;
    server.create(&cm("default", "db", &[("app", "db"), ("tier", "back")]))?;
    server.create(&cm("default", "plain", &[]))?;
    server.create(&cm("other", "web", &[("app", "web")]))?;
    let ns_api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let all_api: Api<ConfigMap> = Api::all(server.client());

    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .iter()
            .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
            .collect()
    };
    let by_labels = |sel: &str| {
        let (api, lp) = (ns_api.clone(), ListParams::default().labels(sel));
        async move { api.list(&lp).await }
    };
    assert_eq!(names(by_labels("app=web").await?), ["default/web"]);
    assert_eq!(names(by_labels("app==web").await?), ["default/web"]);
    assert_eq!(
        names(by_labels("app!=web").await?),
        ["default/db", "default/plain"]
    );
    assert_eq!(
        names(by_labels("app in (web,db)").await?),
        ["default/db", "default/web"]
    );
    assert_eq!(
        names(by_labels("app notin (web)").await?),
        ["default/db", "default/plain"]
    );
    assert_eq!(
        names(by_labels("tier").await?),
        ["default/db", "default/web"]
    );
    assert_eq!(names(by_labels("!tier").await?), ["default/plain"]);
    assert_eq!(
        names(by_labels("app=web,tier=back").await?),
        Vec::<String>::new()
    );

    let by_fields = |sel: &str| {
        let (api, lp) = (all_api.clone(), ListParams::default().fields(sel));
        async move { api.list(&lp).await }
    };
    assert_eq!(
        names(by_fields("metadata.name=web").await?),
        ["default/web", "other/web"]
    );
    assert_eq!(
        names(by_fields("metadata.namespace==other").await?),
        ["other/web"]
    );
    assert_eq!(
        names(by_fields("metadata.namespace!=other,metadata.name!=plain").await?),
        ["default/db", "default/web"]
    );
    assert_eq!(
        names(
            all_api
                .list(
                    &ListParams::default()
                        .labels("app=web")
                        .fields("metadata.namespace=default")
                )
                .await?
        ),
        ["default/web"]
    );

    assert_eq!(
        api_error(by_fields("data.key=web").await),
        (400, "BadRequest".into())
    );
    assert_eq!(
        api_error(by_labels("app in web").await),
        (400, "BadRequest".into())
    );
    Ok(())
}

#[tokio::test]
async fn metadata_only_get_and_list() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(&cm("default", "a", &[("app", "x")]))?;
    server.create(&cm("default", "b", &[]))?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");

    let meta = api.get_metadata("a").await?;
    let types = meta.types.expect("typed");
    assert_eq!(
        (types.kind.as_str(), types.api_version.as_str()),
        ("PartialObjectMetadata", "meta.k8s.io/v1")
    );
    assert_eq!(
        meta.metadata
            .labels
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("x")
    );

    let list = api.list_metadata(&ListParams::default().limit(1)).await?;
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert_eq!(list.types.api_version, "meta.k8s.io/v1");
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.continue_.is_some());

    // On the wire: only metadata, no data.
    let (_, body) = raw(
        &server,
        get_request(
            "/api/v1/namespaces/default/configmaps",
            Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
        ),
    )
    .await?;
    let list: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert!(list["items"][0].get("data").is_none());
    assert_eq!(list["items"][0]["metadata"]["name"], "a");
    Ok(())
}

#[tokio::test]
async fn watch_events_in_order_and_resume() -> TestResult {
    let server = ApiServer::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let start = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &start)
        .await?
        .boxed();

    let created = server.create(&cm("default", "a", &[]))?;
    let mut changed = created.clone();
    changed.data = Some(BTreeMap::new());
    let modified = server.replace(&changed)?;
    server.delete::<ConfigMap>(Some("default"), "a")?;

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut stream).await? {
            WatchEvent::Added(o) => seen.push(("ADDED", o.resource_version())),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o.resource_version())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o.resource_version())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("unexpected error event {e:?}"),
        }
    }
    assert_eq!(seen[0], ("ADDED", created.resource_version()));
    assert_eq!(seen[1], ("MODIFIED", modified.resource_version()));
    assert_eq!(seen[2].0, "DELETED");
    let rvs: Vec<u64> = seen
        .iter()
        .map(|(_, rv)| rv.as_deref().unwrap_or("0").parse().unwrap_or(0))
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");

    // Resume from the ADDED event's resourceVersion: replay exactly what came after.
    let mut resumed = api
        .watch(
            &WatchParams::default().timeout(10),
            created.resource_version().as_deref().unwrap_or(""),
        )
        .await?
        .boxed();
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        match next(&mut resumed).await? {
            WatchEvent::Modified(_) => replayed.push("MODIFIED"),
            WatchEvent::Deleted(_) => replayed.push("DELETED"),
            WatchEvent::Added(_) => replayed.push("ADDED"),
            _ => {}
        }
    }
    assert_eq!(replayed, ["MODIFIED", "DELETED"]);
    Ok(())
}

#[tokio::test]
async fn watch_from_compacted_rv_gets_410_error_event() -> TestResult {
    let server = ApiServer::start().await?;
    let first = server.create(&cm("default", "a", &[]))?;
    server.create(&cm("default", "b", &[]))?;
    server.compact();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let rv = first.resource_version().unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    match next(&mut stream).await? {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    // The current resourceVersion is still fine.
    let current = server.resource_version().to_string();
    let mut ok = api
        .watch(&WatchParams::default().timeout(1), &current)
        .await?
        .boxed();
    while let Some(event) = ok.next().await {
        assert!(matches!(event?, WatchEvent::Bookmark(_)));
    }
    Ok(())
}

#[tokio::test]
async fn watch_initial_events_bookmarks_and_timeout() -> TestResult {
    let server = ApiServer::builder()
        .bookmark_interval(Duration::from_millis(100))
        .start()
        .await?;
    server.create(&cm("default", "a", &[]))?;
    server.create(&cm("default", "b", &[]))?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");

    // resourceVersion "0": synthetic ADDED for the current state, then bookmarks, then a
    // clean end after timeoutSeconds.
    let began = Instant::now();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await?
        .boxed();
    let mut added = BTreeSet::new();
    let mut bookmarks = 0;
    let mut last = None;
    while let Some(event) = tokio::time::timeout(STEP, stream.next()).await? {
        match event? {
            WatchEvent::Added(o) => {
                added.insert(o.name_any());
            }
            WatchEvent::Bookmark(b) => {
                bookmarks += 1;
                last = Some(b.metadata.resource_version);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, BTreeSet::from(["a".to_string(), "b".to_string()]));
    assert!(bookmarks >= 3, "{bookmarks} bookmarks");
    assert_eq!(last, Some(server.resource_version().to_string()));
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Streaming list (sendInitialEvents): ADDED, then the initial-events-end bookmark.
    let wp = WatchParams::default().initial_events().timeout(10);
    let mut stream = api.watch(&wp, "0").await?.boxed();
    let mut added = 0;
    loop {
        match next(&mut stream).await? {
            WatchEvent::Added(_) => added += 1,
            WatchEvent::Bookmark(b) => {
                assert!(
                    b.metadata
                        .annotations
                        .contains_key("k8s.io/initial-events-end")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, 2);
    Ok(())
}

#[tokio::test]
async fn watch_label_selector_transitions() -> TestResult {
    let server = ApiServer::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let rv = server.resource_version().to_string();
    let wp = WatchParams::default().labels("app=web").timeout(10);
    let mut stream = api.watch(&wp, &rv).await?.boxed();
    let c = server.create(&cm("default", "x", &[("app", "db")]))?; // not seen
    let mut c2 = c.clone();
    c2.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
    let c2 = server.replace(&c2)?; // enters: ADDED
    let mut c3 = c2.clone();
    c3.metadata.labels = None;
    server.replace(&c3)?; // leaves: DELETED
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match next(&mut stream).await? {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            _ => {}
        }
    }
    assert_eq!(kinds, ["ADDED", "DELETED"]);
    Ok(())
}

/// Applies watcher events to a map, like a reflector store.
#[derive(Default)]
struct Mirror {
    objects: BTreeMap<String, String>,
    buffer: BTreeMap<String, String>,
    inits: usize,
    ready: bool,
}

impl Mirror {
    fn apply<K: Resource>(&mut self, event: watcher::Event<K>) {
        let key = |o: &K| o.meta().name.clone().unwrap_or_default();
        let rv = |o: &K| o.meta().resource_version.clone().unwrap_or_default();
        match event {
            watcher::Event::Init => {
                self.inits += 1;
                self.buffer.clear();
            }
            watcher::Event::InitApply(o) => {
                self.buffer.insert(key(&o), rv(&o));
            }
            watcher::Event::InitDone => {
                self.objects = std::mem::take(&mut self.buffer);
                self.ready = true;
            }
            watcher::Event::Apply(o) => {
                self.objects.insert(key(&o), rv(&o));
            }
            watcher::Event::Delete(o) => {
                self.objects.remove(&key(&o));
            }
        }
    }

    /// Feeds events until `done` holds (errors are skipped: the watcher recovers).
    async fn until<K: Resource, S>(
        &mut self,
        stream: &mut S,
        done: impl Fn(&Self) -> bool,
    ) -> Vec<String>
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
    {
        let mut errors = Vec::new();
        while !done(self) {
            match next(stream).await {
                Ok(event) => self.apply(event),
                Err(e) => errors.push(e.to_string()),
            }
        }
        errors
    }
}

fn server_state(server: &ApiServer) -> BTreeMap<String, String> {
    server
        .list::<ConfigMap>()
        .unwrap_or_default()
        .iter()
        .map(|c| (c.name_any(), c.resource_version().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn runtime_watcher_lists_then_watches() -> TestResult {
    let server = ApiServer::start().await?;
    for i in 0..5 {
        server.create(&cm("default", &format!("cm{i}"), &[]))?;
    }
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut stream = watcher(api, watcher::Config::default().page_size(2)).boxed();
    assert!(matches!(next(&mut stream).await?, watcher::Event::Init));
    let mut init = 0;
    loop {
        match next(&mut stream).await? {
            watcher::Event::InitApply(_) => init += 1,
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(init, 5);
    assert_eq!(server.counters().requests(Verb::List, "configmaps"), 3);

    server.create(&cm("default", "new", &[]))?;
    match next(&mut stream).await? {
        watcher::Event::Apply(o) => assert_eq!(o.name_any(), "new"),
        other => panic!("unexpected {other:?}"),
    }
    server.delete::<ConfigMap>(Some("default"), "cm0")?;
    match next(&mut stream).await? {
        watcher::Event::Delete(o) => assert_eq!(o.name_any(), "cm0"),
        other => panic!("unexpected {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn metadata_watcher_and_streaming_list_watcher() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(&cm("default", "a", &[]))?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");

    // The deprecated entry point and its replacement, `Api<PartialObjectMeta<K>>`: both
    // send metadata-only requests.
    #[allow(deprecated)]
    let mut meta = kube::runtime::metadata_watcher(api.clone(), watcher::Config::default()).boxed();
    let meta_api: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(server.client(), "default");
    let mut meta2 = watcher(meta_api, watcher::Config::default()).boxed();
    let mut mirror = Mirror::default();
    mirror.until(&mut meta, |m| m.ready).await;
    assert_eq!(mirror.objects, server_state(&server));
    let mut mirror2 = Mirror::default();
    mirror2.until(&mut meta2, |m| m.ready).await;
    assert_eq!(mirror2.objects, server_state(&server));
    server.create(&cm("default", "b", &[]))?;
    for stream in [&mut meta, &mut meta2] {
        match next(stream).await? {
            watcher::Event::Apply(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some("b"));
                assert_eq!(
                    o.types.map(|t| t.kind).as_deref(),
                    Some("PartialObjectMetadata")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    let mut streaming = watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut mirror = Mirror::default();
    mirror.until(&mut streaming, |m| m.ready).await;
    assert_eq!(mirror.objects, server_state(&server));
    server.delete::<ConfigMap>(Some("default"), "a")?;
    match next(&mut streaming).await? {
        watcher::Event::Delete(o) => assert_eq!(o.name_any(), "a"),
        other => panic!("unexpected {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn watcher_recovers_from_dropped_watches_and_410() -> TestResult {
    let server = ApiServer::start().await?;
    for i in 0..3 {
        server.create(&cm("default", &format!("cm{i}"), &[]))?;
    }
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut mirror = Mirror::default();
    mirror.until(&mut stream, |m| m.ready).await;
    assert_eq!(mirror.inits, 1);

    // Connection reset: the watcher re-watches from its last resourceVersion (no relist).
    let watches_before = server.counters().requests(Verb::Watch, "configmaps");
    server.drop_watches();
    server.create(&cm("default", "after-drop", &[]))?;
    mirror
        .until(&mut stream, |m| m.objects.contains_key("after-drop"))
        .await;
    assert!(server.counters().requests(Verb::Watch, "configmaps") > watches_before);
    assert_eq!(mirror.inits, 1);
    assert_eq!(mirror.objects, server_state(&server));

    // Forced 410 on the next watch: the watcher relists and ends with the right state.
    server.set_fault(Route::watch("configmaps"), Fault::gone())?;
    server.drop_watches();
    server.delete::<ConfigMap>(Some("default"), "cm1")?;
    server.create(&cm("default", "after-gone", &[]))?;
    mirror
        .until(&mut stream, |m| {
            m.inits == 2 && m.ready && m.objects.contains_key("after-gone")
        })
        .await;
    assert_eq!(mirror.objects, server_state(&server));

    // Compaction while disconnected: the resumed watch gets 410 and the watcher relists.
    // (The watcher is not polled between these calls, so it reconnects after all three.)
    server.drop_watches();
    server.create(&cm("default", "after-compact", &[]))?;
    server.compact();
    mirror
        .until(&mut stream, |m| {
            m.inits == 3 && m.objects.contains_key("after-compact")
        })
        .await;
    assert_eq!(mirror.objects, server_state(&server));
    Ok(())
}

#[tokio::test]
async fn dropped_watch_after_n_events() -> TestResult {
    let server = ApiServer::start().await?;
    for i in 0..5 {
        server.create(&cm("default", &format!("cm{i}"), &[]))?;
    }
    server.set_fault(Route::watch("configmaps"), Fault::drop_watch_after(2))?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut stream = api.watch(&WatchParams::default(), "0").await?.boxed();
    let mut added = 0;
    let mut errors = 0;
    while let Some(event) = tokio::time::timeout(STEP, stream.next()).await? {
        match event {
            Ok(WatchEvent::Added(_)) => added += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => errors += 1,
        }
    }
    assert_eq!(added, 2);
    assert!(errors <= 1);

    // On the wire: two events, then the connection ends without the terminating chunk.
    let path = "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0";
    let (head, body) = raw(&server, get_request(path, None)).await?;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(body.matches("\"type\":\"ADDED\"").count(), 2, "{body}");
    assert!(!body.ends_with("0\r\n\r\n"), "{body}");
    // Whereas a watch that times out ends cleanly.
    server.clear_faults();
    let path = "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1";
    let (_, body) = raw(&server, get_request(path, None)).await?;
    assert_eq!(body.matches("\"type\":\"ADDED\"").count(), 5, "{body}");
    assert!(body.ends_with("0\r\n\r\n"), "{body}");
    Ok(())
}

#[tokio::test]
async fn injected_statuses() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(&cm("default", "a", &[]))?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");

    server.set_fault(Route::get("configmaps"), Fault::status(500).fraction(1.0))?;
    assert_eq!(api_error(api.get("a").await), (500, "InternalError".into()));
    assert!(
        api.list(&ListParams::default()).await.is_ok(),
        "other verbs are not affected"
    );
    server.clear_faults();
    assert!(api.get("a").await.is_ok());

    // Fail only the next 2 requests.
    server.set_fault(Route::resource("configmaps"), Fault::status(404).times(2))?;
    assert_eq!(api_error(api.get("a").await).0, 404);
    assert_eq!(api_error(api.list(&ListParams::default()).await).0, 404);
    assert!(api.get("a").await.is_ok());

    // A deterministic fraction.
    server.set_fault(Route::get("configmaps"), Fault::status(500).fraction(0.5))?;
    let mut failed = 0;
    for _ in 0..10 {
        failed += usize::from(api.get("a").await.is_err());
    }
    assert_eq!(failed, 5);
    server.clear_faults();

    // 429 carries Retry-After, in the header and in the Status details.
    server.set_fault(Route::get("configmaps"), Fault::status(429).retry_after(7))?;
    let (head, body) = raw(
        &server,
        get_request("/api/v1/namespaces/default/configmaps/a", None),
    )
    .await?;
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("\r\nretry-after: 7"), "{head}");
    let status: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], 7);

    // Without retries the client sees the 429 / 503 itself...
    let mut config = server.config();
    config.default_retry = false;
    let no_retry: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config)?, "default");
    assert_eq!(
        api_error(no_retry.get("a").await),
        (429, "TooManyRequests".into())
    );
    // ...and kube's default client retries them transparently.
    server.reset_counters();
    server.set_fault(
        Route::get("configmaps"),
        Fault::status(503).retry_after(0).times(2),
    )?;
    assert!(api.get("a").await.is_ok());
    assert_eq!(server.counters().requests(Verb::Get, "configmaps"), 3);
    assert_eq!(server.counters().responses(503), 2);

    assert!(server.set_fault(Route::any(), Fault::status(200)).is_err());
    assert!(
        server
            .set_fault(Route::any(), Fault::status(500).fraction(1.5))
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn latency_counters_and_peak_in_flight() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(&cm("default", "a", &[]))?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");

    for _ in 0..3 {
        api.get("a").await?;
    }
    api.list(&ListParams::default()).await?;
    let counters = server.counters();
    assert_eq!(counters.requests(Verb::Get, "configmaps"), 3);
    assert_eq!(counters.requests(Verb::List, "configmaps"), 1);
    assert_eq!(counters.requests(Verb::Get, "secrets"), 0);
    assert_eq!(counters.total(Verb::Get), 3);
    assert_eq!(counters.responses(200), 4);
    assert_eq!(counters.peak_in_flight(), 1);
    server.reset_counters();
    assert_eq!(server.counters().requests(Verb::Get, "configmaps"), 0);

    let delay = Duration::from_millis(200);
    server.set_fault(Route::get("configmaps"), Fault::latency(delay))?;
    let began = Instant::now();
    let results = futures::future::join_all((0..5).map(|_| api.get("a"))).await;
    let took = began.elapsed();
    assert!(results.iter().all(Result::is_ok));
    assert!(
        took >= delay && took < delay * 4,
        "{took:?}: the gets did not overlap"
    );
    let counters = server.counters();
    assert_eq!(counters.peak_in_flight(), 5);
    assert_eq!(counters.in_flight(), 0);
    assert_eq!(counters.requests(Verb::Get, "configmaps"), 5);

    // Latency on one route does not slow the others.
    let began = Instant::now();
    api.list(&ListParams::default()).await?;
    assert!(began.elapsed() < delay);

    // Watches are counted separately, while open.
    let mut watch = api
        .watch(&WatchParams::default().timeout(10), "0")
        .await?
        .boxed();
    let _ = next(&mut watch).await?;
    let counters = server.counters();
    assert_eq!(counters.watches_open(), 1);
    assert_eq!(counters.in_flight(), 0);
    drop(watch);
    Ok(())
}

#[tokio::test]
async fn version_discovery_and_custom_resources() -> TestResult {
    let server = ApiServer::start().await?;
    let client = server.client();
    let version = client.apiserver_version().await?;
    assert_eq!(version.major, "1");

    let core = client.list_core_api_resources("v1").await?;
    assert!(
        core.resources
            .iter()
            .any(|r| r.name == "secrets" && r.namespaced)
    );
    assert!(
        core.resources
            .iter()
            .any(|r| r.name == "namespaces" && !r.namespaced)
    );
    let networking = client
        .list_api_group_resources("networking.k8s.io/v1")
        .await?;
    assert_eq!(networking.resources[0].name, "ingresses");

    let widgets = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    server.register(widgets.clone(), true);
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    assert!(discovery.has_group("example.com"));

    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &widgets);
    let mut widget = DynamicObject::new("w1", &widgets).within("default");
    widget.data = serde_json::json!({"spec": {"size": 3}});
    api.create(&PostParams::default(), &widget).await?;
    let fetched = api.get("w1").await?;
    assert_eq!(fetched.data["spec"]["size"], 3);
    assert_eq!(server.list_json(&widgets)?.len(), 1);
    server.create_json(
        &widgets,
        serde_json::json!({"metadata": {"name": "w2", "namespace": "default"}}),
    )?;
    let deleted = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    assert_eq!(deleted.left().map(|l| l.items.len()), Some(2));
    assert_eq!(server.count(&widgets)?, 0);
    Ok(())
}

#[tokio::test]
async fn shutdown_ends_watches_and_stops_serving() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(&cm("default", "a", &[]))?;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut watch = api.watch(&WatchParams::default(), "0").await?.boxed();
    assert!(matches!(next(&mut watch).await?, WatchEvent::Added(_)));
    server.shutdown().await;
    // The open watch ends cleanly and new requests are refused.
    while let Some(event) = tokio::time::timeout(STEP, watch.next()).await? {
        assert!(matches!(event?, WatchEvent::Bookmark(_)));
    }
    assert!(api.get("a").await.is_err());
    Ok(())
}
