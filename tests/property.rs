//! Property tests of the App Mesh API, driven over raw HTTP so that the JSON sent is
//! exactly the JSON compared.
//!
//! * `*_round_trip`: a randomly generated *valid* spec of each kind (with the resources it
//!   names created first) is created, described, listed, tagged and updated. Describe must
//!   return the spec byte-for-byte as sent, plus only the defaults the server fills in
//!   (a mesh's `egressFilter` → `DROP_ALL`, a virtual node's `backends` → `[]`).
//! * `broken_*_rejected`: a valid request with one random mutation (taken from the API
//!   model, from the service's semantic rules, or from the request's own members) is
//!   refused with 400 `BadRequestException`, as a create and as an update, and the store
//!   does not change: same revision, nothing created, describe shows the earlier state.
//!   Each case sets up its resources once and then tries a couple of single mutations
//!   from every category, one request each.
//!
//! The API model is embedded below ([`MODEL`], transcribed from botocore's App Mesh
//! 2019-01-25 model independently of `tools/gen_model.py`). It is the oracle for the
//! model-level mutations, and every generated valid spec is checked against it first, so
//! that a generator bug is reported as such and not as a server bug.
//!
//! Each test function runs one in-process server on its own runtime; cases run one after
//! the other against it, each in a fresh mesh. `PROPTEST_CASES` overrides the case count.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use meshd::server::RunningServer;
use meshd::store::Limits;
use parking_lot::Mutex;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Map, Value, json};

/// Cases per test function unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 64;

// ---------------------------------------------------------------------------------------
// Resource kinds and their paths
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mesh,
    VirtualNode,
    VirtualRouter,
    Route,
    VirtualService,
    VirtualGateway,
    GatewayRoute,
}

impl Kind {
    fn name_field(self) -> &'static str {
        match self {
            Kind::Mesh => "meshName",
            Kind::VirtualNode => "virtualNodeName",
            Kind::VirtualRouter => "virtualRouterName",
            Kind::Route => "routeName",
            Kind::VirtualService => "virtualServiceName",
            Kind::VirtualGateway => "virtualGatewayName",
            Kind::GatewayRoute => "gatewayRouteName",
        }
    }

    fn spec_shape(self) -> &'static str {
        match self {
            Kind::Mesh => "MeshSpec",
            Kind::VirtualNode => "VirtualNodeSpec",
            Kind::VirtualRouter => "VirtualRouterSpec",
            Kind::Route => "RouteSpec",
            Kind::VirtualService => "VirtualServiceSpec",
            Kind::VirtualGateway => "VirtualGatewaySpec",
            Kind::GatewayRoute => "GatewayRouteSpec",
        }
    }

    fn list_member(self) -> &'static str {
        match self {
            Kind::Mesh => "meshes",
            Kind::VirtualNode => "virtualNodes",
            Kind::VirtualRouter => "virtualRouters",
            Kind::Route => "routes",
            Kind::VirtualService => "virtualServices",
            Kind::VirtualGateway => "virtualGateways",
            Kind::GatewayRoute => "gatewayRoutes",
        }
    }

    /// The parent's name member in the output shapes of routes and gateway routes.
    fn parent_field(self) -> Option<&'static str> {
        match self {
            Kind::Route => Some("virtualRouterName"),
            Kind::GatewayRoute => Some("virtualGatewayName"),
            _ => None,
        }
    }
}

/// Unreserved characters stay, everything else is percent-encoded (RFC 3986), as the
/// AWS SDKs encode path labels and query values.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

/// Where one resource lives: its collection and item paths and its ARN.
#[derive(Debug, Clone)]
struct Place {
    kind: Kind,
    mesh: String,
    parent: Option<String>,
    name: String,
    collection: String,
    item: String,
    arn: String,
}

impl Place {
    fn new(kind: Kind, mesh: &str, parent: Option<&str>, name: &str) -> Place {
        let m = enc(mesh);
        let parent_name = || parent.expect("routes and gateway routes have a parent");
        let collection = match kind {
            Kind::Mesh => "/v20190125/meshes".to_string(),
            Kind::VirtualNode => format!("/v20190125/meshes/{m}/virtualNodes"),
            Kind::VirtualRouter => format!("/v20190125/meshes/{m}/virtualRouters"),
            Kind::VirtualService => format!("/v20190125/meshes/{m}/virtualServices"),
            Kind::VirtualGateway => format!("/v20190125/meshes/{m}/virtualGateways"),
            Kind::Route => format!(
                "/v20190125/meshes/{m}/virtualRouter/{}/routes",
                enc(parent_name())
            ),
            Kind::GatewayRoute => format!(
                "/v20190125/meshes/{m}/virtualGateway/{}/gatewayRoutes",
                enc(parent_name())
            ),
        };
        let resource = match kind {
            Kind::Mesh => format!("mesh/{name}"),
            Kind::VirtualNode => format!("mesh/{mesh}/virtualNode/{name}"),
            Kind::VirtualRouter => format!("mesh/{mesh}/virtualRouter/{name}"),
            Kind::VirtualService => format!("mesh/{mesh}/virtualService/{name}"),
            Kind::VirtualGateway => format!("mesh/{mesh}/virtualGateway/{name}"),
            Kind::Route => format!("mesh/{mesh}/virtualRouter/{}/route/{name}", parent_name()),
            Kind::GatewayRoute => format!(
                "mesh/{mesh}/virtualGateway/{}/gatewayRoute/{name}",
                parent_name()
            ),
        };
        Place {
            kind,
            mesh: if kind == Kind::Mesh {
                name.to_string()
            } else {
                mesh.to_string()
            },
            parent: parent.map(str::to_string),
            name: name.to_string(),
            item: format!("{collection}/{}", enc(name)),
            collection,
            arn: common::arn(&resource),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------

struct Reply {
    status: u16,
    error_type: Option<String>,
    body: Value,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.error_type, self.body)
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    server: RunningServer,
    http: reqwest::Client,
    base: String,
    next: AtomicU64,
    /// How often each mutation category was tried, for the summary printed at the end.
    tried: Mutex<BTreeMap<&'static str, usize>>,
}

impl Harness {
    fn start() -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        // Every case makes a mesh or two; shrinking makes many more.
        let limits = Limits {
            meshes: usize::MAX,
            ..Limits::default()
        };
        let server = rt.block_on(common::start_server_with_limits(limits));
        let base = format!("http://{}", server.api_addr);
        Harness {
            rt,
            server,
            http: reqwest::Client::new(),
            base,
            next: AtomicU64::new(0),
            tried: Mutex::new(BTreeMap::new()),
        }
    }

    fn revision(&self) -> u64 {
        self.server.store.snapshot().revision()
    }

    /// `base` made unique (and kept within the 255 characters of a resource name).
    fn unique(&self, base: &str) -> String {
        let suffix = format!("-{}", self.next.fetch_add(1, Ordering::SeqCst));
        let keep = 255 - suffix.len();
        base.chars().take(keep).collect::<String>() + &suffix
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: no answer: {err}"));
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .map(|value| value.to_str().expect("an ASCII error type").to_string());
        let bytes = response.bytes().await.expect("a response body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                panic!(
                    "{method} {path}: the body is not JSON ({err}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            error_type,
            body,
        }
    }

    async fn create(&self, place: &Place, spec: &Value) -> Result<Value, TestCaseError> {
        let body = json!({ place.kind.name_field(): place.name, "spec": spec });
        let reply = self.call(Method::PUT, &place.collection, Some(&body)).await;
        prop_assert_eq!(
            reply.status,
            200,
            "creating {} with {} answered {}",
            place.arn,
            body,
            reply
        );
        Ok(reply.body)
    }

    /// Creates the case's mesh (unless the case is about meshes) and the resources its
    /// spec names; returns the mesh's name.
    async fn prepare(&self, case: &Case) -> Result<String, TestCaseError> {
        let mesh = self.unique(&case.mesh);
        if case.kind == Kind::Mesh {
            return Ok(mesh);
        }
        let reply = self
            .call(
                Method::PUT,
                "/v20190125/meshes",
                Some(&json!({ "meshName": mesh })),
            )
            .await;
        prop_assert_eq!(
            reply.status,
            200,
            "creating mesh {} answered {}",
            mesh,
            reply
        );
        for dep in &case.deps {
            self.create(&Place::new(dep.kind, &mesh, None, &dep.name), &dep.spec)
                .await?;
        }
        Ok(mesh)
    }

    /// Every item of a List operation, following `nextToken`.
    async fn list_all(&self, collection: &str, member: &str) -> Result<Vec<Value>, TestCaseError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let path = match &token {
                Some(token) => format!("{collection}?nextToken={}", enc(token)),
                None => collection.to_string(),
            };
            let reply = self.call(Method::GET, &path, None).await;
            prop_assert_eq!(reply.status, 200, "listing {} answered {}", path, reply);
            let page = reply.body[member].as_array();
            prop_assert!(
                page.is_some(),
                "listing {} has no {} array: {}",
                path,
                member,
                reply.body
            );
            items.extend(page.into_iter().flatten().cloned());
            match reply.body.get("nextToken") {
                Some(Value::String(next)) => token = Some(next.clone()),
                None => break,
                Some(other) => prop_assert!(false, "nextToken is not a string: {}", other),
            }
            prop_assert!(items.len() < 100_000, "listing {} does not end", collection);
        }
        Ok(items)
    }
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        // Nothing is written into the source tree; a failure prints its minimal input.
        failure_persistence: None,
        ..Config::default()
    }
}

fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

/// A resource that must exist before the case's resource can be created.
#[derive(Clone)]
struct Dep {
    kind: Kind,
    name: String,
    spec: Value,
}

/// One generated case: a resource of `kind` with a valid `spec` (and a second valid spec
/// to update it to), everything it names, and its tags.
#[derive(Clone)]
struct Case {
    kind: Kind,
    /// The base of the mesh's name; made unique for each run.
    mesh: String,
    /// The virtual router or virtual gateway of a route or gateway route.
    parent: Option<String>,
    /// The listener ports of that parent.
    parent_ports: Vec<i64>,
    deps: Vec<Dep>,
    name: String,
    spec: Option<Value>,
    update: Option<Value>,
    tags: Vec<(String, String)>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:?} {:?} in mesh {:?} (parent {:?})",
            self.kind, self.name, self.mesh, self.parent
        )?;
        for dep in &self.deps {
            writeln!(f, "  after {:?} {:?}: {}", dep.kind, dep.name, dep.spec)?;
        }
        writeln!(
            f,
            "  spec:   {}",
            self.spec.as_ref().map_or("(none)".into(), Value::to_string)
        )?;
        writeln!(
            f,
            "  update: {}",
            self.update
                .as_ref()
                .map_or("(none)".into(), Value::to_string)
        )?;
        write!(f, "  tags:   {:?}", self.tags)
    }
}

impl Case {
    fn place(&self, mesh: &str, name: &str) -> Place {
        Place::new(self.kind, mesh, self.parent.as_deref(), name)
    }

    fn tags_json(&self) -> Value {
        Value::Array(
            self.tags
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": value }))
                .collect(),
        )
    }

    /// A CreateX body for `name` with the case's spec and tags.
    fn create_body(&self, name: &str) -> Value {
        let mut body = Map::new();
        body.insert(self.kind.name_field().into(), json!(name));
        if let Some(spec) = &self.spec {
            body.insert("spec".into(), spec.clone());
        }
        if !self.tags.is_empty() {
            body.insert("tags".into(), self.tags_json());
        }
        body.insert("clientToken".into(), json!(token()));
        Value::Object(body)
    }
}

fn update_body(spec: Option<&Value>) -> Value {
    let mut body = Map::new();
    if let Some(spec) = spec {
        body.insert("spec".into(), spec.clone());
    }
    body.insert("clientToken".into(), json!(token()));
    Value::Object(body)
}

/// The spec as describe must show it: as sent, plus the server's documented defaults.
fn expected_spec(kind: Kind, spec: Option<&Value>) -> Value {
    let mut spec = spec.cloned().unwrap_or_else(|| json!({}));
    let members = spec.as_object_mut().expect("specs are objects");
    match kind {
        Kind::Mesh => {
            members
                .entry("egressFilter")
                .or_insert_with(|| json!({ "type": "DROP_ALL" }));
        }
        Kind::VirtualNode => {
            members.entry("backends").or_insert_with(|| json!([]));
        }
        _ => {}
    }
    spec
}

/// The generator's own output must fit the API model; otherwise the test, not the
/// server, is wrong.
fn check_generated(case: &Case) -> Result<(), TestCaseError> {
    let shape = Ty::Shape(case.kind.spec_shape().into());
    for spec in [&case.spec, &case.update].into_iter().flatten() {
        if let Err(err) = MODEL_SCHEMA.check(&shape, spec, "spec") {
            return Err(TestCaseError::fail(format!(
                "generator bug: {err} in {spec}"
            )));
        }
    }
    for dep in &case.deps {
        if let Err(err) =
            MODEL_SCHEMA.check(&Ty::Shape(dep.kind.spec_shape().into()), &dep.spec, "spec")
        {
            return Err(TestCaseError::fail(format!(
                "generator bug: {err} in {}",
                dep.spec
            )));
        }
    }
    let tag = Ty::Shape("TagRef".into());
    for tag_value in case.tags_json().as_array().into_iter().flatten() {
        if let Err(err) = MODEL_SCHEMA.check(&tag, tag_value, "tags[]") {
            return Err(TestCaseError::fail(format!("generator bug: {err}")));
        }
    }
    Ok(())
}

/// The names, metadata and status of a `*Data` output.
fn check_data(data: &Value, place: &Place, version: i64) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        &data["meshName"],
        &json!(place.mesh),
        "meshName of {}",
        data
    );
    prop_assert_eq!(
        &data[place.kind.name_field()],
        &json!(place.name),
        "name of {}",
        data
    );
    if let Some(field) = place.kind.parent_field() {
        prop_assert_eq!(&data[field], &json!(place.parent), "parent of {}", data);
    }
    let metadata = &data["metadata"];
    prop_assert_eq!(&metadata["arn"], &json!(place.arn), "arn of {}", data);
    prop_assert_eq!(&metadata["version"], &json!(version), "version of {}", data);
    prop_assert_eq!(&metadata["meshOwner"], &json!(common::ACCOUNT_ID));
    prop_assert_eq!(&metadata["resourceOwner"], &json!(common::ACCOUNT_ID));
    prop_assert!(
        metadata["uid"].as_str().is_some_and(|uid| !uid.is_empty()),
        "uid of {}",
        data
    );
    prop_assert!(metadata["createdAt"].is_number(), "createdAt of {}", data);
    prop_assert!(
        metadata["lastUpdatedAt"].is_number(),
        "lastUpdatedAt of {}",
        data
    );
    prop_assert_eq!(
        &data["status"],
        &json!({ "status": "ACTIVE" }),
        "status of {}",
        data
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Property (a): valid specs round-trip
// ---------------------------------------------------------------------------------------

async fn round_trip(h: &Harness, case: &Case) -> Result<(), TestCaseError> {
    check_generated(case)?;
    let mesh = h.prepare(case).await?;
    let name = if case.kind == Kind::Mesh {
        mesh.clone()
    } else {
        case.name.clone()
    };
    let place = case.place(&mesh, &name);

    let body = case.create_body(&name);
    let created = h.call(Method::PUT, &place.collection, Some(&body)).await;
    prop_assert_eq!(
        created.status,
        200,
        "create with {} answered {}",
        body,
        created
    );
    let expected = expected_spec(case.kind, case.spec.as_ref());
    prop_assert_eq!(
        &created.body["spec"],
        &expected,
        "create echoed another spec"
    );
    check_data(&created.body, &place, 1)?;

    let described = h.call(Method::GET, &place.item, None).await;
    prop_assert_eq!(described.status, 200, "describe answered {}", described);
    prop_assert_eq!(
        &described.body["spec"],
        &expected,
        "describe shows another spec"
    );
    prop_assert_eq!(
        &described.body,
        &created.body,
        "describe differs from create's answer"
    );

    let listed = h
        .list_all(&place.collection, case.kind.list_member())
        .await?;
    let found: Vec<&Value> = listed
        .iter()
        .filter(|item| item[case.kind.name_field()] == json!(name))
        .collect();
    prop_assert_eq!(
        found.len(),
        1,
        "list shows {} entries for {}",
        found.len(),
        name
    );
    prop_assert_eq!(&found[0]["arn"], &json!(place.arn));
    prop_assert_eq!(&found[0]["version"], &json!(1));
    prop_assert_eq!(&found[0]["meshName"], &json!(place.mesh));

    let tags = h
        .call(
            Method::GET,
            &format!("/v20190125/tags?resourceArn={}", enc(&place.arn)),
            None,
        )
        .await;
    prop_assert_eq!(tags.status, 200, "list tags answered {}", tags);
    prop_assert_eq!(&tags.body, &json!({ "tags": case.tags_json() }));

    let body = update_body(case.update.as_ref());
    let updated = h.call(Method::PUT, &place.item, Some(&body)).await;
    prop_assert_eq!(
        updated.status,
        200,
        "update with {} answered {}",
        body,
        updated
    );
    let expected = expected_spec(case.kind, case.update.as_ref());
    prop_assert_eq!(
        &updated.body["spec"],
        &expected,
        "update echoed another spec"
    );
    check_data(&updated.body, &place, 2)?;
    prop_assert_eq!(
        &updated.body["metadata"]["uid"],
        &created.body["metadata"]["uid"]
    );
    prop_assert_eq!(
        &updated.body["metadata"]["createdAt"],
        &created.body["metadata"]["createdAt"]
    );
    let described = h.call(Method::GET, &place.item, None).await;
    prop_assert_eq!(described.status, 200, "describe answered {}", described);
    prop_assert_eq!(
        &described.body,
        &updated.body,
        "describe differs from update's answer"
    );
    Ok(())
}

fn check_valid(cases: BoxedStrategy<Case>) {
    let harness = Harness::start();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&cases, |case| {
        harness.rt.block_on(round_trip(&harness, &case))
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[test]
fn mesh_specs_round_trip() {
    check_valid(mesh_case());
}

#[test]
fn virtual_node_specs_round_trip() {
    check_valid(virtual_node_case());
}

#[test]
fn virtual_router_specs_round_trip() {
    check_valid(virtual_router_case());
}

#[test]
fn route_specs_round_trip() {
    check_valid(route_case());
}

#[test]
fn virtual_service_specs_round_trip() {
    check_valid(virtual_service_case());
}

#[test]
fn virtual_gateway_specs_round_trip() {
    check_valid(virtual_gateway_case());
}

#[test]
fn gateway_route_specs_round_trip() {
    check_valid(gateway_route_case());
}

// ---------------------------------------------------------------------------------------
// Property (b): broken requests are rejected and change nothing
// ---------------------------------------------------------------------------------------

async fn rejected(h: &Harness, case: &Case, mutations: &[Mutation]) -> Result<(), TestCaseError> {
    check_generated(case)?;
    let mesh = h.prepare(case).await?;
    let name = if case.kind == Kind::Mesh {
        mesh.clone()
    } else {
        case.name.clone()
    };
    let original = case.place(&mesh, &name);
    let body = case.create_body(&name);
    let created = h.call(Method::PUT, &original.collection, Some(&body)).await;
    prop_assert_eq!(
        created.status,
        200,
        "create with {} answered {}",
        body,
        created
    );
    let before = h.call(Method::GET, &original.item, None).await;
    prop_assert_eq!(before.status, 200, "describe answered {}", before);
    for mutation in mutations {
        *h.tried.lock().entry(mutation.category).or_default() += 1;
        reject_one(h, case, &mesh, &original, &before.body, mutation)
            .await
            .map_err(|err| TestCaseError::fail(format!("{mutation:?}\n{err}")))?;
    }
    Ok(())
}

/// One mutated create and one mutated update, each refused without a trace.
async fn reject_one(
    h: &Harness,
    case: &Case,
    mesh: &str,
    original: &Place,
    before: &Value,
    mutation: &Mutation,
) -> Result<(), TestCaseError> {
    let spec = case
        .spec
        .as_ref()
        .expect("broken cases always carry a spec");
    if mutation.breaks_model {
        let mut body = json!({ "spec": spec });
        mutation.apply(&mut body);
        let still_fits = MODEL_SCHEMA
            .check(
                &Ty::Shape(case.kind.spec_shape().into()),
                &body["spec"],
                "spec",
            )
            .is_ok();
        prop_assert!(
            !still_fits,
            "mutation bug: the mutated spec still fits the model"
        );
    }
    let revision = h.revision();
    if mutation.on_create {
        let broken_name = match case.kind {
            Kind::Mesh => h.unique("broken"),
            _ if case.name == "broken" => "broken-2".to_string(),
            _ => "broken".to_string(),
        };
        let broken = case.place(mesh, &broken_name);
        let mut body = case.create_body(&broken_name);
        mutation.apply(&mut body);
        let reply = h.call(Method::PUT, &broken.collection, Some(&body)).await;
        expect_bad_request(&reply, "create", &body)?;
        prop_assert_eq!(h.revision(), revision, "a refused create changed the store");
        let described = h.call(Method::GET, &broken.item, None).await;
        prop_assert_eq!(
            described.status,
            404,
            "the refused create left {}",
            described
        );
        prop_assert_eq!(described.error_type.as_deref(), Some("NotFoundException"));
    }
    if mutation.on_update {
        let mut body = update_body(Some(spec));
        mutation.apply(&mut body);
        let reply = h.call(Method::PUT, &original.item, Some(&body)).await;
        expect_bad_request(&reply, "update", &body)?;
        prop_assert_eq!(h.revision(), revision, "a refused update changed the store");
        let after = h.call(Method::GET, &original.item, None).await;
        prop_assert_eq!(after.status, 200, "describe answered {}", after);
        prop_assert_eq!(&after.body, before, "a refused update changed the resource");
    }
    Ok(())
}

fn expect_bad_request(reply: &Reply, operation: &str, body: &Value) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        reply.status,
        400,
        "{} with {} answered {}",
        operation,
        body,
        reply
    );
    prop_assert_eq!(
        reply.error_type.as_deref(),
        Some("BadRequestException"),
        "{} with {} answered {}",
        operation,
        body,
        reply
    );
    let message = reply.body["message"].as_str();
    prop_assert!(
        message.is_some_and(|message| !message.is_empty()),
        "{} answered without a message: {}",
        operation,
        reply
    );
    Ok(())
}

/// How many single mutations each case tries per category (each on its own request).
const MUTATIONS_PER_CATEGORY: usize = 2;

/// A case and the mutations to try on it: a few from every category, so that rare
/// categories are tried as often as common ones.
fn with_mutations(cases: BoxedStrategy<Case>) -> BoxedStrategy<(Case, Vec<Mutation>)> {
    (cases, prop::collection::vec(any::<Index>(), 64))
        .prop_map(|(mut case, picks)| {
            if case.spec.is_none() {
                case.spec = Some(json!({}));
            }
            let mut chosen: Vec<Mutation> = Vec::new();
            for (i, group) in mutations(&case).iter().enumerate() {
                for j in 0..MUTATIONS_PER_CATEGORY {
                    let pick = picks[(i * MUTATIONS_PER_CATEGORY + j) % picks.len()].get(group);
                    if !chosen
                        .iter()
                        .any(|m| m.what == pick.what && m.edits == pick.edits)
                    {
                        chosen.push(pick.clone());
                    }
                }
            }
            (case, chosen)
        })
        .boxed()
}

fn check_broken(cases: BoxedStrategy<Case>) {
    let harness = Harness::start();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&with_mutations(cases), |(case, mutations)| {
        harness.rt.block_on(rejected(&harness, &case, &mutations))
    });
    eprintln!(
        "single mutations tried, by category: {:?}",
        harness.tried.lock()
    );
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[test]
fn broken_mesh_requests_are_rejected() {
    check_broken(mesh_case());
}

#[test]
fn broken_virtual_node_requests_are_rejected() {
    check_broken(virtual_node_case());
}

#[test]
fn broken_virtual_router_requests_are_rejected() {
    check_broken(virtual_router_case());
}

#[test]
fn broken_route_requests_are_rejected() {
    check_broken(route_case());
}

#[test]
fn broken_virtual_service_requests_are_rejected() {
    check_broken(virtual_service_case());
}

#[test]
fn broken_virtual_gateway_requests_are_rejected() {
    check_broken(virtual_gateway_case());
}

#[test]
fn broken_gateway_route_requests_are_rejected() {
    check_broken(gateway_route_case());
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

/// One change to a request body: each edit sets (or, with `None`, removes) the member at
/// a `/`-separated path (`spec/listeners/0/portMapping/port`; an index one past the end
/// of a list appends).
#[derive(Clone)]
struct Mutation {
    category: &'static str,
    what: String,
    edits: Vec<(String, Option<Value>)>,
    /// Applies to a create request.
    on_create: bool,
    /// Applies to an update request (whose body has only `spec` and `clientToken`).
    on_update: bool,
    /// The mutated spec no longer fits the API model (checked, as a test self-check).
    breaks_model: bool,
}

impl fmt::Debug for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}:", self.category, self.what)?;
        for (path, value) in &self.edits {
            match value {
                Some(value) => write!(f, " set {path} = {value};")?,
                None => write!(f, " remove {path};")?,
            }
        }
        Ok(())
    }
}

impl Mutation {
    fn model(
        category: &'static str,
        what: impl Into<String>,
        path: &str,
        value: Option<Value>,
    ) -> Mutation {
        Mutation {
            category,
            what: format!("{} at {path}", what.into()),
            edits: vec![(path.to_string(), value)],
            on_create: true,
            on_update: true,
            breaks_model: true,
        }
    }

    fn semantic(what: impl Into<String>, edits: Vec<(String, Option<Value>)>) -> Mutation {
        Mutation {
            category: "semantic rule",
            what: what.into(),
            edits,
            on_create: true,
            on_update: true,
            breaks_model: false,
        }
    }

    fn request(
        what: &str,
        path: &str,
        value: Option<Value>,
        on_create: bool,
        on_update: bool,
    ) -> Mutation {
        Mutation {
            category: "request member",
            what: what.into(),
            edits: vec![(path.to_string(), value)],
            on_create,
            on_update,
            breaks_model: false,
        }
    }

    fn apply(&self, body: &mut Value) {
        for (path, value) in &self.edits {
            let segments: Vec<&str> = path.split('/').collect();
            let (last, parents) = segments.split_last().expect("paths are not empty");
            let mut node = &mut *body;
            for segment in parents {
                node = match segment.parse::<usize>() {
                    Ok(index) => node.get_mut(index),
                    Err(_) => node.get_mut(*segment),
                }
                .unwrap_or_else(|| panic!("mutation bug: {path} does not exist"));
            }
            match (last.parse::<usize>(), value) {
                (Ok(index), Some(value)) => {
                    let items = node.as_array_mut().expect("an index into a list");
                    if index == items.len() {
                        items.push(value.clone());
                    } else {
                        items[index] = value.clone();
                    }
                }
                (Ok(index), None) => {
                    node.as_array_mut()
                        .expect("an index into a list")
                        .remove(index);
                }
                (Err(_), Some(value)) => {
                    node.as_object_mut()
                        .expect("a member of an object")
                        .insert(last.to_string(), value.clone());
                }
                (Err(_), None) => {
                    node.as_object_mut()
                        .expect("a member of an object")
                        .remove(*last);
                }
            }
        }
    }
}

/// Every mutation that applies to `case`'s create request, grouped by category.
fn mutations(case: &Case) -> Vec<Vec<Mutation>> {
    let spec = case.spec.as_ref().expect("broken cases carry a spec");
    let mut all = Vec::new();
    MODEL_SCHEMA.mutations(
        &Ty::Shape(case.kind.spec_shape().into()),
        spec,
        "spec",
        &mut all,
    );
    all.extend(semantic_mutations(case, spec));
    all.extend(request_mutations(case));
    let mut groups: BTreeMap<&'static str, Vec<Mutation>> = BTreeMap::new();
    for mutation in all {
        groups.entry(mutation.category).or_default().push(mutation);
    }
    groups.into_values().collect()
}

/// Breaking the request's own members: names, tags, the client token, the spec itself.
fn request_mutations(case: &Case) -> Vec<Mutation> {
    let name = case.kind.name_field();
    let mut out = vec![
        Mutation::request("an empty name", name, Some(json!("")), true, false),
        Mutation::request("a number as the name", name, Some(json!(7)), true, false),
        Mutation::request("no name", name, None, true, false),
        Mutation::request(
            "an unknown top-level member",
            "bogusMember",
            Some(json!(1)),
            true,
            true,
        ),
        Mutation::request(
            "the name in an update body",
            name,
            Some(json!("x")),
            false,
            true,
        ),
        Mutation::request(
            "tags in an update body",
            "tags",
            Some(json!([])),
            false,
            true,
        ),
        Mutation::request(
            "a 129-character tag key",
            "tags",
            Some(json!([{ "key": "k".repeat(129), "value": "v" }])),
            true,
            false,
        ),
        Mutation::request(
            "an empty tag key",
            "tags",
            Some(json!([{ "key": "", "value": "v" }])),
            true,
            false,
        ),
        Mutation::request(
            "a 257-character tag value",
            "tags",
            Some(json!([{ "key": "k", "value": "v".repeat(257) }])),
            true,
            false,
        ),
        Mutation::request(
            "a tag without a value",
            "tags",
            Some(json!([{ "key": "k" }])),
            true,
            false,
        ),
        Mutation::request(
            "a tag with an unknown member",
            "tags",
            Some(json!([{ "key": "k", "value": "v", "colour": "red" }])),
            true,
            false,
        ),
        Mutation::request(
            "tags that are not a list",
            "tags",
            Some(json!("k=v")),
            true,
            false,
        ),
        Mutation::request(
            "a 37-character client token",
            "clientToken",
            Some(json!("t".repeat(37))),
            true,
            true,
        ),
        Mutation::request(
            "a client token with a space",
            "clientToken",
            Some(json!("not valid")),
            true,
            true,
        ),
        Mutation::request(
            "an empty client token",
            "clientToken",
            Some(json!("")),
            true,
            true,
        ),
    ];
    if case.kind != Kind::VirtualService {
        // `ServiceName` has no length limit; every other name is a 1-255 `ResourceName`.
        out.push(Mutation::request(
            "a 256-character name",
            name,
            Some(json!("n".repeat(256))),
            true,
            false,
        ));
    }
    if case.kind != Kind::Mesh {
        // Only a mesh's spec is optional.
        out.push(Mutation::request("no spec", "spec", None, true, true));
        out.push(Mutation::request(
            "a null spec",
            "spec",
            Some(Value::Null),
            true,
            true,
        ));
    }
    out
}

/// A port that none of `ports` uses.
fn unused_port(ports: &[i64]) -> i64 {
    (1..)
        .find(|port| !ports.contains(port))
        .expect("a free port")
}

/// Breaking the service's rules that the model does not express.
fn semantic_mutations(case: &Case, spec: &Value) -> Vec<Mutation> {
    let mut out = Vec::new();
    let mut add =
        |what: &str, edits: Vec<(String, Option<Value>)>| out.push(Mutation::semantic(what, edits));
    match case.kind {
        Kind::Mesh | Kind::VirtualService => {}
        Kind::VirtualNode | Kind::VirtualGateway => {
            let protocols: &[&str] = if case.kind == Kind::VirtualNode {
                PROTOCOLS
            } else {
                VG_PROTOCOLS
            };
            let listeners = spec["listeners"].as_array().cloned().unwrap_or_default();
            for (i, listener) in listeners.iter().enumerate() {
                let at = format!("spec/listeners/{i}");
                let protocol = listener["portMapping"]["protocol"]
                    .as_str()
                    .expect("a protocol");
                let other = *protocols
                    .iter()
                    .find(|p| **p != protocol)
                    .expect("another protocol");
                if listener.get("connectionPool").is_some() {
                    add(
                        "a connection pool of another protocol than the listener's",
                        vec![(format!("{at}/connectionPool"), Some(minimal_pool(other)))],
                    );
                }
                if listener.get("timeout").is_some() {
                    add(
                        "a timeout of another protocol than the listener's",
                        vec![(format!("{at}/timeout"), Some(single(other, json!({}))))],
                    );
                }
                if listener["healthCheck"]["path"].is_string() {
                    add(
                        "an http health check without a path",
                        vec![(format!("{at}/healthCheck/path"), None)],
                    );
                    add(
                        "an http health check with an empty path",
                        vec![(format!("{at}/healthCheck/path"), Some(json!("")))],
                    );
                }
            }
            if let Some(first) = listeners.first() {
                let edit = if listeners.len() > 1 {
                    (
                        "spec/listeners/1/portMapping/port".to_string(),
                        Some(first["portMapping"]["port"].clone()),
                    )
                } else {
                    (
                        format!("spec/listeners/{}", listeners.len()),
                        Some(first.clone()),
                    )
                };
                add("two listeners on one port", vec![edit]);
            }
            if case.kind == Kind::VirtualGateway {
                add(
                    "a virtual gateway without listeners",
                    vec![("spec/listeners".into(), Some(json!([])))],
                );
            } else {
                if !listeners.is_empty() && spec.get("serviceDiscovery").is_some() {
                    add(
                        "listeners without service discovery",
                        vec![("spec/serviceDiscovery".into(), None)],
                    );
                }
                if spec["serviceDiscovery"]["dns"].is_object() {
                    add(
                        "an empty DNS hostname",
                        vec![("spec/serviceDiscovery/dns/hostname".into(), Some(json!("")))],
                    );
                }
                if let Some(backends) = spec["backends"].as_array().filter(|b| !b.is_empty()) {
                    add(
                        "the same backend twice",
                        vec![(
                            format!("spec/backends/{}", backends.len()),
                            Some(backends[0].clone()),
                        )],
                    );
                    add(
                        "a backend with an empty virtual service name",
                        vec![(
                            "spec/backends/0/virtualService/virtualServiceName".into(),
                            Some(json!("")),
                        )],
                    );
                }
            }
        }
        Kind::VirtualRouter => {
            let listeners = spec["listeners"].as_array().cloned().unwrap_or_default();
            if let Some(first) = listeners.first() {
                let edit = if listeners.len() > 1 {
                    (
                        "spec/listeners/1/portMapping/port".to_string(),
                        Some(first["portMapping"]["port"].clone()),
                    )
                } else {
                    (
                        format!("spec/listeners/{}", listeners.len()),
                        Some(first.clone()),
                    )
                };
                add("two listeners on one port", vec![edit]);
            }
        }
        Kind::Route | Kind::GatewayRoute => route_mutations(case, spec, &mut add),
    }
    out
}

fn route_mutations(
    case: &Case,
    spec: &Value,
    add: &mut impl FnMut(&str, Vec<(String, Option<Value>)>),
) {
    let gateway = case.kind == Kind::GatewayRoute;
    let keys: &[&str] = if gateway {
        &["httpRoute", "http2Route", "grpcRoute"]
    } else {
        &["httpRoute", "http2Route", "grpcRoute", "tcpRoute"]
    };
    let Some(key) = keys.iter().copied().find(|key| spec.get(*key).is_some()) else {
        return;
    };
    let route = &spec[key];
    let at = format!("spec/{key}");
    let (other_key, other) = match (gateway, key) {
        (true, "grpcRoute") => (
            "httpRoute",
            json!({ "match": { "prefix": "/" }, "action": { "target": { "virtualService": { "virtualServiceName": SERVICE } } } }),
        ),
        (true, _) => (
            "grpcRoute",
            json!({ "match": {}, "action": { "target": { "virtualService": { "virtualServiceName": SERVICE } } } }),
        ),
        (false, "tcpRoute") => (
            "httpRoute",
            json!({ "match": { "prefix": "/" }, "action": { "weightedTargets": [{ "virtualNode": "node-0", "weight": 1 }] } }),
        ),
        (false, _) => (
            "tcpRoute",
            json!({ "action": { "weightedTargets": [{ "virtualNode": "node-0", "weight": 1 }] } }),
        ),
    };
    add(
        "a second kind of route",
        vec![(format!("spec/{other_key}"), Some(other))],
    );
    add("no kind of route at all", vec![(at.clone(), None)]);

    let m = &route["match"];
    if let Some(targets) = route["action"]["weightedTargets"].as_array() {
        let zeros = (0..targets.len())
            .map(|j| {
                (
                    format!("{at}/action/weightedTargets/{j}/weight"),
                    Some(json!(0)),
                )
            })
            .collect();
        add("weights that add up to 0", zeros);
    }
    if matches!(key, "httpRoute" | "http2Route") {
        if m.get("prefix").is_some() {
            add(
                "a prefix without a leading /",
                vec![(format!("{at}/match/prefix"), Some(json!("api")))],
            );
            add(
                "both a prefix and a path",
                vec![(
                    format!("{at}/match/path"),
                    Some(json!({ "exact": "/both" })),
                )],
            );
        }
        if let Some(path) = m.get("path") {
            if path.get("exact").is_some() {
                add(
                    "an exact path without a leading /",
                    vec![(format!("{at}/match/path/exact"), Some(json!("relative")))],
                );
                add(
                    "a path that is both exact and a regex",
                    vec![(format!("{at}/match/path/regex"), Some(json!(".*")))],
                );
            }
            if path.get("regex").is_some() {
                add(
                    "a path regex that does not compile",
                    vec![(format!("{at}/match/path/regex"), Some(json!("(unclosed")))],
                );
            }
            add(
                "a path that is neither exact nor a regex",
                vec![(format!("{at}/match/path"), Some(json!({})))],
            );
            add(
                "both a path and a prefix",
                vec![(format!("{at}/match/prefix"), Some(json!("/")))],
            );
        }
        if gateway {
            let rewrite = &route["action"]["rewrite"];
            let rewrite_edit = |member: &str, value: Value| {
                if rewrite.is_object() {
                    (format!("{at}/action/rewrite/{member}"), Some(value))
                } else {
                    (format!("{at}/action/rewrite"), Some(single(member, value)))
                }
            };
            if m.get("prefix").is_some() {
                add(
                    "a path rewrite for a prefix match",
                    vec![rewrite_edit("path", json!({ "exact": "/rewritten" }))],
                );
            }
            if m.get("path").is_some() {
                add(
                    "a prefix rewrite for a path match",
                    vec![rewrite_edit(
                        "prefix",
                        json!({ "defaultPrefix": "ENABLED" }),
                    )],
                );
            }
            if let Some(prefix) = rewrite.get("prefix") {
                add(
                    "a prefix rewrite with both a default prefix and a value",
                    vec![(
                        format!("{at}/action/rewrite/prefix"),
                        Some(json!({ "defaultPrefix": "DISABLED", "value": "/v2/" })),
                    )],
                );
                add(
                    "a prefix rewrite with neither a default prefix nor a value",
                    vec![(format!("{at}/action/rewrite/prefix"), Some(json!({})))],
                );
                if prefix.get("value").is_some() {
                    add(
                        "a prefix rewrite value without a leading /",
                        vec![(
                            format!("{at}/action/rewrite/prefix/value"),
                            Some(json!("v2")),
                        )],
                    );
                }
            }
            if rewrite.get("path").is_some() {
                add(
                    "a path rewrite without a leading /",
                    vec![(
                        format!("{at}/action/rewrite/path/exact"),
                        Some(json!("relative")),
                    )],
                );
                add(
                    "a path rewrite without a path",
                    vec![(format!("{at}/action/rewrite/path"), Some(json!({})))],
                );
            }
        }
        header_mutations(&m["headers"], &format!("{at}/match/headers"), add);
        if route.get("retryPolicy").is_some() {
            add(
                "a retry policy without retry events",
                vec![
                    (format!("{at}/retryPolicy/httpRetryEvents"), None),
                    (format!("{at}/retryPolicy/tcpRetryEvents"), None),
                ],
            );
        }
    }
    if key == "grpcRoute" {
        if !gateway && m.get("methodName").is_some() {
            add(
                "a method name without a service name",
                vec![(format!("{at}/match/serviceName"), None)],
            );
        }
        header_mutations(&m["metadata"], &format!("{at}/match/metadata"), add);
        if route.get("retryPolicy").is_some() {
            add(
                "a retry policy without retry events",
                vec![
                    (format!("{at}/retryPolicy/grpcRetryEvents"), None),
                    (format!("{at}/retryPolicy/httpRetryEvents"), None),
                    (format!("{at}/retryPolicy/tcpRetryEvents"), None),
                ],
            );
        }
    }
    if m.get("hostname").is_some() {
        add(
            "a hostname match that is both exact and a suffix",
            vec![(
                format!("{at}/match/hostname"),
                Some(json!({ "exact": "www.example.com", "suffix": ".example.com" })),
            )],
        );
        add(
            "a hostname match that is neither exact nor a suffix",
            vec![(format!("{at}/match/hostname"), Some(json!({})))],
        );
    }
    let bad_port = unused_port(&case.parent_ports);
    let port_edit = if m.is_object() {
        (format!("{at}/match/port"), Some(json!(bad_port)))
    } else {
        (format!("{at}/match"), Some(json!({ "port": bad_port })))
    };
    add(
        "a match port that is not a listener port of the parent",
        vec![port_edit],
    );
    if case.parent_ports.len() > 1 && m.get("port").is_some() {
        add(
            "no match port although the parent has several listeners",
            vec![(format!("{at}/match/port"), None)],
        );
    }
}

fn header_mutations(
    headers: &Value,
    at: &str,
    add: &mut impl FnMut(&str, Vec<(String, Option<Value>)>),
) {
    for (j, header) in headers.as_array().into_iter().flatten().enumerate() {
        if header["match"]["regex"].is_string() {
            add(
                "a header regex that does not compile",
                vec![(format!("{at}/{j}/match/regex"), Some(json!("[unclosed")))],
            );
        }
        if let Some(start) = header["match"]["range"]["start"].as_i64() {
            add(
                "a range whose end is not after its start",
                vec![(format!("{at}/{j}/match/range/end"), Some(json!(start)))],
            );
        }
    }
}

fn minimal_pool(protocol: &str) -> Value {
    match protocol {
        "http" | "tcp" => single(protocol, json!({ "maxConnections": 1 })),
        _ => single(protocol, json!({ "maxRequests": 1 })),
    }
}

// ---------------------------------------------------------------------------------------
// Generators of valid specs
// ---------------------------------------------------------------------------------------

type Gen<T> = BoxedStrategy<T>;

const PROTOCOLS: &[&str] = &["http", "tcp", "http2", "grpc"];
const VG_PROTOCOLS: &[&str] = &["http", "http2", "grpc"];
const IP_PREFERENCES: &[&str] = &["IPv6_PREFERRED", "IPv4_PREFERRED", "IPv4_ONLY", "IPv6_ONLY"];
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
const ENABLED: &[&str] = &["ENABLED", "DISABLED"];
const TLS_MODES: &[&str] = &["STRICT", "PERMISSIVE", "DISABLED"];
/// The virtual service that gateway routes send traffic to.
const SERVICE: &str = "backend.svc.local";

/// An object of the members that are `Some`.
fn obj(members: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        members
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key.to_string(), value)))
            .collect(),
    )
}

fn single(key: &str, value: Value) -> Value {
    let mut members = Map::new();
    members.insert(key.to_string(), value);
    Value::Object(members)
}

fn maybe(strategy: impl Strategy<Value = Value> + 'static) -> Gen<Option<Value>> {
    prop::option::weighted(0.6, strategy).boxed()
}

fn list(
    strategy: impl Strategy<Value = Value> + 'static,
    size: RangeInclusive<usize>,
) -> Gen<Value> {
    prop::collection::vec(strategy, size)
        .prop_map(Value::Array)
        .boxed()
}

/// 1 to 3 items mostly, sometimes exactly the model's maximum of 10.
fn up_to_ten(strategy: impl Strategy<Value = Value> + Clone + 'static) -> Gen<Value> {
    prop_oneof![4 => list(strategy.clone(), 1..=3), 1 => list(strategy, 10..=10)].boxed()
}

fn string(strategy: impl Strategy<Value = String> + 'static) -> Gen<Value> {
    strategy.prop_map(Value::String).boxed()
}

fn word(values: &'static [&'static str]) -> Gen<Value> {
    select(values).prop_map(|value| json!(value)).boxed()
}

/// Mostly `short` (a regex), sometimes exactly `max` characters: the model's limit.
fn bounded(short: &'static str, max: usize) -> Gen<String> {
    prop_oneof![6 => short, 1 => Just("x".repeat(max))].boxed()
}

/// Within `lo..=hi`, often exactly at a bound.
fn edge(lo: i64, hi: i64) -> Gen<i64> {
    prop_oneof![1 => Just(lo), 1 => Just(hi), 6 => lo..=hi].boxed()
}

fn int(lo: i64, hi: i64) -> Gen<Value> {
    edge(lo, hi).prop_map(|value| json!(value)).boxed()
}

fn flag() -> Gen<Value> {
    any::<bool>().prop_map(Value::Bool).boxed()
}

fn port() -> Gen<i64> {
    edge(1, 65535)
}

/// Distinct ports, in random order.
fn ports(count: RangeInclusive<usize>) -> Gen<Vec<i64>> {
    prop::collection::btree_set(port(), count)
        .prop_map(|ports| ports.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
        .boxed()
}

/// Listeners on distinct ports with protocols from `protocols`.
fn listener_set(
    protocols: &'static [&'static str],
    count: RangeInclusive<usize>,
) -> Gen<Vec<(i64, &'static str)>> {
    ports(count)
        .prop_flat_map(move |ports| {
            ports
                .into_iter()
                .map(|port| select(protocols).prop_map(move |protocol| (port, protocol)))
                .collect::<Vec<_>>()
        })
        .boxed()
}

/// A resource name: mostly DNS-like, sometimes 255 characters, sometimes with characters
/// that a path label must percent-encode.
fn resource_name() -> Gen<String> {
    prop_oneof![
        6 => "[a-z][a-z0-9-]{0,20}",
        1 => Just("n".repeat(255)),
        1 => "[a-zA-Z0-9][a-zA-Z0-9 ._~:@!$&'()*+,;=%-]{0,20}",
    ]
    .boxed()
}

/// A virtual service name (`ServiceName`: no limit in the model, 255 characters in
/// meshd, like every name).
fn service_name() -> Gen<String> {
    prop_oneof![
        6 => "[a-z][a-z0-9-]{0,10}\\.[a-z]{2,8}\\.local",
        1 => "[a-zA-Z0-9][a-zA-Z0-9 ._~:@!$&'()*+,;=%-]{0,20}",
        1 => Just("s".repeat(255)),
    ]
    .boxed()
}

fn dns_name() -> Gen<String> {
    "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,2}".boxed()
}

fn tags() -> Gen<Vec<(String, String)>> {
    prop::collection::btree_map(
        bounded("[a-z][a-z0-9:_.-]{0,10}", 128),
        prop_oneof![6 => "[a-zA-Z0-9 _.:/=+-]{0,12}", 1 => Just("v".repeat(256))],
        0..=3,
    )
    .prop_map(|tags| tags.into_iter().collect())
    .boxed()
}

fn duration() -> Gen<Value> {
    (edge(0, 86_400_000), word(&["s", "ms"]))
        .prop_map(|(value, unit)| json!({ "value": value, "unit": unit }))
        .boxed()
}

/// An absolute HTTP path of up to 255 characters.
fn http_path() -> Gen<String> {
    prop_oneof![
        6 => "/[a-z0-9_.-]{0,12}(/[a-z0-9_.-]{1,8}){0,2}",
        1 => Just("/".to_string()),
        1 => Just(format!("/{}", "p".repeat(254))),
    ]
    .boxed()
}

/// A regular expression that compiles, of up to 255 characters.
fn regex_value() -> Gen<String> {
    prop_oneof![
        select(
            &[
                "^/api/.*$",
                "[a-z]+",
                "v[0-9]+(\\.[0-9]+)?",
                "^(foo|bar)$",
                ".*"
            ][..]
        )
        .prop_map(String::from),
        "[a-z]{1,20}",
        Just("r".repeat(255)),
    ]
    .boxed()
}

fn file_path() -> Gen<String> {
    prop_oneof![
        4 => "/[a-z]{1,8}(/[a-z0-9_.-]{1,12}){1,3}",
        1 => Just("/dev/stdout".to_string()),
        1 => Just(format!("/{}", "f".repeat(254))),
    ]
    .boxed()
}

fn secret_name() -> Gen<Value> {
    string(prop_oneof![
        "[a-z][a-z0-9-]{0,15}",
        "spiffe://[a-z]{1,8}\\.example\\.org/[a-z]{1,8}"
    ])
}

fn subject_alternative_names() -> Gen<Value> {
    let name = prop_oneof![
        3 => "[a-z]{1,10}\\.example\\.com",
        1 => "spiffe://[a-z]{1,8}\\.local/[a-z]{1,8}",
        1 => Just("a".repeat(254)),
    ];
    prop::collection::vec(name, 0..=3)
        .prop_map(|names| json!({ "match": { "exact": names } }))
        .boxed()
}

fn file_certificate() -> Gen<Value> {
    (file_path(), file_path())
        .prop_map(|(chain, key)| json!({ "certificateChain": chain, "privateKey": key }))
        .boxed()
}

/// A listener's TLS (the same members for virtual nodes and virtual gateways).
fn listener_tls() -> Gen<Value> {
    let certificate = prop_oneof![
        "arn:aws:acm:us-east-1:111122223333:certificate/[a-f0-9]{8}"
            .prop_map(|arn| json!({ "acm": { "certificateArn": arn } })),
        file_certificate().prop_map(|file| json!({ "file": file })),
        secret_name().prop_map(|name| json!({ "sds": { "secretName": name } })),
    ];
    let trust = prop_oneof![
        file_path().prop_map(|chain| json!({ "file": { "certificateChain": chain } })),
        secret_name().prop_map(|name| json!({ "sds": { "secretName": name } })),
    ];
    let validation = (trust, maybe(subject_alternative_names())).prop_map(|(trust, names)| {
        obj(vec![
            ("trust", Some(trust)),
            ("subjectAlternativeNames", names),
        ])
    });
    (word(TLS_MODES), certificate, maybe(validation))
        .prop_map(|(mode, certificate, validation)| {
            obj(vec![
                ("mode", Some(mode)),
                ("certificate", Some(certificate)),
                ("validation", validation),
            ])
        })
        .boxed()
}

/// A client policy (the same members for virtual nodes and virtual gateways).
fn client_policy() -> Gen<Value> {
    let certificate = prop_oneof![
        file_certificate().prop_map(|file| json!({ "file": file })),
        secret_name().prop_map(|name| json!({ "sds": { "secretName": name } })),
    ];
    let authority = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/[a-f0-9]{8}";
    let trust = prop_oneof![
        prop::collection::vec(authority, 1..=3)
            .prop_map(|arns| json!({ "acm": { "certificateAuthorityArns": arns } })),
        file_path().prop_map(|chain| json!({ "file": { "certificateChain": chain } })),
        secret_name().prop_map(|name| json!({ "sds": { "secretName": name } })),
    ];
    let validation = (trust, maybe(subject_alternative_names())).prop_map(|(trust, names)| {
        obj(vec![
            ("trust", Some(trust)),
            ("subjectAlternativeNames", names),
        ])
    });
    let tls = (
        maybe(certificate),
        maybe(flag()),
        maybe(list(port().prop_map(|port| json!(port)), 0..=3)),
        validation,
    )
        .prop_map(|(certificate, enforce, ports, validation)| {
            obj(vec![
                ("certificate", certificate),
                ("enforce", enforce),
                ("ports", ports),
                ("validation", Some(validation)),
            ])
        });
    maybe(tls).prop_map(|tls| obj(vec![("tls", tls)])).boxed()
}

fn connection_pool(protocol: &'static str) -> Gen<Value> {
    match protocol {
        "http" => (edge(1, 100_000), prop::option::of(edge(1, 100_000)))
            .prop_map(|(connections, pending)| {
                json!({ "http": obj(vec![
                    ("maxConnections", Some(json!(connections))),
                    ("maxPendingRequests", pending.map(|pending| json!(pending))),
                ]) })
            })
            .boxed(),
        "tcp" => edge(1, 100_000)
            .prop_map(|connections| json!({ "tcp": { "maxConnections": connections } }))
            .boxed(),
        _ => edge(1, 100_000)
            .prop_map(move |requests| single(protocol, json!({ "maxRequests": requests })))
            .boxed(),
    }
}

fn health_check(protocols: &'static [&'static str]) -> Gen<Value> {
    (
        select(protocols),
        http_path(),
        prop::option::of(port()),
        edge(2, 10),
        edge(5000, 300_000),
        edge(2000, 60_000),
        edge(2, 10),
    )
        .prop_map(
            |(protocol, path, port, healthy, interval, timeout, unhealthy)| {
                obj(vec![
                    ("protocol", Some(json!(protocol))),
                    // A path only where the protocol uses one (and there it is required).
                    (
                        "path",
                        matches!(protocol, "http" | "http2").then(|| json!(path)),
                    ),
                    ("port", port.map(|port| json!(port))),
                    ("healthyThreshold", Some(json!(healthy))),
                    ("intervalMillis", Some(json!(interval))),
                    ("timeoutMillis", Some(json!(timeout))),
                    ("unhealthyThreshold", Some(json!(unhealthy))),
                ])
            },
        )
        .boxed()
}

fn outlier_detection() -> Gen<Value> {
    (edge(1, 1000), duration(), duration(), edge(0, 100))
        .prop_map(|(errors, interval, ejection, percent)| {
            json!({
                "maxServerErrors": errors,
                "interval": interval,
                "baseEjectionDuration": ejection,
                "maxEjectionPercent": percent,
            })
        })
        .boxed()
}

fn listener_timeout(protocol: &'static str) -> Gen<Value> {
    if protocol == "tcp" {
        maybe(duration())
            .prop_map(|idle| json!({ "tcp": obj(vec![("idle", idle)]) }))
            .boxed()
    } else {
        (maybe(duration()), maybe(duration()))
            .prop_map(move |(idle, per_request)| {
                single(
                    protocol,
                    obj(vec![("idle", idle), ("perRequest", per_request)]),
                )
            })
            .boxed()
    }
}

fn virtual_node_listener(port: i64, protocol: &'static str) -> Gen<Value> {
    let outlier = if protocol == "tcp" {
        Just(None).boxed()
    } else {
        maybe(outlier_detection())
    };
    (
        maybe(connection_pool(protocol)),
        maybe(health_check(PROTOCOLS)),
        outlier,
        maybe(listener_timeout(protocol)),
        maybe(listener_tls()),
    )
        .prop_map(move |(pool, health, outlier, timeout, tls)| {
            obj(vec![
                (
                    "portMapping",
                    Some(json!({ "port": port, "protocol": protocol })),
                ),
                ("connectionPool", pool),
                ("healthCheck", health),
                ("outlierDetection", outlier),
                ("timeout", timeout),
                ("tls", tls),
            ])
        })
        .boxed()
}

fn service_discovery() -> Gen<Value> {
    let dns = (
        dns_name(),
        maybe(word(&["LOADBALANCER", "ENDPOINTS"])),
        maybe(word(IP_PREFERENCES)),
    )
        .prop_map(|(hostname, response, ip)| {
            json!({ "dns": obj(vec![
                ("hostname", Some(json!(hostname))),
                ("responseType", response),
                ("ipPreference", ip),
            ]) })
        });
    let attribute = (
        bounded("[a-zA-Z0-9_.:-]{1,20}", 255),
        bounded("[a-zA-Z0-9]([a-zA-Z0-9 ]{0,10}[a-zA-Z0-9])?", 1024),
    )
        .prop_map(|(key, value)| json!({ "key": key, "value": value }));
    let cloud_map = (
        bounded("[a-z][a-z0-9-]{0,15}(\\.[a-z]{2,6})?", 1024),
        bounded("[a-z][a-z0-9-]{0,15}", 1024),
        maybe(list(attribute, 0..=3)),
        maybe(word(IP_PREFERENCES)),
    )
        .prop_map(|(namespace, service, attributes, ip)| {
            json!({ "awsCloudMap": obj(vec![
                ("namespaceName", Some(json!(namespace))),
                ("serviceName", Some(json!(service))),
                ("attributes", attributes),
                ("ipPreference", ip),
            ]) })
        });
    prop_oneof![dns, cloud_map].boxed()
}

/// Access logging (the same members for virtual nodes and virtual gateways).
fn logging() -> Gen<Value> {
    let format = prop_oneof![
        bounded("[a-zA-Z0-9%:_ ()\\[\\]-]{1,40}", 1000).prop_map(|text| json!({ "text": text })),
        prop::collection::vec(
            (bounded("[a-z_]{1,12}", 100), bounded("%[A-Z_]{1,12}%", 100)),
            1..=3
        )
        .prop_map(|pairs| {
            let pairs: Vec<Value> = pairs
                .into_iter()
                .map(|(key, value)| json!({ "key": key, "value": value }))
                .collect();
            json!({ "json": pairs })
        }),
    ];
    let file = (file_path(), maybe(format))
        .prop_map(|(path, format)| json!({ "file": obj(vec![("path", Some(json!(path))), ("format", format)]) }));
    maybe(file)
        .prop_map(|log| obj(vec![("accessLog", log)]))
        .boxed()
}

fn mesh_spec() -> Gen<Value> {
    (
        maybe(word(&["ALLOW_ALL", "DROP_ALL"]).prop_map(|kind| json!({ "type": kind }))),
        maybe(maybe(word(IP_PREFERENCES)).prop_map(|ip| obj(vec![("ipPreference", ip)]))),
    )
        .prop_map(|(egress, discovery)| {
            obj(vec![
                ("egressFilter", egress),
                ("serviceDiscovery", discovery),
            ])
        })
        .boxed()
}

fn virtual_node_spec() -> Gen<Value> {
    let listeners = listener_set(PROTOCOLS, 0..=3).prop_flat_map(|listeners| {
        listeners
            .into_iter()
            .map(|(port, protocol)| virtual_node_listener(port, protocol))
            .collect::<Vec<_>>()
    });
    let backends = prop::collection::btree_set(dns_name(), 0..=3).prop_flat_map(|names| {
        names
            .into_iter()
            .map(|name| {
                maybe(client_policy()).prop_map(move |policy| {
                    json!({ "virtualService": obj(vec![
                        ("virtualServiceName", Some(json!(name.clone()))),
                        ("clientPolicy", policy),
                    ]) })
                })
            })
            .collect::<Vec<_>>()
    });
    (
        listeners,
        any::<bool>(),
        service_discovery(),
        any::<bool>(),
        maybe(backends.prop_map(Value::Array)),
        maybe(maybe(client_policy()).prop_map(|policy| obj(vec![("clientPolicy", policy)]))),
        maybe(logging()),
    )
        .prop_map(
            |(listeners, show_empty, discovery, with_discovery, backends, defaults, logging)| {
                // Listeners need service discovery; without listeners it is optional.
                let discovery = (!listeners.is_empty() || with_discovery).then_some(discovery);
                let listeners =
                    (!listeners.is_empty() || show_empty).then_some(Value::Array(listeners));
                obj(vec![
                    ("listeners", listeners),
                    ("serviceDiscovery", discovery),
                    ("backends", backends),
                    ("backendDefaults", defaults),
                    ("logging", logging),
                ])
            },
        )
        .boxed()
}

fn listeners_json(listeners: &[(i64, &str)]) -> Value {
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|(port, protocol)| json!({ "portMapping": { "port": port, "protocol": protocol } }))
        .collect();
    json!({ "listeners": listeners })
}

fn node_dep(name: &str, port: i64) -> Dep {
    Dep {
        kind: Kind::VirtualNode,
        name: name.to_string(),
        spec: json!({
            "listeners": [{ "portMapping": { "port": port, "protocol": "http" } }],
            "serviceDiscovery": { "dns": { "hostname": format!("{name}.local") } },
        }),
    }
}

fn weighted_targets(nodes: &[(String, i64)]) -> Gen<Value> {
    subsequence(nodes.to_vec(), 1..=nodes.len())
        .prop_flat_map(|chosen| {
            chosen
                .into_iter()
                .map(|(node, port)| {
                    (edge(0, 100), any::<bool>()).prop_map(move |(weight, with_port)| {
                        (node.clone(), port, weight, with_port)
                    })
                })
                .collect::<Vec<_>>()
        })
        .prop_map(|mut targets| {
            if targets.iter().all(|target| target.2 == 0) {
                targets[0].2 = 1;
            }
            let targets = targets
                .into_iter()
                .map(|(node, port, weight, with_port)| {
                    obj(vec![
                        ("virtualNode", Some(json!(node))),
                        ("weight", Some(json!(weight))),
                        ("port", with_port.then(|| json!(port))),
                    ])
                })
                .collect();
            Value::Array(targets)
        })
        .boxed()
}

/// The member that says where an HTTP route matches: a prefix, an exact path or a regex.
fn prefix_or_path() -> Gen<(&'static str, Value)> {
    prop_oneof![
        http_path().prop_map(|prefix| ("prefix", json!(prefix))),
        http_path().prop_map(|path| ("path", json!({ "exact": path }))),
        regex_value().prop_map(|regex| ("path", json!({ "regex": regex }))),
    ]
    .boxed()
}

fn match_method() -> Gen<Value> {
    let value = || bounded("[a-zA-Z0-9._/-]{1,20}", 255);
    prop_oneof![
        value().prop_map(|v| json!({ "exact": v })),
        value().prop_map(|v| json!({ "prefix": v })),
        value().prop_map(|v| json!({ "suffix": v })),
        regex_value().prop_map(|v| json!({ "regex": v })),
        (-1_000_000i64..1_000_000, 1i64..1_000_000).prop_map(
            |(start, length)| json!({ "range": { "start": start, "end": start + length } })
        ),
    ]
    .boxed()
}

/// A header (or gRPC metadata) match.
fn header() -> Gen<Value> {
    (
        bounded("[a-z][a-z0-9-]{0,15}", 50),
        maybe(flag()),
        maybe(match_method()),
    )
        .prop_map(|(name, invert, m)| {
            obj(vec![
                ("name", Some(json!(name))),
                ("invert", invert),
                ("match", m),
            ])
        })
        .boxed()
}

fn query_parameters() -> Gen<Value> {
    let parameter = (
        "[a-z][a-z0-9_]{0,10}",
        maybe("[a-zA-Z0-9._-]{1,10}".prop_map(|exact| json!({ "exact": exact }))),
    )
        .prop_map(|(name, m)| obj(vec![("name", Some(json!(name))), ("match", m)]));
    up_to_ten(parameter)
}

fn http_retry_events() -> Gen<Value> {
    subsequence(
        &[
            "server-error",
            "gateway-error",
            "client-error",
            "stream-error",
        ][..],
        1..=4,
    )
    .prop_map(|events| json!(events))
    .boxed()
}

fn http_retry_policy() -> Gen<Value> {
    let tcp = json!(["connection-error"]);
    let events = prop_oneof![
        http_retry_events().prop_map(|http| (Some(http), None)),
        Just((None, Some(tcp.clone()))),
        http_retry_events().prop_map(move |http| (Some(http), Some(tcp.clone()))),
    ];
    (int(0, 10), duration(), events)
        .prop_map(|(retries, timeout, (http, tcp))| {
            obj(vec![
                ("maxRetries", Some(retries)),
                ("perRetryTimeout", Some(timeout)),
                ("httpRetryEvents", http),
                ("tcpRetryEvents", tcp),
            ])
        })
        .boxed()
}

fn route_timeout() -> Gen<Value> {
    (maybe(duration()), maybe(duration()))
        .prop_map(|(idle, per_request)| obj(vec![("idle", idle), ("perRequest", per_request)]))
        .boxed()
}

fn http_route(port: Option<i64>, nodes: &[(String, i64)]) -> Gen<Value> {
    let route_match = (
        prefix_or_path(),
        maybe(up_to_ten(header())),
        maybe(word(METHODS)),
        maybe(word(&["http", "https"])),
        maybe(query_parameters()),
    )
        .prop_map(move |((key, target), headers, method, scheme, query)| {
            obj(vec![
                (key, Some(target)),
                ("headers", headers),
                ("method", method),
                ("scheme", scheme),
                ("queryParameters", query),
                ("port", port.map(|port| json!(port))),
            ])
        });
    (
        route_match,
        weighted_targets(nodes),
        maybe(http_retry_policy()),
        maybe(route_timeout()),
    )
        .prop_map(|(route_match, targets, retry, timeout)| {
            obj(vec![
                ("match", Some(route_match)),
                ("action", Some(json!({ "weightedTargets": targets }))),
                ("retryPolicy", retry),
                ("timeout", timeout),
            ])
        })
        .boxed()
}

fn grpc_route(port: Option<i64>, nodes: &[(String, i64)]) -> Gen<Value> {
    let route_match = (
        maybe(string("[a-z]+(\\.[a-z]+){0,2}")),
        maybe(string(bounded("[a-zA-Z][a-zA-Z0-9]{0,15}", 50))),
        maybe(up_to_ten(header())),
    )
        .prop_map(move |(service, method, metadata)| {
            // A method name needs the service name it belongs to.
            let method = if service.is_some() { method } else { None };
            obj(vec![
                ("serviceName", service),
                ("methodName", method),
                ("metadata", metadata),
                ("port", port.map(|port| json!(port))),
            ])
        });
    let grpc_events = subsequence(
        &[
            "cancelled",
            "deadline-exceeded",
            "internal",
            "resource-exhausted",
            "unavailable",
        ][..],
        1..=5,
    )
    .prop_map(|events| json!(events));
    let retry = (
        int(0, 10),
        duration(),
        maybe(grpc_events),
        maybe(http_retry_events()),
        any::<bool>(),
    )
        .prop_map(|(retries, timeout, grpc, http, with_tcp)| {
            let tcp = with_tcp.then(|| json!(["connection-error"]));
            // At least one kind of event.
            let grpc = if grpc.is_none() && http.is_none() && tcp.is_none() {
                Some(json!(["unavailable"]))
            } else {
                grpc
            };
            obj(vec![
                ("maxRetries", Some(retries)),
                ("perRetryTimeout", Some(timeout)),
                ("grpcRetryEvents", grpc),
                ("httpRetryEvents", http),
                ("tcpRetryEvents", tcp),
            ])
        });
    (
        route_match,
        weighted_targets(nodes),
        maybe(retry),
        maybe(route_timeout()),
    )
        .prop_map(|(route_match, targets, retry, timeout)| {
            obj(vec![
                ("match", Some(route_match)),
                ("action", Some(json!({ "weightedTargets": targets }))),
                ("retryPolicy", retry),
                ("timeout", timeout),
            ])
        })
        .boxed()
}

fn tcp_route(port: Option<i64>, nodes: &[(String, i64)]) -> Gen<Value> {
    let route_match = match port {
        Some(port) => Just(Some(json!({ "port": port }))).boxed(),
        None => prop_oneof![Just(None), Just(Some(json!({})))].boxed(),
    };
    (
        route_match,
        weighted_targets(nodes),
        maybe(maybe(duration()).prop_map(|idle| obj(vec![("idle", idle)]))),
    )
        .prop_map(|(route_match, targets, timeout)| {
            obj(vec![
                ("action", Some(json!({ "weightedTargets": targets }))),
                ("match", route_match),
                ("timeout", timeout),
            ])
        })
        .boxed()
}

/// A route for one of the router's listeners, of that listener's protocol; the match
/// names the listener's port whenever the router has more than one.
fn route_spec(listeners: &[(i64, &'static str)], nodes: &[(String, i64)]) -> Gen<Value> {
    let several = listeners.len() > 1;
    let nodes = nodes.to_vec();
    (
        select(listeners.to_vec()),
        any::<bool>(),
        maybe(int(0, 1000)),
    )
        .prop_flat_map(move |((port, protocol), name_port, priority)| {
            let port = (several || name_port).then_some(port);
            let (key, route) = match protocol {
                "http" => ("httpRoute", http_route(port, &nodes)),
                "http2" => ("http2Route", http_route(port, &nodes)),
                "grpc" => ("grpcRoute", grpc_route(port, &nodes)),
                _ => ("tcpRoute", tcp_route(port, &nodes)),
            };
            route.prop_map(move |route| {
                obj(vec![(key, Some(route)), ("priority", priority.clone())])
            })
        })
        .boxed()
}

fn hostname_match() -> Gen<Value> {
    prop_oneof![
        bounded("[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){1,2}", 253)
            .prop_map(|host| json!({ "exact": host })),
        prop_oneof![
            5 => "\\.[a-z][a-z0-9-]{0,10}\\.(com|org|local)",
            1 => Just(format!(".{}", "s".repeat(252))),
        ]
        .prop_map(|suffix| json!({ "suffix": suffix })),
    ]
    .boxed()
}

fn gateway_target(node_port: i64) -> Gen<Value> {
    any::<bool>()
        .prop_map(move |with_port| {
            obj(vec![
                (
                    "virtualService",
                    Some(json!({ "virtualServiceName": SERVICE })),
                ),
                ("port", with_port.then(|| json!(node_port))),
            ])
        })
        .boxed()
}

fn hostname_rewrite() -> Gen<Value> {
    word(ENABLED)
        .prop_map(|value| json!({ "defaultTargetHostname": value }))
        .boxed()
}

fn http_gateway_route(port: Option<i64>, node_port: i64) -> Gen<Value> {
    let prefix_rewrite = prop_oneof![
        word(ENABLED).prop_map(|value| json!({ "defaultPrefix": value })),
        http_path().prop_map(|value| json!({ "value": value })),
    ];
    (
        prop_oneof![3 => prefix_or_path().prop_map(Some), 1 => Just(None)],
        hostname_match(),
        any::<bool>(),
        maybe(up_to_ten(header())),
        maybe(word(METHODS)),
        maybe(query_parameters()),
        gateway_target(node_port),
        maybe(hostname_rewrite()),
        maybe(prefix_rewrite),
        maybe(http_path().prop_map(|path| json!({ "exact": path }))),
    )
        .prop_map(
            move |(
                target,
                hostname,
                with_hostname,
                headers,
                method,
                query,
                action_target,
                host,
                prefix,
                path,
            )| {
                // A match needs a prefix, a path or a hostname.
                let hostname = (target.is_none() || with_hostname).then_some(hostname);
                let (match_prefix, match_path) = match target {
                    Some(("prefix", prefix)) => (Some(prefix), None),
                    Some((_, path)) => (None, Some(path)),
                    None => (None, None),
                };
                // A prefix rewrite goes with a prefix match, a path rewrite with an exact path.
                let prefix = prefix.filter(|_| match_prefix.is_some());
                let path = path.filter(|_| {
                    match_path
                        .as_ref()
                        .is_some_and(|p| p.get("exact").is_some())
                });
                let rewrite = obj(vec![("hostname", host), ("prefix", prefix), ("path", path)]);
                let rewrite = (rewrite != json!({})).then_some(rewrite);
                let route_match = obj(vec![
                    ("prefix", match_prefix),
                    ("path", match_path),
                    ("hostname", hostname),
                    ("headers", headers),
                    ("method", method),
                    ("queryParameters", query),
                    ("port", port.map(|port| json!(port))),
                ]);
                json!({
                    "match": route_match,
                    "action": obj(vec![("target", Some(action_target)), ("rewrite", rewrite)]),
                })
            },
        )
        .boxed()
}

fn grpc_gateway_route(port: Option<i64>, node_port: i64) -> Gen<Value> {
    (
        maybe(string("[a-z]+(\\.[a-z]+){0,2}")),
        maybe(hostname_match()),
        maybe(up_to_ten(header())),
        gateway_target(node_port),
        maybe(hostname_rewrite()),
    )
        .prop_map(move |(service, hostname, metadata, target, host)| {
            let route_match = obj(vec![
                ("serviceName", service),
                ("hostname", hostname),
                ("metadata", metadata),
                ("port", port.map(|port| json!(port))),
            ]);
            let rewrite = host.map(|host| json!({ "hostname": host }));
            json!({
                "match": route_match,
                "action": obj(vec![("target", Some(target)), ("rewrite", rewrite)]),
            })
        })
        .boxed()
}

fn gateway_route_spec(listeners: &[(i64, &'static str)], node_port: i64) -> Gen<Value> {
    let several = listeners.len() > 1;
    (
        select(listeners.to_vec()),
        any::<bool>(),
        maybe(int(0, 1000)),
    )
        .prop_flat_map(move |((port, protocol), name_port, priority)| {
            let port = (several || name_port).then_some(port);
            let (key, route) = match protocol {
                "grpc" => ("grpcRoute", grpc_gateway_route(port, node_port)),
                "http2" => ("http2Route", http_gateway_route(port, node_port)),
                _ => ("httpRoute", http_gateway_route(port, node_port)),
            };
            route.prop_map(move |route| {
                obj(vec![(key, Some(route)), ("priority", priority.clone())])
            })
        })
        .boxed()
}

fn virtual_gateway_listener(port: i64, protocol: &'static str) -> Gen<Value> {
    (
        maybe(connection_pool(protocol)),
        maybe(health_check(VG_PROTOCOLS)),
        maybe(listener_tls()),
    )
        .prop_map(move |(pool, health, tls)| {
            obj(vec![
                (
                    "portMapping",
                    Some(json!({ "port": port, "protocol": protocol })),
                ),
                ("connectionPool", pool),
                ("healthCheck", health),
                ("tls", tls),
            ])
        })
        .boxed()
}

fn virtual_gateway_spec() -> Gen<Value> {
    let listeners = listener_set(VG_PROTOCOLS, 1..=3).prop_flat_map(|listeners| {
        listeners
            .into_iter()
            .map(|(port, protocol)| virtual_gateway_listener(port, protocol))
            .collect::<Vec<_>>()
    });
    (
        listeners,
        maybe(maybe(client_policy()).prop_map(|policy| obj(vec![("clientPolicy", policy)]))),
        maybe(logging()),
    )
        .prop_map(|(listeners, defaults, logging)| {
            obj(vec![
                ("listeners", Some(Value::Array(listeners))),
                ("backendDefaults", defaults),
                ("logging", logging),
            ])
        })
        .boxed()
}

/// Completes a case of `kind` from its specs.
fn finish(
    kind: Kind,
    parent: Option<&str>,
    parent_ports: Vec<i64>,
    deps: Vec<Dep>,
    specs: impl Strategy<Value = (Option<Value>, Option<Value>)> + 'static,
) -> Gen<Case> {
    let parent = parent.map(str::to_string);
    let name = if kind == Kind::VirtualService {
        service_name()
    } else {
        resource_name()
    };
    (resource_name(), name, tags(), specs)
        .prop_map(move |(mesh, name, tags, (spec, update))| Case {
            kind,
            mesh,
            parent: parent.clone(),
            parent_ports: parent_ports.clone(),
            deps: deps.clone(),
            name,
            spec,
            update,
            tags,
        })
        .boxed()
}

fn both(spec: fn() -> Gen<Value>) -> Gen<(Option<Value>, Option<Value>)> {
    (spec(), spec())
        .prop_map(|(a, b)| (Some(a), Some(b)))
        .boxed()
}

fn mesh_case() -> Gen<Case> {
    // A mesh may be created without a spec; it is always updated with one.
    let specs = (
        prop_oneof![1 => Just(None), 4 => mesh_spec().prop_map(Some)],
        mesh_spec().prop_map(Some),
    );
    finish(Kind::Mesh, None, Vec::new(), Vec::new(), specs)
}

fn virtual_node_case() -> Gen<Case> {
    finish(
        Kind::VirtualNode,
        None,
        Vec::new(),
        Vec::new(),
        both(virtual_node_spec),
    )
}

fn virtual_router_case() -> Gen<Case> {
    let spec = || {
        listener_set(PROTOCOLS, 1..=3)
            .prop_map(|l| listeners_json(&l))
            .boxed()
    };
    finish(
        Kind::VirtualRouter,
        None,
        Vec::new(),
        Vec::new(),
        both(spec),
    )
}

fn virtual_service_case() -> Gen<Case> {
    let spec = || {
        prop_oneof![
            Just(json!({})),
            Just(json!({ "provider": { "virtualNode": { "virtualNodeName": "node-0" } } })),
            Just(json!({ "provider": { "virtualRouter": { "virtualRouterName": "router" } } })),
        ]
        .boxed()
    };
    let deps = vec![
        node_dep("node-0", 8080),
        Dep {
            kind: Kind::VirtualRouter,
            name: "router".into(),
            spec: listeners_json(&[(8080, "http")]),
        },
    ];
    finish(Kind::VirtualService, None, Vec::new(), deps, both(spec))
}

fn virtual_gateway_case() -> Gen<Case> {
    finish(
        Kind::VirtualGateway,
        None,
        Vec::new(),
        Vec::new(),
        both(virtual_gateway_spec),
    )
}

fn route_case() -> Gen<Case> {
    let node_ports =
        prop_oneof![3 => 1usize..=3, 1 => Just(10usize)].prop_flat_map(|n| ports(n..=n));
    (listener_set(PROTOCOLS, 1..=3), node_ports)
        .prop_flat_map(|(listeners, node_ports)| {
            let nodes: Vec<(String, i64)> = node_ports
                .iter()
                .enumerate()
                .map(|(i, port)| (format!("node-{i}"), *port))
                .collect();
            let mut deps: Vec<Dep> = nodes
                .iter()
                .map(|(name, port)| node_dep(name, *port))
                .collect();
            deps.push(Dep {
                kind: Kind::VirtualRouter,
                name: "router".into(),
                spec: listeners_json(&listeners),
            });
            let specs = (
                route_spec(&listeners, &nodes),
                route_spec(&listeners, &nodes),
            )
                .prop_map(|(spec, update)| (Some(spec), Some(update)));
            let ports = listeners.iter().map(|(port, _)| *port).collect();
            finish(Kind::Route, Some("router"), ports, deps, specs)
        })
        .boxed()
}

fn gateway_route_case() -> Gen<Case> {
    (listener_set(VG_PROTOCOLS, 1..=3), port())
        .prop_flat_map(|(listeners, node_port)| {
            let deps = vec![
                node_dep("node-0", node_port),
                Dep {
                    kind: Kind::VirtualService,
                    name: SERVICE.into(),
                    spec: json!({ "provider": { "virtualNode": { "virtualNodeName": "node-0" } } }),
                },
                Dep {
                    kind: Kind::VirtualGateway,
                    name: "gateway".into(),
                    spec: listeners_json(&listeners),
                },
            ];
            let specs = (
                gateway_route_spec(&listeners, node_port),
                gateway_route_spec(&listeners, node_port),
            )
                .prop_map(|(spec, update)| (Some(spec), Some(update)));
            let ports = listeners.iter().map(|(port, _)| *port).collect();
            finish(Kind::GatewayRoute, Some("gateway"), ports, deps, specs)
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------
// The API model, as an oracle
// ---------------------------------------------------------------------------------------

/// A member's type in [`MODEL`].
#[derive(Debug, Clone)]
enum Ty {
    Shape(String),
    Str {
        min: usize,
        max: Option<usize>,
        pattern: Option<regex::Regex>,
    },
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Bool,
    Enum(Vec<String>),
    List {
        min: usize,
        max: Option<usize>,
        item: Box<Ty>,
    },
}

#[derive(Debug)]
struct Member {
    name: String,
    required: bool,
    ty: Ty,
}

#[derive(Debug)]
struct ShapeDef {
    union: bool,
    members: Vec<Member>,
}

struct Schema {
    shapes: BTreeMap<String, ShapeDef>,
}

static MODEL_SCHEMA: LazyLock<Schema> = LazyLock::new(|| Schema::parse(MODEL));

/// `[min..max]` with either bound left out.
fn parse_bounds(text: &str) -> (Option<i64>, Option<i64>, &str) {
    let end = text.find(']').expect("bounds end with ]");
    let (lo, hi) = text[1..end].split_once("..").expect("bounds are lo..hi");
    let bound = |b: &str| (!b.is_empty()).then(|| b.parse::<i64>().expect("a numeric bound"));
    (bound(lo), bound(hi), text[end + 1..].trim())
}

fn parse_ty(text: &str) -> Ty {
    if let Some(rest) = text.strip_prefix("list") {
        let (min, max, item) = parse_bounds(rest);
        Ty::List {
            min: min.unwrap_or(0) as usize,
            max: max.map(|max| max as usize),
            item: Box::new(parse_ty(item)),
        }
    } else if let Some(rest) = text.strip_prefix("str") {
        let (min, max, pattern) = parse_bounds(rest);
        let pattern = (!pattern.is_empty()).then(|| {
            let pattern = pattern
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix('/'))
                .expect("/pattern/");
            regex::Regex::new(pattern).expect("the model's patterns compile")
        });
        Ty::Str {
            min: min.unwrap_or(0) as usize,
            max: max.map(|max| max as usize),
            pattern,
        }
    } else if let Some(rest) = text.strip_prefix("int") {
        let (min, max, _) = parse_bounds(rest);
        Ty::Int { min, max }
    } else if text == "bool" {
        Ty::Bool
    } else if let Some(rest) = text.strip_prefix("enum(") {
        Ty::Enum(
            rest.trim_end_matches(')')
                .split('|')
                .map(str::to_string)
                .collect(),
        )
    } else {
        Ty::Shape(text.to_string())
    }
}

impl Schema {
    fn parse(text: &str) -> Schema {
        let mut shapes = BTreeMap::new();
        let mut current: Option<(String, ShapeDef)> = None;
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            if let Some(member) = line.strip_prefix("  ") {
                let (name, ty) = member.split_once(' ').expect("a member is `name type`");
                let (required, name) = match name.strip_prefix('*') {
                    Some(name) => (true, name),
                    None => (false, name),
                };
                let (_, shape) = current.as_mut().expect("members follow a shape");
                shape.members.push(Member {
                    name: name.to_string(),
                    required,
                    ty: parse_ty(ty),
                });
            } else {
                shapes.extend(current.take());
                let (name, union) = match line.split_once(' ') {
                    Some((name, "union")) => (name, true),
                    _ => (line, false),
                };
                current = Some((
                    name.to_string(),
                    ShapeDef {
                        union,
                        members: Vec::new(),
                    },
                ));
            }
        }
        shapes.extend(current);
        let schema = Schema { shapes };
        for shape in schema.shapes.values() {
            for member in &shape.members {
                schema.assert_known(&member.ty);
            }
        }
        schema
    }

    fn assert_known(&self, ty: &Ty) {
        match ty {
            Ty::Shape(name) => assert!(
                self.shapes.contains_key(name),
                "MODEL names unknown shape {name}"
            ),
            Ty::List { item, .. } => self.assert_known(item),
            _ => {}
        }
    }

    /// Whether `value` fits `ty` in every respect the model states.
    fn check(&self, ty: &Ty, value: &Value, at: &str) -> Result<(), String> {
        match ty {
            Ty::Shape(name) => {
                let shape = &self.shapes[name];
                let Value::Object(members) = value else {
                    return Err(format!("{at}: {name} must be an object"));
                };
                if let Some(unknown) = members
                    .keys()
                    .find(|key| !shape.members.iter().any(|m| &m.name == *key))
                {
                    return Err(format!("{at}.{unknown}: not a member of {name}"));
                }
                let mut set = 0;
                for member in &shape.members {
                    match members.get(&member.name) {
                        Some(value) => {
                            set += 1;
                            self.check(&member.ty, value, &format!("{at}.{}", member.name))?;
                        }
                        None if member.required => {
                            return Err(format!("{at}.{}: required", member.name));
                        }
                        None => {}
                    }
                }
                if shape.union && set != 1 {
                    return Err(format!("{at}: union {name} has {set} members set"));
                }
                Ok(())
            }
            Ty::Str { min, max, pattern } => {
                let Some(text) = value.as_str() else {
                    return Err(format!("{at}: not a string"));
                };
                let len = text.chars().count();
                if len < *min || max.is_some_and(|max| len > max) {
                    return Err(format!("{at}: length {len} outside {min}..{max:?}"));
                }
                if pattern
                    .as_ref()
                    .is_some_and(|pattern| !pattern.is_match(text))
                {
                    return Err(format!("{at}: does not match the pattern"));
                }
                Ok(())
            }
            Ty::Int { min, max } => {
                let Some(number) = value.as_i64() else {
                    return Err(format!("{at}: not an integer"));
                };
                if min.is_some_and(|min| number < min) || max.is_some_and(|max| number > max) {
                    return Err(format!("{at}: {number} outside {min:?}..{max:?}"));
                }
                Ok(())
            }
            Ty::Bool => value
                .is_boolean()
                .then_some(())
                .ok_or(format!("{at}: not a boolean")),
            Ty::Enum(values) => value
                .as_str()
                .is_some_and(|text| values.iter().any(|v| v == text))
                .then_some(())
                .ok_or(format!("{at}: not one of {values:?}")),
            Ty::List { min, max, item } => {
                let Some(items) = value.as_array() else {
                    return Err(format!("{at}: not a list"));
                };
                if items.len() < *min || max.is_some_and(|max| items.len() > max) {
                    return Err(format!(
                        "{at}: {} items outside {min}..{max:?}",
                        items.len()
                    ));
                }
                for (i, value) in items.iter().enumerate() {
                    self.check(item, value, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
        }
    }

    /// A small value that fits `ty`.
    fn minimal(&self, ty: &Ty) -> Value {
        match ty {
            Ty::Shape(name) => {
                let shape = &self.shapes[name];
                let members = shape
                    .members
                    .iter()
                    .filter(|m| m.required)
                    .chain(shape.members.iter().take(usize::from(shape.union)));
                Value::Object(
                    members
                        .map(|m| (m.name.clone(), self.minimal(&m.ty)))
                        .collect(),
                )
            }
            Ty::Str { min, .. } => json!("a".repeat((*min).max(1))),
            Ty::Int { min, .. } => json!(min.unwrap_or(0).max(0)),
            Ty::Bool => json!(false),
            Ty::Enum(values) => json!(values[0]),
            Ty::List { min, item, .. } => Value::Array(vec![self.minimal(item); *min]),
        }
    }

    /// Every single change to `value` (of type `ty`, at `path`) that breaks the model.
    fn mutations(&self, ty: &Ty, value: &Value, path: &str, out: &mut Vec<Mutation>) {
        let mut add =
            |category, what: String, value| out.push(Mutation::model(category, what, path, value));
        match (ty, value) {
            (Ty::Shape(name), Value::Object(members)) => {
                add(
                    "wrong JSON type",
                    format!("a string instead of a {name}"),
                    Some(json!("not an object")),
                );
                let shape = &self.shapes[name];
                // serde's derived structs would take their members as a list, in order.
                let as_list = shape
                    .members
                    .iter()
                    .map(|m| members.get(&m.name).cloned().unwrap_or(Value::Null))
                    .collect();
                out.push(Mutation::model(
                    "wrong JSON type",
                    format!("a list of its members instead of a {name}"),
                    path,
                    Some(Value::Array(as_list)),
                ));
                out.push(Mutation::model(
                    "unknown member",
                    format!("an unknown member of {name}"),
                    &format!("{path}/bogusMember"),
                    Some(json!("x")),
                ));
                let set = shape
                    .members
                    .iter()
                    .filter(|m| members.contains_key(&m.name))
                    .count();
                for member in &shape.members {
                    let at = format!("{path}/{}", member.name);
                    match members.get(&member.name) {
                        Some(value) => {
                            self.mutations(&member.ty, value, &at, out);
                            if member.required {
                                out.push(Mutation::model(
                                    "missing required member",
                                    format!("no {} in {name}", member.name),
                                    &at,
                                    None,
                                ));
                            }
                            if shape.union && set == 1 {
                                out.push(Mutation::model(
                                    "union",
                                    format!("no member of union {name}"),
                                    &at,
                                    None,
                                ));
                            }
                        }
                        None if shape.union && set == 1 => out.push(Mutation::model(
                            "union",
                            format!("a second member of union {name}"),
                            &at,
                            Some(self.minimal(&member.ty)),
                        )),
                        None => {}
                    }
                }
            }
            (Ty::Str { min, max, pattern }, Value::String(_)) => {
                if let Some(max) = max {
                    add(
                        "string too long",
                        format!("{} characters (max {max})", max + 1),
                        Some(json!("s".repeat(max + 1))),
                    );
                }
                if *min >= 1 {
                    add("empty string", "an empty string".into(), Some(json!("")));
                }
                if pattern.is_some() {
                    add(
                        "pattern",
                        "a string outside the pattern".into(),
                        Some(json!("\u{e9}t\u{e9}")),
                    );
                }
                add(
                    "wrong JSON type",
                    "a number instead of a string".into(),
                    Some(json!(12345)),
                );
            }
            (Ty::Int { min, max }, Value::Number(_)) => {
                if let Some(min) = min {
                    add(
                        "number out of range",
                        format!("{} (min {min})", min - 1),
                        Some(json!(min - 1)),
                    );
                }
                if let Some(max) = max {
                    add(
                        "number out of range",
                        format!("{} (max {max})", max + 1),
                        Some(json!(max + 1)),
                    );
                }
                add(
                    "wrong JSON type",
                    "a string instead of a number".into(),
                    Some(json!("1")),
                );
                add(
                    "wrong JSON type",
                    "a fraction instead of an integer".into(),
                    Some(json!(1.5)),
                );
            }
            (Ty::Bool, Value::Bool(_)) => {
                add(
                    "wrong JSON type",
                    "a string instead of a boolean".into(),
                    Some(json!("true")),
                );
            }
            (Ty::Enum(values), Value::String(current)) => {
                add(
                    "unknown enum value",
                    "an unknown enum value".into(),
                    Some(json!("BOGUS_VALUE")),
                );
                let recased = if current.to_uppercase() != *current {
                    current.to_uppercase()
                } else {
                    current.to_lowercase()
                };
                if !values.contains(&recased) {
                    add(
                        "unknown enum value",
                        format!("{recased:?}, the wrong case"),
                        Some(json!(recased)),
                    );
                }
                add(
                    "wrong JSON type",
                    "a number instead of an enum".into(),
                    Some(json!(1)),
                );
            }
            (Ty::List { min, max, item }, Value::Array(items)) => {
                if let Some(max) = max.filter(|_| !items.is_empty()) {
                    let over: Vec<Value> = items.iter().cycle().take(max + 1).cloned().collect();
                    add(
                        "list over its max",
                        format!("{} items (max {max})", max + 1),
                        Some(Value::Array(over)),
                    );
                }
                if *min >= 1 {
                    add(
                        "list under its min",
                        format!("no items (min {min})"),
                        Some(json!([])),
                    );
                }
                add(
                    "wrong JSON type",
                    "an object instead of a list".into(),
                    Some(json!({})),
                );
                for (i, value) in items.iter().enumerate() {
                    self.mutations(item, value, &format!("{path}/{i}"), out);
                }
            }
            (ty, value) => panic!("generator bug: {value} at {path} is not a {ty:?}"),
        }
    }
}

/// The spec shapes of botocore's App Mesh model (2019-01-25), one shape per line and one
/// member per indented line: `*` marks a required member, `union` a shape of which exactly
/// one member must be set; `str[min..max] /pattern/`, `int[min..max]` and
/// `list[min..max] item` carry the model's bounds (left out where it has none).
const MODEL: &str = r#"
MeshSpec
  egressFilter EgressFilter
  serviceDiscovery MeshServiceDiscovery
EgressFilter
  *type enum(ALLOW_ALL|DROP_ALL)
MeshServiceDiscovery
  ipPreference enum(IPv6_PREFERRED|IPv4_PREFERRED|IPv4_ONLY|IPv6_ONLY)
VirtualNodeSpec
  backendDefaults BackendDefaults
  backends list[..] Backend
  listeners list[..] Listener
  logging Logging
  serviceDiscovery ServiceDiscovery
BackendDefaults
  clientPolicy ClientPolicy
ClientPolicy
  tls ClientPolicyTls
ClientPolicyTls
  certificate ClientTlsCertificate
  enforce bool
  ports list[..] int[1..65535]
  *validation TlsValidationContext
ClientTlsCertificate union
  file ListenerTlsFileCertificate
  sds ListenerTlsSdsCertificate
ListenerTlsFileCertificate
  *certificateChain str[1..255]
  *privateKey str[1..255]
ListenerTlsSdsCertificate
  *secretName str[..]
TlsValidationContext
  subjectAlternativeNames SubjectAlternativeNames
  *trust TlsValidationContextTrust
SubjectAlternativeNames
  *match SubjectAlternativeNameMatchers
SubjectAlternativeNameMatchers
  *exact list[..] str[1..254]
TlsValidationContextTrust union
  acm TlsValidationContextAcmTrust
  file TlsValidationContextFileTrust
  sds TlsValidationContextSdsTrust
TlsValidationContextAcmTrust
  *certificateAuthorityArns list[1..3] str[..]
TlsValidationContextFileTrust
  *certificateChain str[1..255]
TlsValidationContextSdsTrust
  *secretName str[..]
Backend union
  virtualService VirtualServiceBackend
VirtualServiceBackend
  clientPolicy ClientPolicy
  *virtualServiceName str[..]
Listener
  connectionPool VirtualNodeConnectionPool
  healthCheck HealthCheckPolicy
  outlierDetection OutlierDetection
  *portMapping PortMapping
  timeout ListenerTimeout
  tls ListenerTls
VirtualNodeConnectionPool union
  grpc VirtualNodeGrpcConnectionPool
  http VirtualNodeHttpConnectionPool
  http2 VirtualNodeHttp2ConnectionPool
  tcp VirtualNodeTcpConnectionPool
VirtualNodeGrpcConnectionPool
  *maxRequests int[1..]
VirtualNodeHttpConnectionPool
  *maxConnections int[1..]
  maxPendingRequests int[1..]
VirtualNodeHttp2ConnectionPool
  *maxRequests int[1..]
VirtualNodeTcpConnectionPool
  *maxConnections int[1..]
HealthCheckPolicy
  *healthyThreshold int[2..10]
  *intervalMillis int[5000..300000]
  path str[..]
  port int[1..65535]
  *protocol enum(http|tcp|http2|grpc)
  *timeoutMillis int[2000..60000]
  *unhealthyThreshold int[2..10]
OutlierDetection
  *baseEjectionDuration Duration
  *interval Duration
  *maxEjectionPercent int[0..100]
  *maxServerErrors int[1..]
Duration
  unit enum(s|ms)
  value int[0..]
PortMapping
  *port int[1..65535]
  *protocol enum(http|tcp|http2|grpc)
ListenerTimeout union
  grpc GrpcTimeout
  http HttpTimeout
  http2 HttpTimeout
  tcp TcpTimeout
GrpcTimeout
  idle Duration
  perRequest Duration
HttpTimeout
  idle Duration
  perRequest Duration
TcpTimeout
  idle Duration
ListenerTls
  *certificate ListenerTlsCertificate
  *mode enum(STRICT|PERMISSIVE|DISABLED)
  validation ListenerTlsValidationContext
ListenerTlsCertificate union
  acm ListenerTlsAcmCertificate
  file ListenerTlsFileCertificate
  sds ListenerTlsSdsCertificate
ListenerTlsAcmCertificate
  *certificateArn str[..]
ListenerTlsValidationContext
  subjectAlternativeNames SubjectAlternativeNames
  *trust ListenerTlsValidationContextTrust
ListenerTlsValidationContextTrust union
  file TlsValidationContextFileTrust
  sds TlsValidationContextSdsTrust
Logging
  accessLog AccessLog
AccessLog union
  file FileAccessLog
FileAccessLog
  format LoggingFormat
  *path str[1..255]
LoggingFormat union
  json list[..] JsonFormatRef
  text str[1..1000]
JsonFormatRef
  *key str[1..100]
  *value str[1..100]
ServiceDiscovery union
  awsCloudMap AwsCloudMapServiceDiscovery
  dns DnsServiceDiscovery
AwsCloudMapServiceDiscovery
  attributes list[..] AwsCloudMapInstanceAttribute
  ipPreference enum(IPv6_PREFERRED|IPv4_PREFERRED|IPv4_ONLY|IPv6_ONLY)
  *namespaceName str[1..1024]
  *serviceName str[1..1024]
AwsCloudMapInstanceAttribute
  *key str[1..255] /^[a-zA-Z0-9!-~]+$/
  *value str[1..1024] /^([a-zA-Z0-9!-~][  a-zA-Z0-9!-~]*){0,1}[a-zA-Z0-9!-~]{0,1}$/
DnsServiceDiscovery
  *hostname str[..]
  ipPreference enum(IPv6_PREFERRED|IPv4_PREFERRED|IPv4_ONLY|IPv6_ONLY)
  responseType enum(LOADBALANCER|ENDPOINTS)
VirtualRouterSpec
  listeners list[..] VirtualRouterListener
VirtualRouterListener
  *portMapping PortMapping
RouteSpec
  grpcRoute GrpcRoute
  http2Route HttpRoute
  httpRoute HttpRoute
  priority int[0..1000]
  tcpRoute TcpRoute
GrpcRoute
  *action GrpcRouteAction
  *match GrpcRouteMatch
  retryPolicy GrpcRetryPolicy
  timeout GrpcTimeout
GrpcRouteAction
  *weightedTargets list[1..10] WeightedTarget
WeightedTarget
  port int[1..65535]
  *virtualNode str[1..255]
  *weight int[0..100]
GrpcRouteMatch
  metadata list[1..10] GrpcRouteMetadata
  methodName str[1..50]
  port int[1..65535]
  serviceName str[..]
GrpcRouteMetadata
  invert bool
  match GrpcRouteMetadataMatchMethod
  *name str[1..50]
GrpcRouteMetadataMatchMethod union
  exact str[1..255]
  prefix str[1..255]
  range MatchRange
  regex str[1..255]
  suffix str[1..255]
MatchRange
  *end int[..]
  *start int[..]
GrpcRetryPolicy
  grpcRetryEvents list[1..5] enum(cancelled|deadline-exceeded|internal|resource-exhausted|unavailable)
  httpRetryEvents list[1..25] str[1..25]
  *maxRetries int[0..]
  *perRetryTimeout Duration
  tcpRetryEvents list[1..1] enum(connection-error)
HttpRoute
  *action HttpRouteAction
  *match HttpRouteMatch
  retryPolicy HttpRetryPolicy
  timeout HttpTimeout
HttpRouteAction
  *weightedTargets list[1..10] WeightedTarget
HttpRouteMatch
  headers list[1..10] HttpRouteHeader
  method enum(GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH)
  path HttpPathMatch
  port int[1..65535]
  prefix str[..]
  queryParameters list[1..10] HttpQueryParameter
  scheme enum(http|https)
HttpRouteHeader
  invert bool
  match HeaderMatchMethod
  *name str[1..50]
HeaderMatchMethod union
  exact str[1..255]
  prefix str[1..255]
  range MatchRange
  regex str[1..255]
  suffix str[1..255]
HttpPathMatch
  exact str[1..255]
  regex str[1..255]
HttpQueryParameter
  match QueryParameterMatch
  *name str[..]
QueryParameterMatch
  exact str[..]
HttpRetryPolicy
  httpRetryEvents list[1..25] str[1..25]
  *maxRetries int[0..]
  *perRetryTimeout Duration
  tcpRetryEvents list[1..1] enum(connection-error)
TcpRoute
  *action TcpRouteAction
  match TcpRouteMatch
  timeout TcpTimeout
TcpRouteAction
  *weightedTargets list[1..10] WeightedTarget
TcpRouteMatch
  port int[1..65535]
VirtualServiceSpec
  provider VirtualServiceProvider
VirtualServiceProvider union
  virtualNode VirtualNodeServiceProvider
  virtualRouter VirtualRouterServiceProvider
VirtualNodeServiceProvider
  *virtualNodeName str[1..255]
VirtualRouterServiceProvider
  *virtualRouterName str[1..255]
VirtualGatewaySpec
  backendDefaults VirtualGatewayBackendDefaults
  *listeners list[..] VirtualGatewayListener
  logging VirtualGatewayLogging
VirtualGatewayBackendDefaults
  clientPolicy VirtualGatewayClientPolicy
VirtualGatewayClientPolicy
  tls VirtualGatewayClientPolicyTls
VirtualGatewayClientPolicyTls
  certificate VirtualGatewayClientTlsCertificate
  enforce bool
  ports list[..] int[1..65535]
  *validation VirtualGatewayTlsValidationContext
VirtualGatewayClientTlsCertificate union
  file VirtualGatewayListenerTlsFileCertificate
  sds VirtualGatewayListenerTlsSdsCertificate
VirtualGatewayListenerTlsFileCertificate
  *certificateChain str[1..255]
  *privateKey str[1..255]
VirtualGatewayListenerTlsSdsCertificate
  *secretName str[..]
VirtualGatewayTlsValidationContext
  subjectAlternativeNames SubjectAlternativeNames
  *trust VirtualGatewayTlsValidationContextTrust
VirtualGatewayTlsValidationContextTrust union
  acm VirtualGatewayTlsValidationContextAcmTrust
  file VirtualGatewayTlsValidationContextFileTrust
  sds VirtualGatewayTlsValidationContextSdsTrust
VirtualGatewayTlsValidationContextAcmTrust
  *certificateAuthorityArns list[1..3] str[..]
VirtualGatewayTlsValidationContextFileTrust
  *certificateChain str[1..255]
VirtualGatewayTlsValidationContextSdsTrust
  *secretName str[..]
VirtualGatewayListener
  connectionPool VirtualGatewayConnectionPool
  healthCheck VirtualGatewayHealthCheckPolicy
  *portMapping VirtualGatewayPortMapping
  tls VirtualGatewayListenerTls
VirtualGatewayConnectionPool union
  grpc VirtualGatewayGrpcConnectionPool
  http VirtualGatewayHttpConnectionPool
  http2 VirtualGatewayHttp2ConnectionPool
VirtualGatewayGrpcConnectionPool
  *maxRequests int[1..]
VirtualGatewayHttpConnectionPool
  *maxConnections int[1..]
  maxPendingRequests int[1..]
VirtualGatewayHttp2ConnectionPool
  *maxRequests int[1..]
VirtualGatewayHealthCheckPolicy
  *healthyThreshold int[2..10]
  *intervalMillis int[5000..300000]
  path str[..]
  port int[1..65535]
  *protocol enum(http|http2|grpc)
  *timeoutMillis int[2000..60000]
  *unhealthyThreshold int[2..10]
VirtualGatewayPortMapping
  *port int[1..65535]
  *protocol enum(http|http2|grpc)
VirtualGatewayListenerTls
  *certificate VirtualGatewayListenerTlsCertificate
  *mode enum(STRICT|PERMISSIVE|DISABLED)
  validation VirtualGatewayListenerTlsValidationContext
VirtualGatewayListenerTlsCertificate union
  acm VirtualGatewayListenerTlsAcmCertificate
  file VirtualGatewayListenerTlsFileCertificate
  sds VirtualGatewayListenerTlsSdsCertificate
VirtualGatewayListenerTlsAcmCertificate
  *certificateArn str[..]
VirtualGatewayListenerTlsValidationContext
  subjectAlternativeNames SubjectAlternativeNames
  *trust VirtualGatewayListenerTlsValidationContextTrust
VirtualGatewayListenerTlsValidationContextTrust union
  file VirtualGatewayTlsValidationContextFileTrust
  sds VirtualGatewayTlsValidationContextSdsTrust
VirtualGatewayLogging
  accessLog VirtualGatewayAccessLog
VirtualGatewayAccessLog union
  file VirtualGatewayFileAccessLog
VirtualGatewayFileAccessLog
  format LoggingFormat
  *path str[1..255]
GatewayRouteSpec
  grpcRoute GrpcGatewayRoute
  http2Route HttpGatewayRoute
  httpRoute HttpGatewayRoute
  priority int[0..1000]
GrpcGatewayRoute
  *action GrpcGatewayRouteAction
  *match GrpcGatewayRouteMatch
GrpcGatewayRouteAction
  rewrite GrpcGatewayRouteRewrite
  *target GatewayRouteTarget
GrpcGatewayRouteRewrite
  hostname GatewayRouteHostnameRewrite
GatewayRouteHostnameRewrite
  defaultTargetHostname enum(ENABLED|DISABLED)
GatewayRouteTarget
  port int[1..65535]
  *virtualService GatewayRouteVirtualService
GatewayRouteVirtualService
  *virtualServiceName str[1..255]
GrpcGatewayRouteMatch
  hostname GatewayRouteHostnameMatch
  metadata list[1..10] GrpcGatewayRouteMetadata
  port int[1..65535]
  serviceName str[..]
GatewayRouteHostnameMatch
  exact str[1..253]
  suffix str[1..253]
GrpcGatewayRouteMetadata
  invert bool
  match GrpcMetadataMatchMethod
  *name str[1..50]
GrpcMetadataMatchMethod union
  exact str[1..255]
  prefix str[1..255]
  range MatchRange
  regex str[1..255]
  suffix str[1..255]
HttpGatewayRoute
  *action HttpGatewayRouteAction
  *match HttpGatewayRouteMatch
HttpGatewayRouteAction
  rewrite HttpGatewayRouteRewrite
  *target GatewayRouteTarget
HttpGatewayRouteRewrite
  hostname GatewayRouteHostnameRewrite
  path HttpGatewayRoutePathRewrite
  prefix HttpGatewayRoutePrefixRewrite
HttpGatewayRoutePathRewrite
  exact str[1..255]
HttpGatewayRoutePrefixRewrite
  defaultPrefix enum(ENABLED|DISABLED)
  value str[1..255]
HttpGatewayRouteMatch
  headers list[1..10] HttpGatewayRouteHeader
  hostname GatewayRouteHostnameMatch
  method enum(GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH)
  path HttpPathMatch
  port int[1..65535]
  prefix str[..]
  queryParameters list[1..10] HttpQueryParameter
HttpGatewayRouteHeader
  invert bool
  match HeaderMatchMethod
  *name str[1..50]
TagRef
  *key str[1..128]
  *value str[0..256]
"#;
