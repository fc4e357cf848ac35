#!/usr/bin/env bash
# Download, for the GPU machine (CPython 3.12, manylinux x86-64, no package registry), every wheel
# the project needs that its image lacks, and pack them into DIR for carrying:
#
#   bash bench/device_prepare.sh DIR       # e.g. .whl (a git-ignored folder of the checkout)
#
# DIR/1, DIR/2, ...: one folder per device call, each at most DEVICE_BUNDLE_BYTES (default 58 MiB,
# so that a call with the checkout stays under the 64 MiB a call carries); ray's 79 MB wheel is cut
# into parts at a folder's end; no file is over 60 MiB. DIR/MANIFEST: every wheel and part with
# its size and sha256 (bench/device_install.sh DIR TARGET checks and installs them). Needs the
# network (pip download) and runs with PYTHON (default: python3), whose installed versions of
# ray, optuna, pydantic, ... are the ones pinned: run it in the project's environment.
# What is shipped and why: bench/device_wheels.py (and bench/README.md, "GPU checks").
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
exec "${PYTHON:-python3}" "$HERE/device_wheels.py" prepare "$@"
