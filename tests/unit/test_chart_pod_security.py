"""The chart and Pod Security: `workloads.defaultSecurityContext` (restricted by default)
reaches the operator as `--default-security-context`, and the operator's own pod meets
Pod Security "restricted" in every value set."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flow_operator.models.security import SecurityDefault
from flow_operator.settings import Settings
from tests.unit.builders.test_security import restricted_violations
from tests.unit.test_chart import VALUE_SETS, helm_template, need_helm

Body = dict[str, Any]
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}  # fmt: skip


def deployment(*values: str) -> Body:
    need_helm()
    docs = [d for d in yaml.safe_load_all(helm_template(*values)) if d]
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return dict(found)


def args(*values: str) -> list[str]:
    (c,) = deployment(*values)["spec"]["template"]["spec"]["containers"]
    return list(c["args"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((), SecurityDefault.RESTRICTED),
        (("--set", "workloads.defaultSecurityContext=none"), SecurityDefault.NONE),
    ],
)
def test_the_default_reaches_the_operator(
    values: tuple[str, ...], expected: SecurityDefault
) -> None:
    rendered = args(*values)
    assert f"--default-security-context={expected.value}" in rendered
    assert Settings.parse(rendered, env={}).security is expected


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_operators_own_pod_meets_restricted(name: str) -> None:
    pod = deployment(*VALUE_SETS[name])["spec"]["template"]["spec"]
    for c in pod["containers"]:
        assert restricted_violations(pod.get("securityContext"), c.get("securityContext")) == []
        assert not any(p.get("hostPort") for p in c.get("ports") or ())
    for volume in pod.get("volumes") or ():
        assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, volume
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
