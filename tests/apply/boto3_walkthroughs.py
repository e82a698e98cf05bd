"""The resources of three corpus walkthroughs, transcribed by hand from their files and
sent with boto3, as a user would have sent them: the oracle `tests/apply.rs` compares
`meshd apply`'s result with. Usage: boto3_walkthroughs.py ENDPOINT WALKTHROUGH"""

import sys

import boto3

endpoint, walkthrough = sys.argv[1], sys.argv[2]
client = boto3.client(
    "appmesh",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="AKIDEXAMPLE",
    aws_secret_access_key="secret",
)


def http(port):
    return {"portMapping": {"port": port, "protocol": "http"}}


def dns_node(mesh, name, port, protocol, hostname, backends=()):
    client.create_virtual_node(
        meshName=mesh,
        virtualNodeName=name,
        spec={
            "listeners": [{"portMapping": {"port": port, "protocol": protocol}}],
            "serviceDiscovery": {"dns": {"hostname": hostname}},
            "backends": [{"virtualService": {"virtualServiceName": b}} for b in backends],
        },
    )


def node_service(mesh, name, node):
    client.create_virtual_service(
        meshName=mesh,
        virtualServiceName=name,
        spec={"provider": {"virtualNode": {"virtualNodeName": node}}},
    )


if walkthrough == "howto-grpc":
    # --parameter ProjectName=howto-grpc
    mesh = "howto-grpc-mesh"
    client.create_mesh(meshName=mesh)
    client.create_virtual_node(
        meshName=mesh,
        virtualNodeName="color_client",
        spec={
            "backends": [{"virtualService": {"virtualServiceName": "color_server.howto-grpc.local"}}],
            "listeners": [http(8080)],
            "serviceDiscovery": {"awsCloudMap": {"namespaceName": "howto-grpc.local", "serviceName": "color_client"}},
        },
    )
    client.create_virtual_node(
        meshName=mesh,
        virtualNodeName="color_server",
        spec={
            "listeners": [
                {
                    "portMapping": {"port": 8080, "protocol": "grpc"},
                    "healthCheck": {
                        "healthyThreshold": 2,
                        "intervalMillis": 5000,
                        "timeoutMillis": 2000,
                        "unhealthyThreshold": 3,
                        "port": 8080,
                        "protocol": "grpc",
                    },
                }
            ],
            "serviceDiscovery": {"awsCloudMap": {"namespaceName": "howto-grpc.local", "serviceName": "color_server"}},
        },
    )
    client.create_virtual_router(
        meshName=mesh,
        virtualRouterName="virtual-router",
        spec={"listeners": [{"portMapping": {"port": 8080, "protocol": "grpc"}}]},
    )
    client.create_virtual_service(
        meshName=mesh,
        virtualServiceName="color_server.howto-grpc.local",
        spec={"provider": {"virtualRouter": {"virtualRouterName": "virtual-router"}}},
    )
    client.create_route(
        meshName=mesh,
        virtualRouterName="virtual-router",
        routeName="route",
        spec={
            "grpcRoute": {
                "action": {"weightedTargets": [{"virtualNode": "color_server", "weight": 100}]},
                "match": {"serviceName": "color.ColorService", "methodName": "GetColor"},
            }
        },
    )
elif walkthrough == "eks-getting-started":
    # Stage 1 (the four yelb files) into the mesh yelb, which exists already.
    mesh = "yelb"
    client.create_mesh(meshName=mesh)
    dns_node(mesh, "yelb-db-virtual-node", 5432, "tcp", "yelb-db.yelb.svc.cluster.local")
    node_service(mesh, "yelb-db", "yelb-db-virtual-node")
    dns_node(mesh, "redis-server-virtual-node", 6379, "tcp", "redis-server.yelb.svc.cluster.local")
    node_service(mesh, "redis-server", "redis-server-virtual-node")
    dns_node(mesh, "yelb-ui-virtual-node", 80, "http", "yelb-ui.yelb.svc.cluster.local", ["yelb-appserver"])
    node_service(mesh, "yelb-ui", "yelb-ui-virtual-node")
    dns_node(
        mesh,
        "yelb-appserver-virtual-node",
        4567,
        "http",
        "yelb-appserver.yelb.svc.cluster.local",
        ["yelb-db", "redis-server"],
    )
    client.create_virtual_router(
        meshName=mesh, virtualRouterName="yelb-appserver-virtual-router", spec={"listeners": [http(4567)]}
    )
    client.create_route(
        meshName=mesh,
        virtualRouterName="yelb-appserver-virtual-router",
        routeName="route-to-yelb-appserver",
        spec={
            "httpRoute": {
                "match": {"prefix": "/"},
                "action": {"weightedTargets": [{"virtualNode": "yelb-appserver-virtual-node", "weight": 1}]},
                "retryPolicy": {
                    "maxRetries": 2,
                    "perRetryTimeout": {"unit": "ms", "value": 2000},
                    "httpRetryEvents": ["server-error", "client-error", "gateway-error"],
                },
            }
        },
    )
    client.create_virtual_service(
        meshName=mesh,
        virtualServiceName="yelb-appserver",
        spec={"provider": {"virtualRouter": {"virtualRouterName": "yelb-appserver-virtual-router"}}},
    )
elif walkthrough == "howto-mutual-tls-file-provided-by-acm":
    # infrastructure/mesh.yaml with its defaults (TlsState mtls) and the two exports given.
    mesh = "mtls-ec2-appmesh"
    domain = "mtls-ec2.svc.cluster.local"
    root_ca = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/teller"
    endpoint_cert = "arn:aws:acm:us-east-1:111122223333:certificate/teller"
    client.create_mesh(meshName=mesh)
    client.create_virtual_gateway(
        meshName=mesh,
        virtualGatewayName="gateway-vgw",
        spec={
            "backendDefaults": {
                "clientPolicy": {
                    "tls": {
                        "certificate": {
                            "file": {
                                "certificateChain": "/keys/colorgateway_endpoint_cert_chain.pem",
                                "privateKey": "/keys/colorgateway_endpoint_dec_pri_key.pem",
                            }
                        },
                        "enforce": True,
                        "validation": {"trust": {"acm": {"certificateAuthorityArns": [root_ca]}}},
                    }
                }
            },
            "listeners": [{"portMapping": {"port": 9080, "protocol": "http"}}],
        },
    )
    client.create_virtual_node(
        meshName=mesh,
        virtualNodeName="colorteller-vn",
        spec={
            "listeners": [
                {
                    "portMapping": {"port": 9080, "protocol": "http"},
                    "tls": {
                        "certificate": {"acm": {"certificateArn": endpoint_cert}},
                        "mode": "STRICT",
                        "validation": {
                            "trust": {"file": {"certificateChain": "/keys/colorgateway_endpoint_cert_chain.pem"}}
                        },
                    },
                }
            ],
            "serviceDiscovery": {"awsCloudMap": {"namespaceName": domain, "serviceName": "colorteller"}},
        },
    )
    node_service(mesh, f"colorteller.{domain}", "colorteller-vn")
    client.create_gateway_route(
        meshName=mesh,
        virtualGatewayName="gateway-vgw",
        gatewayRouteName="colorteller-route",
        spec={
            "httpRoute": {
                "action": {"target": {"virtualService": {"virtualServiceName": f"colorteller.{domain}"}}},
                "match": {"prefix": "/"},
            }
        },
    )
else:
    sys.exit(f"no transcription of {walkthrough}")
