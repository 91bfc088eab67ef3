"""The pieces outside the function's own code that Lambda provides: the runtime client.

Lambda's Python runtimes carry ``awslambdaric`` in /var/runtime; here it is installed
once per Python version under .local/runtime (gitignored), outside any function's path.
"""

from __future__ import annotations

import fcntl
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AWSLAMBDARIC = "awslambdaric==4.2.2"


def local_python_version() -> str:
    return ".".join(platform.python_version_tuple()[:2])


def base_python() -> str:
    """This interpreter without its virtual environment (for runs that must not see it)."""
    return getattr(sys, "_base_executable", sys.executable)


def runtime_dir(python_version: str | None = None, root: Path = ROOT) -> Path:
    """A directory holding awslambdaric for PYTHON_VERSION, installed on first use."""
    version = python_version or local_python_version()
    target = root / ".local" / "runtime" / f"python{version}"
    marker = target / ".installed"
    if not marker.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                str(target),
                "--only-binary=:all:",
                "--python-version",
                version,
                "--implementation",
                "cp",
                AWSLAMBDARIC,
            ],
            check=True,
        )
        marker.write_text(AWSLAMBDARIC + "\n")
    return target


def local_arch() -> str:
    """This machine's architecture in Lambda's words: the local variant's wheels run here."""
    return "arm64" if platform.machine() in {"aarch64", "arm64"} else "x86_64"


def build_dir(python_version: str | None = None, root: Path = ROOT) -> Path:
    """Where `make build PYTHON_VERSION=...` puts the built functions and layers (the
    Makefile's BUILD_DIR)."""
    version = python_version or local_python_version()
    variant = root / ".aws-sam" if version == "3.13" else root / ".aws-sam" / f"py{version}"
    return variant / "build"


class BuildError(RuntimeError):
    """`make build` failed; the message ends with its output."""


def build(python_version: str | None = None, root: Path = ROOT, *, quiet: bool = False) -> Path:
    """`make build` for this Python (cached by sam: quick when nothing changed)."""
    version = python_version or local_python_version()
    # Two builds of one directory at once break each other (sam: "Directory not empty"):
    # a test run and `make local` in another terminal take turns instead.
    lock_path = build_dir(version, root).parent / f".build-{version}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(version, root, quiet=quiet)


def _build(version: str, root: Path, *, quiet: bool) -> Path:
    command = [
        "make",
        "--no-print-directory",
        "build",
        f"PYTHON_VERSION={version}",
        f"ARCH={local_arch()}",
    ]
    if not quiet:
        subprocess.run(command, cwd=root, check=True)
        return build_dir(version, root)
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        raise BuildError(f"{' '.join(command)} failed:\n" + "\n".join(output[-40:]))
    return build_dir(version, root)
