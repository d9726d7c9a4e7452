"""Issue 12, C7: farm_registry, the multi-node farm's private registry as a platform
service: one task per node (global), port 5000 published in host mode so that
127.0.0.1:5000 on a node is its own task, storage bound from the node's
/srv/farm-registry. The single-node farm_up never deploys it."""

from __future__ import annotations

import re

import docker

from nodes.images import recipes
from nodes.platform import SECRET_FILES, registry_def, service_defs
from nodes.swarm import Health, Mount, Port
from nodes.swarm_services import _build


def test_the_registry_runs_on_every_node_with_its_port_on_the_nodes_loopback():
    sdef = registry_def()

    assert sdef.name == "farm_registry"
    assert sdef.global_mode
    assert sdef.ports == [Port(5000, 5000)]
    assert sdef.mounts == [Mount("/srv/farm-registry", "/var/lib/docker-registry", "bind")]
    assert sdef.networks == {}  # reached on the host port only
    assert sdef.constraints == []  # every node pulls from its own task


def test_the_health_check_asks_the_v2_api_with_busybox_every_30_s():
    health = registry_def().health
    assert health == Health(
        ("CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:5000/v2/"),
        interval_s=30,
        retries=3,
        start_period_s=10,
    )


def test_the_image_is_the_local_registry_build_unless_named():
    assert registry_def().image == recipes()["registry"].content_tag()
    assert re.fullmatch(r"farm/registry:[0-9a-f]{12}", registry_def().image)
    assert registry_def("farm/registry:aaaabbbbcccc").image == "farm/registry:aaaabbbbcccc"


def test_the_swarm_spec_is_global_with_a_host_mode_port():
    cli = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    spec = _build(cli, registry_def("farm/registry:aaaabbbbcccc"))

    assert spec["mode"] == {"global": {}}  # the SDK's form of Mode.Global
    assert spec["endpoint_spec"]["Ports"] == [
        {"PublishedPort": 5000, "TargetPort": 5000, "Protocol": "tcp", "PublishMode": "host"}
    ]
    container = spec["task_template"]["ContainerSpec"]
    assert container["Image"] == "farm/registry:aaaabbbbcccc"
    assert container["Mounts"] == [
        {
            "Target": "/var/lib/docker-registry",
            "Source": "/srv/farm-registry",
            "Type": "bind",
            "ReadOnly": False,
        }
    ]


def test_the_single_node_farm_does_not_deploy_the_registry():
    defs = service_defs({name: "x" for name in SECRET_FILES})
    assert "farm_registry" not in {s.name for s in defs}
    assert not any(p.published == 5000 for s in defs for p in s.ports)
    assert not any(m.source == "/srv/farm-registry" for s in defs for m in s.mounts)
