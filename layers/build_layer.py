"""Build a Lambda layer offline: pip wheels for the target platform, pruned, stripped,
compiled to bytecode with the runtime's own Python when this machine has it.

    python build_layer.py deps   --requirements LOCK --flavour sklearn|onnx --out DIR
                                 --python-version 3.13 [--arch x86_64]
    python build_layer.py source --package PATH --name NAME --out DIR --python-version 3.13
                                 [--exclude MODULE ...]
    python build_layer.py check  BUILD_DIR [--limit-mib 230]

`check` also pins the built template's Architecture parameter to the architecture the
layers' wheels were built for, so a deploy with the other one fails before it starts.

Used by the Makefiles that ``sam build`` runs (BuildMethod: makefile); needs only pip.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
# Directories Lambda never imports from ("testing" packages are imported at runtime by
# sklearn and numpy, so they stay).
PRUNE_DIRS = {"tests", "test", "__pycache__", "include", "benchmarks"}
PRUNE_SUFFIXES = {".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp", ".pyi", ".md"}


@dataclass(frozen=True)
class Flavour:
    """What one dependency layer drops beyond the common pruning."""

    # The largest packages ship bytecode only (compiled next to where the sources were,
    # which Python imports without them): less to unzip at cold start. Their tracebacks
    # show file and line but not the source text.
    sourceless: tuple[str, ...]
    # Paths under site-packages (globs) that nothing the functions import ever loads.
    drop: tuple[str, ...] = ()


FLAVOURS = {
    "sklearn": Flavour(sourceless=("numpy", "scipy", "sklearn")),
    "onnx": Flavour(
        sourceless=("numpy", "onnxruntime"),
        drop=(
            # The Python extension does not link the C API library (28 MiB); it is
            # shipped for C/C++ users of the wheel.
            "onnxruntime/capi/libonnxruntime.so*",
            # Model tooling (converters, quantisation, transformer optimisers), not inference.
            "onnxruntime/tools",
            "onnxruntime/transformers",
            "onnxruntime/quantization",
            "onnxruntime/datasets",
            # Needed by that tooling only: `import onnxruntime` never loads them.
            "google",
            "protobuf-*.dist-info",
            "flatbuffers",
            "flatbuffers-*.dist-info",
            # numpy's Fortran wrapper generator and its build helpers.
            "numpy/f2py",
            "numpy/distutils",
            "numpy/_pyinstaller",
        ),
    ),
}


def platforms(arch: str) -> list[str]:
    machine = "aarch64" if arch == "arm64" else "x86_64"
    # numpy and scipy only publish manylinux_2_27/2_28 wheels for recent releases.
    return [f"manylinux2014_{machine}", f"manylinux_2_28_{machine}"]


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def runtime_python(version: str) -> str | None:
    """The exact CPython of the target runtime, if this machine has it (PATH or pyenv)."""
    pyenv = Path.home() / ".pyenv" / "versions"
    found = sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)
    candidates = [*map(str, found), shutil.which(f"python{version}")]
    for candidate in filter(None, candidates):
        # A pyenv shim exists on PATH even where that version is not selected: try it.
        probe = subprocess.run([candidate, "-c", "import sys"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def drop(site: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in site.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def prune(site: Path) -> None:
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in PRUNE_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in PRUNE_SUFFIXES:
            path.unlink()


def strip(site: Path) -> None:
    strip_exe = shutil.which("strip")
    if strip_exe is None:
        print("  strip not found: shared objects left unstripped")
        return
    # Libraries vendored by auditwheel (<dist>.libs/) were rewritten by patchelf, and
    # strip breaks their segment layout ("ELF load command ... not page-aligned").
    objects = [
        str(p)
        for p in site.rglob("*.so*")
        if p.is_file() and not p.relative_to(site).parts[0].endswith(".libs")
    ]
    if objects:
        subprocess.run([strip_exe, "--strip-unneeded", *objects], check=False, capture_output=True)


def compile_bytecode(site: Path, version: str, sourceless: tuple[str, ...] = ()) -> None:
    python = runtime_python(version)
    if python is None:
        print(
            f"  bytecode NOT compiled: no Python {version} on this machine (Lambda will compile "
            "modules at each cold start instead, which is slower)"
        )
        return
    # unchecked-hash: the .pyc stays valid whatever timestamps packaging gives the sources.
    compile_all = [
        python,
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
    ]
    packages = [site / name for name in sourceless if (site / name).is_dir()]
    others = [p for p in site.iterdir() if p not in packages]
    if others:
        subprocess.run([*compile_all, *map(str, others)], check=True)
    if packages:
        # -b writes module.pyc beside module.py; then the sources can go.
        subprocess.run([*compile_all, "-b", *map(str, packages)], check=True)
        for package in packages:
            for source in package.rglob("*.py"):
                source.unlink()
    print(
        f"  bytecode compiled with {python}"
        + (f"; {', '.join(sourceless)} ship bytecode only" if packages else "")
    )


def build_deps(args: argparse.Namespace) -> None:
    site = Path(args.out) / "python"
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
        "--target",
        str(site),
        "--implementation",
        "cp",
        "--python-version",
        args.python_version,
        "--only-binary=:all:",
        *[f"--platform={p}" for p in platforms(args.arch)],
        # Every file pip takes must have a hash in the lock: what the layer holds is
        # exactly what was reviewed when the lock was made (make lock).
        "--require-hashes",
        "-r",
        args.requirements,
    ]
    subprocess.run(command, check=True)
    flavour = FLAVOURS[args.flavour]
    before = size_of(site)
    drop(site, flavour.drop)
    prune(site)
    strip(site)
    compile_bytecode(site, args.python_version, flavour.sourceless)
    after = size_of(site)
    print(f"  {args.flavour} dependencies layer: {after / MIB:.1f} MiB unzipped", end="")
    print(f" ({before / MIB:.1f} MiB before pruning)")
    if after > args.limit_mib * MIB:
        sys.exit(f"error: the layer is {after / MIB:.1f} MiB, over the {args.limit_mib} MiB limit")


def build_source(args: argparse.Namespace) -> None:
    package = Path(args.package)
    site = Path(args.out) / "python"
    target = site / args.name
    if target.exists():
        shutil.rmtree(target)
    excluded = set(args.exclude)
    missing = sorted(name for name in excluded if not (package / name).exists())
    if missing:
        sys.exit(f"error: --exclude names what {package} does not hold: {', '.join(missing)}")

    def ignored(directory: str, names: list[str]) -> set[str]:
        top = Path(directory).resolve() == package.resolve()
        return {
            name
            for name in names
            if name == "__pycache__" or name.endswith(".pyc") or (top and name in excluded)
        }

    shutil.copytree(package, target, ignore=ignored)
    compile_bytecode(site, args.python_version)
    print(f"  {args.name} layer: {size_of(site) / MIB:.2f} MiB unzipped")


def check(args: argparse.Namespace) -> None:
    """Each function's code plus the layers it can use must stay under Lambda's limit.

    A function has one of the dependency layers (ServingRuntime picks it) and every other
    layer, so each function is checked with each dependency layer.
    """
    build = Path(args.build_dir)
    layers = [p for p in build.iterdir() if p.is_dir() and p.name.endswith("Layer")]
    dependencies = [p for p in layers if p.name.endswith("DependenciesLayer")]
    shared = sum(size_of(p) for p in layers if p not in dependencies)
    worst = 0
    for function in (p for p in build.iterdir() if p.is_dir() and p.name.endswith("Function")):
        code = size_of(function)
        for layer in dependencies:
            total = code + size_of(layer) + shared
            worst = max(worst, total)
            print(
                f"  {function.name} with {layer.name}: {code / MIB:.2f} MiB code + "
                f"{(total - code) / MIB:.1f} MiB layers = {total / MIB:.1f} MiB unzipped"
            )
    if worst > args.limit_mib * MIB:
        sys.exit(
            f"error: {worst / MIB:.1f} MiB unzipped is over the {args.limit_mib} MiB budget "
            "(Lambda's hard limit is 250 MiB)"
        )
    pin_architecture(build, dependencies)


def wheel_architectures(layer: Path) -> set[str]:
    """The Lambda architectures the layer's compiled wheels were built for (from their
    WHEEL tags; pure-Python wheels name none)."""
    found = set()
    for wheel in layer.rglob("*.dist-info/WHEEL"):
        for line in wheel.read_text().splitlines():
            if line.startswith("Tag:") and line.endswith(("_x86_64", "_aarch64")):
                found.add("arm64" if line.endswith("_aarch64") else "x86_64")
    return found


def pin_architecture(build: Path, layers: list[Path]) -> None:
    """Make the built template accept only the architecture its layers were built for."""
    found = set().union(*(wheel_architectures(layer) for layer in layers))
    if len(found) > 1:
        sys.exit(f"error: the layers mix architectures ({', '.join(sorted(found))}): build again")
    if not found:
        return
    (arch,) = found
    from samcli.yamlhelper import yaml_dump, yaml_parse  # the venv's sam, not the layer's pip

    path = build / "template.yaml"
    template = yaml_parse(path.read_text())
    parameter = template.get("Parameters", {}).get("Architecture")
    if parameter is None:
        return
    parameter["Default"] = arch
    parameter["AllowedValues"] = [arch]
    parameter["Description"] = (
        f"The layers of this build are {arch}; `make build ARCH=...` builds for the other."
    )
    for resource in template.get("Resources", {}).values():
        metadata = resource.get("Metadata", {})
        if "BuildArchitecture" in metadata:
            metadata["BuildArchitecture"] = arch
    path.write_text(yaml_dump(template))
    print(f"  architecture: {arch} (the built template accepts no other)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    deps = commands.add_parser("deps")
    deps.add_argument("--requirements", required=True, help="a lock file with hashes")
    deps.add_argument("--flavour", choices=sorted(FLAVOURS), required=True)
    deps.add_argument("--out", required=True)
    deps.add_argument("--python-version", required=True)
    deps.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64")
    deps.add_argument("--limit-mib", type=float, default=230)
    deps.set_defaults(run=build_deps)
    source = commands.add_parser("source")
    source.add_argument("--package", required=True, help="the package's source directory")
    source.add_argument("--name", required=True, help="its import name")
    source.add_argument("--out", required=True)
    source.add_argument("--python-version", required=True)
    source.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="NAME",
        help="a module or subpackage at the package's top that no function imports",
    )
    source.set_defaults(run=build_source)
    total = commands.add_parser("check")
    total.add_argument("build_dir")
    total.add_argument("--limit-mib", type=float, default=230)
    total.set_defaults(run=check)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
