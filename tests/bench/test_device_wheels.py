"""bench/device_prepare.sh, device_wheels.py and device_install.sh: wheels cut into parts for the GPU
machine's 64 MiB calls, joined again byte for byte, refused when a part is missing or altered."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
MIB = 1 << 20


def run(*cmd: str | Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def pack(folder: Path, bundle_bytes: int) -> subprocess.CompletedProcess:
    return run(sys.executable, BENCH / "device_wheels.py", "pack", folder, "--bundle-bytes",
               str(bundle_bytes))


@pytest.fixture
def wheels(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """Four fake wheels (random bytes) packed into folders of at most 1000 bytes."""
    rng = random.Random(0)
    folder = tmp_path / "whl"
    folder.mkdir()
    originals = {}
    for name, size in [("a-1.0-py3-none-any.whl", 300), ("b-2.0-py3-none-any.whl", 2500),
                       ("c_d-0.1-cp312-cp312-manylinux2014_x86_64.whl", 700), ("e-1-py3-none-any.whl", 0)]:
        data = bytes(rng.randrange(256) for _ in range(size))
        (folder / name).write_bytes(data)
        originals[name] = data
    done = pack(folder, 1000)
    assert done.returncode == 0, done.stderr
    return folder, originals


def parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "MANIFEST")


def test_pack_fills_folders_of_at_most_the_bundle_size(wheels: tuple[Path, dict[str, bytes]]):
    folder, originals = wheels
    assert not list(folder.glob("*.whl"))  # everything moved into the numbered folders
    bundles = sorted(p for p in folder.iterdir() if p.is_dir())
    assert [b.name for b in bundles] == ["1", "2", "3", "4"]  # 3500 bytes in folders of 1000
    assert all(sum(p.stat().st_size for p in b.iterdir()) <= 1000 for b in bundles)
    # the smallest wheels go first, whole; the largest is cut where a folder ends
    names = [p.relative_to(folder).as_posix() for p in parts(folder)]
    assert "1/a-1.0-py3-none-any.whl" in names and "1/e-1-py3-none-any.whl" in names
    assert [n for n in names if n.startswith(("2/", "3/", "4/"))] == [
        "2/b-2.0-py3-none-any.whl.part1", "3/b-2.0-py3-none-any.whl.part2", "4/b-2.0-py3-none-any.whl.part3"]
    manifest = (folder / "MANIFEST").read_text().splitlines()
    assert "bundles 4" in manifest
    assert sum(line.startswith("wheel ") for line in manifest) == len(originals)
    assert sum(line.startswith("part ") for line in manifest) == len(parts(folder))


def test_parts_are_joined_to_the_original_bytes(wheels: tuple[Path, dict[str, bytes]], tmp_path: Path):
    folder, originals = wheels
    done = run("bash", BENCH / "device_install.sh", "--assemble", folder, tmp_path / "joined")
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "joined").iterdir()} == originals


def test_check_lists_the_parts_still_to_come(wheels: tuple[Path, dict[str, bytes]]):
    folder, _ = wheels
    for p in (folder / "3").iterdir():  # as after the first device call: folder 3 not carried yet
        p.unlink()
    done = run("bash", BENCH / "device_install.sh", "--check", folder)
    assert done.returncode == 0, done.stderr
    assert "1 still to come: 3/b-2.0-py3-none-any.whl.part2" in done.stdout


def test_install_refuses_a_missing_part_in_one_line(wheels: tuple[Path, dict[str, bytes]], tmp_path: Path):
    folder, _ = wheels
    (folder / "3" / "b-2.0-py3-none-any.whl.part2").unlink()
    for mode in (["--assemble", folder, tmp_path / "joined"], [folder, tmp_path / "target"]):
        done = run("bash", BENCH / "device_install.sh", *mode)
        assert done.returncode == 1
        assert done.stderr.startswith(
            "device_install: missing part 3/b-2.0-py3-none-any.whl.part2 (listed in ")
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "target").exists()  # nothing installed


@pytest.mark.parametrize("change", ["byte", "size"])
def test_install_refuses_an_altered_part(wheels: tuple[Path, dict[str, bytes]], tmp_path: Path, change: str):
    folder, _ = wheels
    part = folder / "1" / "c_d-0.1-cp312-cp312-manylinux2014_x86_64.whl"
    data = bytearray(part.read_bytes())
    if change == "byte":
        data[10] ^= 1
    else:
        data += b"x"
    part.write_bytes(bytes(data))
    for mode in (["--check", folder], [folder, tmp_path / "target"]):
        done = run("bash", BENCH / "device_install.sh", *mode)
        assert done.returncode == 1
        if change == "byte":
            expected = f"device_install: sha256 mismatch for 1/{part.name} (listed in {folder}/MANIFEST)"
        else:
            expected = (f"device_install: size mismatch for 1/{part.name}: {len(data)} bytes, "
                        f"{folder}/MANIFEST says {len(data) - 1}")
        assert done.stderr.strip() == expected


def test_install_without_manifest_says_what_to_carry(tmp_path: Path):
    done = run("bash", BENCH / "device_install.sh", tmp_path, tmp_path / "target")
    assert done.returncode == 1
    assert done.stderr.startswith(f"device_install: no MANIFEST in {tmp_path}: carry DIR/MANIFEST")


def test_prepare_refuses_a_folder_it_did_not_write(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("mine")
    done = run("bash", BENCH / "device_prepare.sh", tmp_path)
    assert done.returncode == 1
    assert "is not empty and holds no MANIFEST" in done.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bundle_size_is_capped_at_60_mib(tmp_path: Path):
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"x")
    done = pack(tmp_path, 61 * MIB)
    assert done.returncode == 1 and "expected 1 to" in done.stderr


# --- the real thing: needs the network (PyPI), ~85 MB --------------------------------------------
@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("device") / "whl"
    done = run("bash", BENCH / "device_prepare.sh", folder)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.mark.slow
def test_prepare_leaves_no_file_over_60_mib_and_each_call_under_64(prepared: Path):
    files = [p for p in prepared.rglob("*") if p.is_file()]
    assert max(p.stat().st_size for p in files) <= 60 * MIB
    names = {p.name.split("-")[0].lower() for p in files}
    assert {"ray", "optuna", "pydantic", "pydantic_core", "cmaes", "lightly"} <= names
    # nothing the image already has (numpy, torch, ...) shadows it; one version of each
    assert not names & {"numpy", "torch", "pandas", "pyarrow", "scipy", "packaging", "requests"}
    wheel_lines = [ln for ln in (prepared / "MANIFEST").read_text().splitlines() if ln.startswith("wheel ")]
    dists = [ln.split()[1].split("-")[0].lower() for ln in wheel_lines]
    assert len(dists) == len(set(dists))
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tree = sum((ROOT / f).stat().st_size for f in tracked.decode().split("\0") if f and (ROOT / f).is_file())
    manifest = (prepared / "MANIFEST").stat().st_size
    for bundle in (p for p in prepared.iterdir() if p.is_dir()):
        carried = sum(p.stat().st_size for p in bundle.iterdir()) + manifest + tree
        assert carried < 64 * MIB, (bundle.name, carried)


@pytest.mark.slow
def test_install_puts_ray_optuna_and_pydantic_into_target(prepared: Path, tmp_path: Path):
    done = run("bash", BENCH / "device_install.sh", prepared, tmp_path / "site")
    assert done.returncode == 0, done.stderr[-2000:]
    for package in ("ray", "optuna", "pydantic", "pydantic_core", "cmaes", "lightly", "sqlalchemy"):
        assert (tmp_path / "site" / package / "__init__.py").is_file(), package
