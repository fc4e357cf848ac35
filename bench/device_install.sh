#!/usr/bin/env bash
# Install the wheels that bench/device_prepare.sh DIR packed: join the parts, check every sha256
# against DIR/MANIFEST, and `pip install --no-index --no-deps --target TARGET` them all.
#
#   bash bench/device_install.sh DIR TARGET            # then: export PYTHONPATH=TARGET
#   bash bench/device_install.sh --check DIR           # the parts here so far: sums good, which missing
#   bash bench/device_install.sh --assemble DIR OUT    # join and check only: the wheels into OUT
#
# Works from any folder (DIR/MANIFEST names every part relative to DIR). Fails with one line,
# "device_install: ...", and exit status 1: a part missing, a sum or size that does not match, a
# wheel pip refuses. On CPython 3.12 (the wheels' interpreter) it then warns of any requirement
# met neither by TARGET nor by the interpreter's own packages. PYTHON (default python3) runs pip;
# the wheels are for CPython 3.12 on manylinux x86-64, and pip is told so, so that the install can
# also be tried on a machine with another Python (nothing is imported).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-python3}
die() { echo "device_install: $*" >&2; exit 1; }

MODE=install
case "${1:-}" in
  --check) MODE=check; shift ;;
  --assemble) MODE=assemble; shift ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
DIR=${1:-}
TARGET=${2:-}
[ -n "$DIR" ] || die "usage: device_install.sh [--check | --assemble] DIR [TARGET]"
[ "$MODE" = check ] || [ -n "$TARGET" ] || die "usage: device_install.sh DIR TARGET (TARGET: where to install)"
MANIFEST=$DIR/MANIFEST
[ -f "$MANIFEST" ] || die "no MANIFEST in $DIR: carry DIR/MANIFEST with each DIR/N (bench/device_prepare.sh DIR writes it)"

sum_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# --check: every part that is here has its size and sum; list the ones still to come.
if [ "$MODE" = check ]; then
  here=0 missing=()
  while read -r kind path bytes sum; do
    [ "$kind" = part ] || continue
    if [ ! -f "$DIR/$path" ]; then missing+=("$path"); continue; fi
    [ "$(size_of "$DIR/$path")" = "$bytes" ] || die "size mismatch for $path: $(size_of "$DIR/$path") bytes, $MANIFEST says $bytes"
    [ "$(sum_of "$DIR/$path")" = "$sum" ] || die "sha256 mismatch for $path (listed in $MANIFEST)"
    here=$((here + 1))
  done <"$MANIFEST"
  echo "device_install: $here part(s) in $DIR, every sum good; ${#missing[@]} still to come${missing[*]:+: ${missing[*]}}"
  exit 0
fi

# Join each wheel's parts into STAGE, checking every part and then the whole wheel.
if [ "$MODE" = assemble ]; then STAGE=$TARGET; mkdir -p "$STAGE" || die "cannot create $STAGE"
else STAGE=$(mktemp -d) || die "mktemp failed"; trap 'rm -rf "$STAGE"' EXIT; fi
wheel='' want_bytes='' want_sum='' count=0
finish_wheel() {
  [ -n "$wheel" ] || return 0
  [ -f "$STAGE/$wheel" ] || die "no part listed for $wheel in $MANIFEST"
  [ "$(size_of "$STAGE/$wheel")" = "$want_bytes" ] || die "size mismatch for $wheel joined from its parts"
  [ "$(sum_of "$STAGE/$wheel")" = "$want_sum" ] || die "sha256 mismatch for $wheel joined from its parts"
  count=$((count + 1))
}
while read -r kind path bytes sum; do
  case "$kind" in
    wheel)
      finish_wheel
      wheel=$path want_bytes=$bytes want_sum=$sum
      case "$wheel" in */*|.*|"") die "bad wheel name '$wheel' in $MANIFEST" ;; esac
      rm -f "$STAGE/$wheel" ;;
    part)
      [ -n "$wheel" ] || die "part $path before any wheel in $MANIFEST"
      [ -f "$DIR/$path" ] || die "missing part $path (listed in $MANIFEST): carry $DIR/${path%%/*} too"
      [ "$(size_of "$DIR/$path")" = "$bytes" ] || die "size mismatch for $path: $(size_of "$DIR/$path") bytes, $MANIFEST says $bytes"
      [ "$(sum_of "$DIR/$path")" = "$sum" ] || die "sha256 mismatch for $path (listed in $MANIFEST)"
      cat "$DIR/$path" >>"$STAGE/$wheel" || die "cannot write $STAGE/$wheel" ;;
  esac
done <"$MANIFEST"
finish_wheel
[ "$count" -gt 0 ] || die "$MANIFEST lists no wheel"
if [ "$MODE" = assemble ]; then echo "device_install: $count wheel(s) joined and checked in $STAGE"; exit 0; fi

# Install: the wheels' own interpreter and platform, whatever runs pip.
mkdir -p "$TARGET" || die "cannot create $TARGET"
LOG=$STAGE/pip.log
if ! "$PY" -m pip install --no-index --no-deps --no-compile --no-cache-dir --upgrade --disable-pip-version-check \
     --target "$TARGET" --only-binary=:all: --python-version 3.12 --implementation cp \
     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 "$STAGE"/*.whl >"$LOG" 2>&1; then
  die "pip could not install into $TARGET: $(grep -E 'ERROR|Error' "$LOG" | tail -1 || tail -1 "$LOG")"
fi
echo "device_install: $count wheel(s) installed into $TARGET"
# On the interpreter the wheels are for (the GPU machine): warn of unmet requirements.
if "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
  "$PY" "$HERE/device_wheels.py" check-target "$DIR" "$TARGET" ||
    echo "device_install: warning: the requirement check did not run (see above); the wheels are installed" >&2
else
  echo "device_install: requirement check skipped ($("$PY" -V 2>&1), the wheels are for CPython 3.12)"
fi
