"""Re-fetch the dashboard's vendored libraries from the npm registry and check them.

    python cluster/vendor.py            fetch each package's tarball, check its sha256 and
                                        each file's, write the files into api/static/vendor/
    python cluster/vendor.py --check    only check the files on disk against the manifest
    python cluster/vendor.py --pin      after editing a version and tarball URL in the
                                        manifest: fetch, write, and record the new sha256s

The manifest is operator/flow_operator/api/static/vendor/MANIFEST.json (name, version,
license, the tarball URL and sha256, and per file its path in the tarball and sha256). No
npm client is needed: the tarball is a plain HTTPS download. docs/dashboard.md says how
to move to a new version.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

VENDOR = Path(__file__).resolve().parents[1] / "operator/flow_operator/api/static/vendor"
MANIFEST = VENDOR / "MANIFEST.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check(manifest: dict[str, Any]) -> list[str]:
    """What on disk does not match the manifest (empty: all matches)."""
    wrong = []
    for package in manifest["packages"]:
        for name, meta in package["files"].items():
            path = VENDOR / name
            if not path.exists():
                wrong.append(f"{name}: missing")
            elif sha256(path.read_bytes()) != meta["sha256"]:
                wrong.append(f"{name}: sha256 differs from the manifest ({package['name']})")
    return wrong


def fetch(package: dict[str, Any], pin: bool) -> None:
    with urllib.request.urlopen(package["tarball"], timeout=60) as response:
        tarball = response.read()
    got = sha256(tarball)
    if pin:
        package["tarballSha256"] = got
    elif got != package["tarballSha256"]:
        raise SystemExit(f"{package['tarball']}: sha256 {got}, the manifest pins another")
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for name, meta in package["files"].items():
            member = tar.extractfile(meta["from"])
            if member is None:
                raise SystemExit(f"{package['name']}: no {meta['from']} in the tarball")
            data = member.read()
            if pin:
                meta["sha256"] = sha256(data)
            elif sha256(data) != meta["sha256"]:
                raise SystemExit(f"{name}: sha256 {sha256(data)}, the manifest pins another")
            (VENDOR / name).write_bytes(data)
            print(f"{package['name']}@{package['version']}: {name} ({len(data)} bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the files on disk")
    parser.add_argument("--pin", action="store_true", help="record new sha256s")
    args = parser.parse_args(argv)
    manifest = json.loads(MANIFEST.read_text())
    if not args.check:
        for package in manifest["packages"]:
            fetch(package, args.pin)
        if args.pin:
            MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    wrong = check(manifest)
    for line in wrong:
        print(line, file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
