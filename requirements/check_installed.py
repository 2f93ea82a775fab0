"""Checks that an environment holds exactly the versions of a lock file, and that they fit together.

Run by `make setup` after installing the lock: `python requirements/check_installed.py LOCK --nodeps NAME...`.
Fails if a locked package is missing or at another version, or if `pip check` reports a broken
requirement of any package other than the --nodeps ones (those carry files only and are installed
without their declared dependencies on purpose).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("lock", type=Path)
    parser.add_argument("--nodeps", nargs="*", default=[], help="packages installed with --no-deps (name[==version])")
    args = parser.parse_args()
    installed = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    problems = [
        f"{name}: locked {version}, installed {installed.get(name, 'nothing')}"
        for name, version in read_lock(args.lock).items()
        if installed.get(name) != version
    ]
    nodeps = {canonical(spec.split("==")[0]) for spec in args.nodeps}
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    for line in check.stdout.splitlines():
        first = line.split(" ", 1)[0]
        if line.strip() and canonical(first) not in nodeps and not line.startswith("No broken requirements"):
            problems.append(f"pip check: {line}")
    if problems:
        raise SystemExit(f"{args.lock}: the environment does not match the lock\n  " + "\n  ".join(problems))
    print(f"{args.lock}: every locked package installed at its locked version")


if __name__ == "__main__":
    main()
