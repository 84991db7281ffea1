"""The dashboard's vendored libraries are what the manifest pins (cluster/vendor.py
re-fetches them), each has its license beside it, and each is served under the CSP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flow_operator.api.server import STATIC_FILES

VENDOR = Path(__file__).parents[2] / "operator" / "flow_operator" / "api" / "static" / "vendor"
MANIFEST = json.loads((VENDOR / "MANIFEST.json").read_text())


def test_every_vendored_file_matches_its_pinned_sha256() -> None:
    for package in MANIFEST["packages"]:
        assert package["tarball"].startswith("https://registry.npmjs.org/")
        assert package["version"] in package["tarball"] and len(package["tarballSha256"]) == 64
        for name, meta in package["files"].items():
            data = (VENDOR / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == meta["sha256"], name


def test_the_manifest_names_every_file_and_each_package_keeps_its_license() -> None:
    listed = {n for p in MANIFEST["packages"] for n in p["files"]}
    assert {p.name for p in VENDOR.iterdir()} - {"MANIFEST.json"} == listed
    for package in MANIFEST["packages"]:
        assert package["license"] and any(n.endswith("LICENSE") for n in package["files"])


def test_the_scripts_are_served_from_the_allow_list() -> None:
    scripts = {n for p in MANIFEST["packages"] for n in p["files"] if n.endswith(".js")}
    assert {f"vendor/{n}" for n in scripts} <= set(STATIC_FILES)
