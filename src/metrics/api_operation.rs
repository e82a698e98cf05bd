//! The App Mesh operation a request path and method name (`CreateVirtualNode`): the
//! bounded `operation` label of the API metrics.

use axum::http::Method;

/// The operations on one kind: create, describe, update, delete, list.
struct KindOperations([&'static str; 5]);

const MESH: KindOperations = KindOperations([
    "CreateMesh",
    "DescribeMesh",
    "UpdateMesh",
    "DeleteMesh",
    "ListMeshes",
]);
const VIRTUAL_NODE: KindOperations = KindOperations([
    "CreateVirtualNode",
    "DescribeVirtualNode",
    "UpdateVirtualNode",
    "DeleteVirtualNode",
    "ListVirtualNodes",
]);
const VIRTUAL_ROUTER: KindOperations = KindOperations([
    "CreateVirtualRouter",
    "DescribeVirtualRouter",
    "UpdateVirtualRouter",
    "DeleteVirtualRouter",
    "ListVirtualRouters",
]);
const VIRTUAL_SERVICE: KindOperations = KindOperations([
    "CreateVirtualService",
    "DescribeVirtualService",
    "UpdateVirtualService",
    "DeleteVirtualService",
    "ListVirtualServices",
]);
const VIRTUAL_GATEWAY: KindOperations = KindOperations([
    "CreateVirtualGateway",
    "DescribeVirtualGateway",
    "UpdateVirtualGateway",
    "DeleteVirtualGateway",
    "ListVirtualGateways",
]);
const ROUTE: KindOperations = KindOperations([
    "CreateRoute",
    "DescribeRoute",
    "UpdateRoute",
    "DeleteRoute",
    "ListRoutes",
]);
const GATEWAY_ROUTE: KindOperations = KindOperations([
    "CreateGatewayRoute",
    "DescribeGatewayRoute",
    "UpdateGatewayRoute",
    "DeleteGatewayRoute",
    "ListGatewayRoutes",
]);

/// What a request that is no App Mesh operation is counted as.
const UNKNOWN: &str = "Unknown";

impl KindOperations {
    /// The operation of `method` on this kind's collection (`item` false) or one item.
    fn of(&self, method: &Method, item: bool) -> &'static str {
        let [create, describe, update, delete, list] = self.0;
        match (item, method.as_str()) {
            (false, "PUT") => create,
            (false, "GET") => list,
            (true, "GET") => describe,
            (true, "PUT") => update,
            (true, "DELETE") => delete,
            _ => UNKNOWN,
        }
    }
}

fn mesh_collection(segment: &str) -> Option<&'static KindOperations> {
    Some(match segment {
        "virtualNodes" => &VIRTUAL_NODE,
        "virtualRouters" => &VIRTUAL_ROUTER,
        "virtualServices" => &VIRTUAL_SERVICE,
        "virtualGateways" => &VIRTUAL_GATEWAY,
        _ => return None,
    })
}

/// The App Mesh operation of a request to `path` with `method` (`Unknown` for a path
/// under `/v20190125/` that names none), or `None` for a path outside the API
/// (`/metrics`, `/meshd/v1/...`).
pub fn operation(method: &Method, path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/v20190125/")?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let is = |m: Method| *method == m;
    Some(match segments.as_slice() {
        ["tag"] if is(Method::PUT) => "TagResource",
        ["untag"] if is(Method::PUT) => "UntagResource",
        ["tags"] if is(Method::GET) => "ListTagsForResource",
        ["meshes"] => MESH.of(method, false),
        ["meshes", _] => MESH.of(method, true),
        ["meshes", _, "virtualRouter", _, "routes"] => ROUTE.of(method, false),
        ["meshes", _, "virtualRouter", _, "routes", _] => ROUTE.of(method, true),
        ["meshes", _, "virtualGateway", _, "gatewayRoutes"] => GATEWAY_ROUTE.of(method, false),
        ["meshes", _, "virtualGateway", _, "gatewayRoutes", _] => GATEWAY_ROUTE.of(method, true),
        ["meshes", _, collection] => match mesh_collection(collection) {
            Some(kind) => kind.of(method, false),
            None => UNKNOWN,
        },
        ["meshes", _, collection, _] => match mesh_collection(collection) {
            Some(kind) => kind.of(method, true),
            None => UNKNOWN,
        },
        _ => UNKNOWN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_names_its_operation() {
        let cases = [
            (Method::PUT, "/v20190125/meshes", Some("CreateMesh")),
            (Method::GET, "/v20190125/meshes", Some("ListMeshes")),
            (Method::DELETE, "/v20190125/meshes/m", Some("DeleteMesh")),
            (
                Method::PUT,
                "/v20190125/meshes/m/virtualNodes/n",
                Some("UpdateVirtualNode"),
            ),
            (
                Method::GET,
                "/v20190125/meshes/m/virtualGateways",
                Some("ListVirtualGateways"),
            ),
            (
                Method::PUT,
                "/v20190125/meshes/m/virtualRouter/r/routes",
                Some("CreateRoute"),
            ),
            (
                Method::GET,
                "/v20190125/meshes/m/virtualGateway/g/gatewayRoutes/x",
                Some("DescribeGatewayRoute"),
            ),
            (Method::PUT, "/v20190125/tag", Some("TagResource")),
            (Method::GET, "/v20190125/tags", Some("ListTagsForResource")),
            (Method::GET, "/v20190125/meshes/m/things", Some(UNKNOWN)),
            (Method::POST, "/v20190125/meshes", Some(UNKNOWN)),
            (Method::GET, "/metrics", None),
            (Method::GET, "/meshd/v1/proxies", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(operation(&method, path), expected, "{method} {path}");
        }
    }
}
