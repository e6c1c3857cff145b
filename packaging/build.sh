#!/usr/bin/env bash
# Builds the RadLens desktop bundle from packaging/radlens.spec and prints its budget.
#
#   bash packaging/build.sh                       # CPU flavour (the default)
#   RADLENS_FLAVOUR=cuda bash packaging/build.sh  # CUDA flavour: needs a CUDA torch in .venv
#
# Linux: dist/radlens/ (executable dist/radlens/radlens, licences, .desktop entry, icons) and
#        dist/radlens-<version>-linux-<arch>-<flavour>.tar.gz
# macOS: dist/RadLens.app as well, and dist/RadLens-<version>-macos-<arch>.zip
# Windows: see packaging/windows/build.ps1 (PyInstaller + Inno Setup).
#
# Environment: RADLENS_FLAVOUR (cpu|cuda), RADLENS_NO_SETUP=1 (use .venv as it is),
# RADLENS_SKIP_TIMING=1 (no start-up measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
flavour=${RADLENS_FLAVOUR:-cpu}
case "$flavour" in cpu|cuda) ;; *) echo "build: RADLENS_FLAVOUR must be cpu or cuda, not '$flavour'" >&2; exit 2 ;; esac

if [ "${RADLENS_NO_SETUP:-0}" != 1 ]; then
  RADLENS_TORCH=$flavour bash scripts/setup.sh
fi
py=.venv/bin/python
[ -x "$py" ] || { echo "build: no .venv; run scripts/setup.sh first" >&2; exit 1; }
# PyInstaller reads binaries with binutils' objdump (and the spec strips torch with its strip).
if [ "$(uname -s)" = Linux ] && ! command -v objdump >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=(); [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  echo "build: installing binutils"
  "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq binutils >/dev/null
fi

# The torch in .venv decides what can be built: a CPU bundle must not carry CUDA, and a CUDA
# bundle needs a CUDA torch.
torch_cuda=$("$py" -c "import torch; print(torch.version.cuda or '')")
if [ "$flavour" = cpu ] && [ -n "$torch_cuda" ]; then
  echo "build: the CPU flavour needs the CPU torch wheel, but .venv has CUDA $torch_cuda torch;" >&2
  echo "       reinstall it: .venv/bin/pip install --force-reinstall torch==\$(.venv/bin/python -c 'import torch; print(torch.__version__.split(\"+\")[0])') --index-url <PyTorch CPU wheel index>" >&2
  exit 1
fi
if [ "$flavour" = cuda ] && [ -z "$torch_cuda" ]; then
  echo "build: the CUDA flavour needs a CUDA torch in .venv: RADLENS_TORCH=cuda bash scripts/setup.sh" >&2
  exit 1
fi
"$py" -c "import PyInstaller" 2>/dev/null || { echo "build: PyInstaller is missing; run scripts/setup.sh (dev extra)" >&2; exit 1; }

version=$("$py" -c "from importlib.metadata import version; print(version('radlens'))")
arch=$(uname -m)
case "$(uname -s)" in Darwin) platform=macos ;; Linux) platform=linux ;; *) platform=$(uname -s | tr '[:upper:]' '[:lower:]') ;; esac

# Reproducible: fixed hash seed and timestamps taken from the last commit.
export PYTHONHASHSEED=0
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
export RADLENS_FLAVOUR=$flavour

echo "build: RadLens $version, $flavour flavour, $platform-$arch"
rm -rf dist/radlens dist/RadLens.app
t0=$(date +%s)
"$py" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller packaging/radlens.spec
t1=$(date +%s)
bundle=dist/radlens

# Licences of everything inside (and the check that the About box lists every distribution).
"$py" packaging/collect_licences.py "$bundle" build/pyinstaller/radlens/bundled-top-level.txt
echo "$version" > "$bundle/VERSION"

if [ "$platform" = linux ]; then
  mkdir -p "$bundle/share/applications"
  cp packaging/linux/radlens.desktop "$bundle/share/applications/radlens.desktop"
  for png in packaging/icons/png/radlens-*.png; do
    size=$(basename "$png" .png); size=${size#radlens-}
    mkdir -p "$bundle/share/icons/hicolor/${size}x${size}/apps"
    cp "$png" "$bundle/share/icons/hicolor/${size}x${size}/apps/radlens.png"
  done
  cp packaging/linux/install-desktop-entry.sh "$bundle/"
  archive=dist/radlens-$version-$platform-$arch-$flavour.tar.gz
  gz=(gzip -n -6)
  command -v pigz >/dev/null 2>&1 && gz=(pigz -n -6)
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner -C dist -cf - radlens \
    | "${gz[@]}" > "$archive"
elif [ "$platform" = macos ]; then
  archive=dist/RadLens-$version-$platform-$arch.zip
  rm -f "$archive"
  ditto -c -k --sequesterRsrc --keepParent dist/RadLens.app "$archive"
else
  archive=dist/radlens-$version-$platform-$arch-$flavour.tar.gz
  tar -C dist -czf "$archive" radlens
fi
t2=$(date +%s)

# Start-up: launch to the main window's first paint, offscreen, from a fresh user folder (the
# first run writes the sample study; the second is what a user sees every day).
startup_first="" startup=""
if [ "${RADLENS_SKIP_TIMING:-0}" != 1 ]; then
  tmp=$(mktemp -d)
  for run in first second; do
    line=$(env -i HOME="$tmp/home" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
      XDG_CACHE_HOME="$tmp/cache" XDG_STATE_HOME="$tmp/state" XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/config" \
      RADLENS_TIMING="$("$py" -c 'import time; print(time.time())')" \
      "$bundle/radlens" view --screenshot "$tmp/startup.png" 2>/dev/null | grep "first painted window" || true)
    value=$(echo "$line" | sed -n 's/.*after \([0-9.]*\) s.*/\1/p')
    if [ "$run" = first ]; then startup_first=$value; else startup=$value; fi
  done
  rm -rf "$tmp"
fi

du_k() { du -sk "$1" | cut -f1; }
disk_mb=$(( $(du_k "$bundle") / 1024 ))
archive_mb=$(( $(wc -c < "$archive") / 1048576 ))
verdict() { if [ -z "$1" ]; then echo "not measured"; elif "$py" -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)"; then echo PASS; else echo FAIL; fi; }

echo
echo "== Budget: RadLens $version ($flavour, $platform-$arch), MiB = 1,048,576 bytes"
printf '%-40s %12s %10s  %s\n' "measure" "value" "target" "verdict"
printf '%-40s %12s %10s  %s\n' "bundle on disk (du $bundle)" "$disk_mb MiB" "800 MiB" "$(verdict "$disk_mb" 800)"
printf '%-40s %12s %10s  %s\n' "archive ($(basename "$archive"))" "$archive_mb MiB" "350 MiB" "$(verdict "$archive_mb" 350)"
printf '%-40s %12s %10s  %s\n' "launch to first painted window" "${startup:-?} s" "3 s" "$(verdict "$startup" 3)"
printf '%-40s %12s %10s  %s\n' "  same, first run (writes the sample)" "${startup_first:-?} s" "" ""
printf '%-40s %12s %10s  %s\n' "PyInstaller build" "$((t1 - t0)) s" "" ""
printf '%-40s %12s %10s  %s\n' "licences, archive" "$((t2 - t1)) s" "" ""
echo
echo "== Where the bytes go (largest parts of $bundle)"
# A report only: head closing the pipe early (SIGPIPE) or du missing a path must not fail the build.
(cd "$bundle" && du -sk _internal/* licenses radlens 2>/dev/null | sort -rn | head -14 \
  | awk '{printf "%8.1f MiB  %s\n", $1 / 1024, $2}') || true
echo
echo "build: done: $bundle/radlens and $archive"
