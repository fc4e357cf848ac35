"""Wheels for the GPU machine: what the project needs there that its image lacks, packed for carrying.

The GPU machine (bench/README.md, "GPU checks") runs CPython 3.12 with torch, torchvision, timm,
pandas, pyarrow, scipy, scikit-learn, matplotlib, rich, tqdm and PyYAML, but without ray, optuna,
pydantic or cmaes, and it reaches no package registry. Each call to it carries at most 64 MiB,
the checkout included, and ray's wheel alone is 79 MB. So:

    python bench/device_wheels.py prepare DIR     # what bench/device_prepare.sh DIR runs

resolves, from each wheel's own METADATA (Requires-Dist, with the markers of CPython 3.12 on
manylinux x86-64), every distribution that the project's dependencies and its `bench` extra need
and the image lacks (IMAGE below), pins each to the version installed here where there is one,
downloads them (`pip download --no-deps --only-binary=:all:` for cp312 manylinux x86-64), and
packs them into DIR/1, DIR/2, ...: one folder per device call, each at most --bundle-bytes
(default 58 MiB, so that a call with the checkout stays under 64 MiB), the smallest wheels first;
a wheel that crosses a folder's end (ray) is cut there into NAME.part1, NAME.part2, ... DIR/MANIFEST
lists every wheel and its parts with their sizes and sha256 sums. bench/device_install.sh DIR
TARGET checks the sums, joins the parts and installs the wheels into TARGET.

    python bench/device_wheels.py pack DIR --bundle-bytes 1000   # pack DIR/*.whl only (tests)
    python bench/device_wheels.py check-target DIR TARGET        # on the GPU machine, after the install

`check-target` reads every installed wheel's requirements with the running interpreter's markers
and warns, one line each, of a needed distribution found neither in TARGET nor in the
interpreter's environment (an error with --strict) and of a version that does not satisfy a
specifier; the GPU check's preflight imports then say whether it matters.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
MAX_PART = 60 * MIB          # no file in DIR is larger than this
DEFAULT_BUNDLE = 58 * MIB    # one device call: a bundle + MANIFEST + the checkout (< 1 MiB) < 64 MiB
PYTHON_VERSION = "3.12"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
# The markers pip evaluates for the GPU machine's interpreter (CPython 3.12.3, Linux x86-64).
TARGET_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
              "implementation_version": "3.12.3", "platform_python_implementation": "CPython",
              "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
              "platform_machine": "x86_64", "platform_release": "", "platform_version": ""}
# The GPU image's Python packages (/work/.library/device/KINDS.md, read on 2026-11-17), normalized.
IMAGE = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning
pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels
sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers
treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt
xarray xxhash yarl zipp
""".split())
# In the image, but shipped anyway: the newer version only adds, and what needs it may not import otherwise.
ALSO_SHIP = {"typing-extensions": "pydantic 2.14 needs typing-extensions>=4.16; the image's version is "
                                  "unread"}
# Needed by a wheel's metadata but not by what runs on the GPU machine: not shipped, not followed.
NOT_NEEDED = {"hydra-core": "lightly's command line only; bench/step.py imports lightly.loss and "
                            "lightly.models (hydra-core's antlr4-python3-runtime 4.9 has no wheel)"}


class PrepareError(Exception):
    """One line for the user: what failed and what to do."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(filename: str) -> tuple[str, str]:
    """(canonical distribution name, version) of a wheel file name."""
    parts = filename.split("-")
    if not filename.endswith(".whl") or len(parts) < 5:
        raise PrepareError(f"{filename}: not a wheel file name")
    return canonical(parts[0]), parts[1]


def wheel_metadata(path: Path) -> Any:
    """The METADATA headers of a wheel (an email.message.Message)."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if not names:
            raise PrepareError(f"{path.name}: no .dist-info/METADATA inside")
        return HeaderParser().parsestr(z.read(names[0]).decode("utf-8", "replace"))


def requirements(metadata: Any, extras: set[str], env: dict[str, str]) -> list[Any]:
    """The Requires-Dist entries that apply with ``extras`` under the markers ``env``."""
    from packaging.requirements import Requirement

    out = []
    for text in metadata.get_all("Requires-Dist") or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in {"", *extras}):
            out.append(req)
    return out


def project_roots(pyproject: Path) -> list[str]:
    """The project's dependencies and its `bench` extra (lightly, for the step comparison)."""
    import tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    return [*project["dependencies"], *project.get("optional-dependencies", {}).get("bench", [])]


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pip_download(specs: list[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", PYTHON_VERSION, "--implementation", "cp",
           *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest), *specs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit {done.returncode}"
        raise PrepareError(f"pip download {' '.join(specs)} failed: {why}")


def resolve(roots: list[str], dest: Path, log: Any = print) -> dict[str, Any]:
    """Download the closure of ``roots`` minus the image into ``dest``; returns the plan.

    Breadth first, one `pip download` per wave: a distribution is pinned to the version installed
    here when that satisfies what asks for it, else pip takes the newest that does; its wheel's
    METADATA gives the next wave.
    """
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    chosen: dict[str, tuple[str, Path]] = {}       # name -> (version, wheel)
    extras_of: dict[str, set[str]] = {}           # name -> extras asked for
    image_uses: dict[str, list[str]] = {}         # image name -> "who (spec)"
    skipped: dict[str, list[str]] = {}
    wave: list[tuple[Any, str]] = [(Requirement(r), "pyproject.toml") for r in roots]
    dest.mkdir(parents=True, exist_ok=True)
    while wave:
        wanted: dict[str, SpecifierSet] = {}
        rescan: set[str] = set()
        for req, parent in wave:
            name = canonical(req.name)
            if name in NOT_NEEDED:
                skipped.setdefault(name, []).append(parent)
                continue
            if name in IMAGE and name not in ALSO_SHIP:
                image_uses.setdefault(name, []).append(f"{parent} {req.specifier}".strip())
                continue
            if name in chosen:
                version = chosen[name][0]
                if not req.specifier.contains(version, prereleases=True):
                    raise PrepareError(f"{parent} needs {req}, but {name} {version} was chosen first")
                if set(req.extras) - extras_of[name]:
                    extras_of[name] |= set(req.extras)
                    rescan.add(name)
                continue
            extras_of.setdefault(name, set()).update(req.extras)
            wanted[name] = wanted.get(name, SpecifierSet()) & req.specifier
        specs = []
        for name, spec in sorted(wanted.items()):
            here = installed_version(name)
            pin = here and spec.contains(here, prereleases=True)
            specs.append(f"{name}=={here}" if pin else f"{name}{spec}")
        if specs:
            before = set(dest.glob("*.whl"))
            log(f"device_prepare: pip download {' '.join(specs)}")
            pip_download(specs, dest)
            for path in sorted(set(dest.glob("*.whl")) - before):
                name, version = wheel_name(path.name)
                chosen[name] = (version, path)
            missing = sorted(set(wanted) - set(chosen))
            if missing:
                raise PrepareError(f"pip download left no wheel for {', '.join(missing)}")
        wave = []
        for name in sorted(set(wanted) | rescan):
            version, path = chosen[name]
            wave += [(r, f"{name} {version}") for r in requirements(wheel_metadata(path), extras_of[name],
                                                                      TARGET_ENV)]
    return {"chosen": chosen, "extras": extras_of, "image": image_uses, "skipped": skipped}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def pack(src: Path, out: Path, bundle_bytes: int, header: list[str] | None = None) -> list[str]:
    """Move ``src``/*.whl into ``out``/1, ``out``/2, ... of at most ``bundle_bytes`` each; write MANIFEST.

    Smallest first; a wheel that does not fit in what is left of a folder is cut at its end into
    NAME.part1, NAME.part2, ... Returns the MANIFEST's lines.
    """
    if not 0 < bundle_bytes <= MAX_PART:
        raise PrepareError(f"bundle size {bundle_bytes} bytes: expected 1 to {MAX_PART} "
                           f"({MAX_PART // MIB} MiB)")
    wheels = sorted(src.glob("*.whl"), key=lambda p: (p.stat().st_size, p.name))
    if not wheels:
        raise PrepareError(f"{src}: no .whl files to pack")
    lines = list(header or [])
    body: list[str] = []
    bundle, used = 1, 0
    for wheel in wheels:
        size, whole = wheel.stat().st_size, sha256(wheel)
        pieces: list[tuple[int, int, int]] = []    # (bundle, offset, length)
        offset = 0
        while offset < size or not pieces:
            if used >= bundle_bytes:
                bundle, used = bundle + 1, 0
            length = min(bundle_bytes - used, size - offset)
            pieces.append((bundle, offset, length))
            offset, used = offset + length, used + length
        body.append(f"wheel {wheel.name} {size} {whole}")
        with wheel.open("rb") as f:
            for k, (b, start, length) in enumerate(pieces, 1):
                folder = out / str(b)
                folder.mkdir(parents=True, exist_ok=True)
                rel = f"{b}/{wheel.name}" if len(pieces) == 1 else f"{b}/{wheel.name}.part{k}"
                f.seek(start)
                (out / rel).write_bytes(f.read(length))
                body.append(f"part {rel} {length} {sha256(out / rel)}")
        wheel.unlink()
    lines += [f"bundles {bundle}", *body]
    (out / "MANIFEST").write_text("\n".join(lines) + "\n")
    return lines


def bundle_report(out: Path) -> list[str]:
    """One line per folder (files, MiB) and the largest file."""
    rows, largest = [], (0, "")
    folders = sorted((p for p in out.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    for folder in folders:
        files = [p for p in folder.iterdir() if p.is_file()]
        total = sum(p.stat().st_size for p in files)
        largest = max([largest, *((p.stat().st_size, str(p.relative_to(out))) for p in files)])
        rows.append(f"  {out.name}/{folder.name}: {len(files)} files, {total / MIB:.1f} MiB")
    rows.append(f"  largest file: {largest[1]} ({largest[0] / MIB:.1f} MiB; limit {MAX_PART // MIB} MiB)")
    return rows


def prepare(out: Path, bundle_bytes: int) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / "MANIFEST").is_file():
            raise PrepareError(f"{out} is not empty and holds no MANIFEST: give an empty or new folder")
        for p in out.iterdir():  # an earlier prepare: start clean
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    download = out / "download"
    plan = resolve(project_roots(ROOT / "pyproject.toml"), download)
    header = ["# ablate: wheels for the GPU machine (CPython 3.12, manylinux x86-64), written by "
              "bench/device_prepare.sh",
              "# carry DIR/MANIFEST and one folder DIR/N per device call (in order, back to back); then",
              "# bench/device_install.sh DIR TARGET joins the parts, checks every sha256 and installs.",
              "# lines: 'wheel NAME BYTES SHA256', then its 'part PATH BYTES SHA256' (PATH relative to DIR)"]
    header += [f"# from the image: {name} (for {', '.join(sorted(set(who)))})"
               for name, who in sorted(plan["image"].items())]
    header += [f"# not shipped: {name}: {NOT_NEEDED[name]}" for name in sorted(plan["skipped"])]
    header += [f"# shipped although the image has it: {name}: {why}" for name, why in ALSO_SHIP.items()
               if name in plan["chosen"]]
    header += [f"python {PYTHON_VERSION}"]
    header += [f"extras {name} {' '.join(sorted(e))}" for name, e in sorted(plan["extras"].items()) if e]
    pack(download, out, bundle_bytes, header)
    download.rmdir()
    print(f"device_prepare: {len(plan['chosen'])} wheels in {out}:")
    for name, (version, _) in sorted(plan["chosen"].items()):
        print(f"  {name} {version}")
    print("\n".join(bundle_report(out)))


def check_target(manifest_dir: Path, target: Path, strict: bool = False) -> int:
    """After the install, with the interpreter that will run: every requirement met? (see module doc)."""
    from packaging.markers import default_environment  # the image has packaging

    extras: dict[str, set[str]] = {}
    for line in (manifest_dir / "MANIFEST").read_text().splitlines():
        if line.startswith("extras "):
            name, *rest = line.split()[1:]
            extras[canonical(name)] = set(rest)
    found: dict[str, str] = {}
    for d in importlib.metadata.distributions(path=[str(target), *sys.path]):  # TARGET first wins
        if d.metadata["Name"]:
            found.setdefault(canonical(d.metadata["Name"]), d.version)
    env = dict(default_environment())
    missing, warnings = [], []
    for info in sorted(target.glob("*.dist-info")):
        dist = importlib.metadata.PathDistribution(info)
        name = canonical(dist.metadata["Name"])
        meta = HeaderParser().parsestr((info / "METADATA").read_text())
        for req in requirements(meta, extras.get(name, set()), env):
            need = canonical(req.name)
            if need in NOT_NEEDED:
                continue
            if need not in found:
                missing.append(f"{need} (needed by {name})")
            elif not req.specifier.contains(found[need], prereleases=True):
                warnings.append(f"{name} needs {req}, found {need} {found[need]}")
    for w in warnings:
        print(f"device_install: warning: {w}", file=sys.stderr)
    if missing:  # a warning too: what a wheel's metadata asks for is not always imported (the preflight is)
        print(f"device_install: warning: missing after the install: {', '.join(missing)}; if an import "
              "fails for it, ship it (drop it from IMAGE in bench/device_wheels.py) and prepare again",
              file=sys.stderr)
    print(f"device_install: requirements of {len(list(target.glob('*.dist-info')))} installed "
          f"distributions checked: {len(missing)} missing, {len(warnings)} version warnings")
    return 1 if missing and strict else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("prepare", "pack"):
        s = sub.add_parser(name)
        s.add_argument("dir", type=Path)
        s.add_argument("--bundle-bytes", type=int, default=None,
                       help=f"bytes per folder (one device call), at most {MAX_PART}; default: "
                            f"$DEVICE_BUNDLE_BYTES or {DEFAULT_BUNDLE}")
    c = sub.add_parser("check-target")
    c.add_argument("dir", type=Path, help="the folder with MANIFEST")
    c.add_argument("target", type=Path)
    c.add_argument("--strict", action="store_true", help="a missing distribution is an error (exit 1)")
    args = p.parse_args()
    try:
        if args.command == "check-target":
            return check_target(args.dir, args.target, args.strict)
        bundle = args.bundle_bytes or int(os.environ.get("DEVICE_BUNDLE_BYTES") or DEFAULT_BUNDLE)
        if args.command == "prepare":
            prepare(args.dir, bundle)
        else:
            pack(args.dir, args.dir, bundle)
            print("\n".join(bundle_report(args.dir)))
    except PrepareError as exc:
        print(f"device_prepare: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
