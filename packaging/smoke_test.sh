#!/usr/bin/env bash
# Smoke test of the packaged app: builds the bundle (packaging/build.sh), unpacks the archive
# into a temporary folder and runs it from there with an empty PATH (no Python, no venv) and
# fresh user folders:
#   --version, --bundle-selftest (every lazily imported library), models, sample, scan, convert;
#   NIfTI, NRRD and MHA files (written by the venv's SimpleITK; the bundle has none) scanned and
#   converted to the same NIfTI as the installed radlens gives, and an NRRD analysed;
#   the main job (no arguments, no display: a PNG) and `view SAMPLE --model default --screenshot`
#   (offscreen), each a non-blank window with the crosshair and the model's heatmap;
#   `analyze SAMPLE --out OUT` (summary.json lists a stack with status ok, its outputs exist)
#   and `analyze --anonymize`;
#   bad input: a broken scan, a model whose weights are missing, CUDA requested without a GPU:
#   the same exit code and error lines as the installed `radlens` (.venv/bin/radlens);
#   the log is in the user's log folder, names no patient, and nothing is written in the bundle.
# A missing hidden import or data file fails it. Ends with "N passed, M failed".
#
#   bash packaging/smoke_test.sh                          # build, then test
#   RADLENS_SMOKE_NO_BUILD=1 bash packaging/smoke_test.sh # test the archive already in dist/
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
flavour=${RADLENS_FLAVOUR:-cpu}
py=$root/.venv/bin/python  # for the checks only; the app under test never sees it

started=$(date +%s)
if [ "${RADLENS_SMOKE_NO_BUILD:-0}" != 1 ]; then
  bash packaging/build.sh || { echo "smoke: the build failed"; echo "0 passed, 1 failed"; exit 1; }
fi
version=$("$py" -c "from importlib.metadata import version; print(version('radlens'))")
archive=$(ls dist/radlens-"$version"-linux-*-"$flavour".tar.gz 2>/dev/null | head -n 1)
[ -n "$archive" ] || { echo "smoke: no dist/radlens-$version-linux-*-$flavour.tar.gz"; echo "0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/app" "$tmp/empty-path" "$tmp/logs"
tar -xzf "$archive" -C "$tmp/app"
app=$tmp/app/radlens/radlens
installed=$root/.venv/bin/radlens
echo "smoke: $archive unpacked into $tmp/app"

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS  $1${2:+  ($2)}"; }
fail() {
  failed=$((failed + 1)); echo "FAIL  $1: $2"
  for f in "${@:3}"; do [ -s "$f" ] && tail -n 25 "$f" | sed 's/^/      | /'; done
  return 0
}

# The environment of a user's machine: no PATH to any Python, fresh home and XDG folders.
clean_env=(env -i HOME="$tmp/home" PATH="$tmp/empty-path" LANG=C.UTF-8
  XDG_CACHE_HOME="$tmp/cache" XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state")
# run NAME [VAR=value...] -- PROGRAM ARGS...: output in $tmp/logs/NAME.out and NAME.err, returns its exit code
run() {
  local name=$1; shift
  local extra=()
  while [ "$1" != -- ]; do extra+=("$1"); shift; done
  shift
  timeout 600 "${clean_env[@]}" "${extra[@]}" "$@" >"$tmp/logs/$name.out" 2>"$tmp/logs/$name.err"
}
out() { cat "$tmp/logs/$1.out"; }
errors() { grep '^radlens' "$tmp/logs/$1.err" || true; }  # the error lines a user reads

# --- the commands -------------------------------------------------------------------------
if run version -- "$app" --version && [ "$(out version)" = "radlens $version" ]; then
  pass "--version" "$(out version)"
else fail "--version" "expected 'radlens $version'" "$tmp/logs/version.out" "$tmp/logs/version.err"; fi

if run selftest -- "$app" --bundle-selftest; then
  pass "lazily imported libraries" "$(grep -c '^ok' "$tmp/logs/selftest.out") checks"
else fail "lazily imported libraries" "$(grep -v '^ok' "$tmp/logs/selftest.out" | head -n 3)" "$tmp/logs/selftest.err"; fi

if run models -- "$app" models && grep -q '^ct-nodule-demo .*weights present' "$tmp/logs/models.out"; then
  pass "models lists the demo model" "$(grep '^ct-nodule-demo' "$tmp/logs/models.out")"
else fail "models lists the demo model" "no 'ct-nodule-demo ... weights present'" "$tmp/logs/models.out" "$tmp/logs/models.err"; fi

sample=$tmp/sample
if run sample -- "$app" sample "$sample" && [ -f "$sample/.radlens-sample.json" ]; then
  pass "sample writes the sample study" "$(ls "$sample" | wc -l) files"
else fail "sample writes the sample study" "no study in $sample" "$tmp/logs/sample.out" "$tmp/logs/sample.err"; fi

if run scan -- "$app" scan "$sample" && grep -q "CT" "$tmp/logs/scan.out"; then
  pass "scan lists the sample's stack"
else fail "scan lists the sample's stack" "no CT stack listed" "$tmp/logs/scan.out" "$tmp/logs/scan.err"; fi

if run convert -- "$app" convert "$sample" "$tmp/sample.nii.gz" && [ -s "$tmp/sample.nii.gz" ]; then
  pass "convert writes NIfTI" "$(( $(wc -c < "$tmp/sample.nii.gz") / 1024 )) KiB"
else fail "convert writes NIfTI" "no $tmp/sample.nii.gz" "$tmp/logs/convert.out" "$tmp/logs/convert.err"; fi

# NIfTI, NRRD and MetaImage: the bundle has no SimpleITK, so it reads them with its own readers;
# what it converts must equal what the installed radlens (SimpleITK) converts from the same file.
images=$tmp/images
if detail=$("$py" packaging/smoke_checks.py write-images "$images"); then
  if run scan-images -- "$app" scan "$images" && [ "$(grep -c 'scan\.\(nii\.gz\|nrrd\|mha\)' "$tmp/logs/scan-images.out")" -ge 3 ]; then
    pass "scan lists NIfTI, NRRD and MHA files"
  else fail "scan lists NIfTI, NRRD and MHA files" "not all three listed" "$tmp/logs/scan-images.out" "$tmp/logs/scan-images.err"; fi
  for suffix in nii.gz nrrd mha; do
    name=convert-${suffix%%.*}
    if ! run "$name" -- "$app" convert "$images/scan.$suffix" "$tmp/$name-bundle.nii.gz"; then
      fail "convert $suffix (bundle = installed)" "exit $?" "$tmp/logs/$name.out" "$tmp/logs/$name.err"
    elif ! "$installed" convert "$images/scan.$suffix" "$tmp/$name-installed.nii.gz" >/dev/null 2>"$tmp/logs/$name-installed.err"; then
      fail "convert $suffix (bundle = installed)" "the installed radlens failed" "$tmp/logs/$name-installed.err"
    elif detail=$("$py" packaging/smoke_checks.py same-nifti "$tmp/$name-bundle.nii.gz" "$tmp/$name-installed.nii.gz"); then
      pass "convert $suffix (bundle = installed)" "$detail"
    else fail "convert $suffix (bundle = installed)" "$detail"; fi
  done
  if run analyze-nrrd -- "$app" analyze "$images/scan.nrrd" --modality CT --out "$tmp/analysis-nrrd" \
    && detail=$("$py" packaging/smoke_checks.py summary "$tmp/analysis-nrrd"); then
    pass "analyze an NRRD file" "$detail"
  else fail "analyze an NRRD file" "${detail:-exit $?}" "$tmp/logs/analyze-nrrd.out" "$tmp/logs/analyze-nrrd.err"; fi
  detail=""
else fail "image files written by SimpleITK" "$detail"; fi

# The main job: no arguments and no display -> the viewer renders to a PNG in the user cache.
if run main-job -- "$app"; then
  shot=$(sed -n 's/^screenshot written to //p' "$tmp/logs/main-job.out")
  if ! grep -q '^model ct-nodule-demo' "$tmp/logs/main-job.out"; then
    fail "main job (no arguments, no display)" "the default model did not run" "$tmp/logs/main-job.out" "$tmp/logs/main-job.err"
  elif detail=$("$py" packaging/smoke_checks.py png "$shot"); then
    pass "main job (no arguments, no display)" "$detail"
  else fail "main job (no arguments, no display)" "$detail"; fi
else fail "main job (no arguments, no display)" "exit $?" "$tmp/logs/main-job.out" "$tmp/logs/main-job.err"; fi

if run view QT_QPA_PLATFORM=offscreen -- "$app" view "$sample" --model default --screenshot "$tmp/view.png"; then
  if ! grep -q '^model ct-nodule-demo' "$tmp/logs/view.out"; then
    fail "view --screenshot (offscreen)" "the model did not run" "$tmp/logs/view.out" "$tmp/logs/view.err"
  elif detail=$("$py" packaging/smoke_checks.py png "$tmp/view.png"); then
    pass "view --screenshot (offscreen)" "$detail"
  else fail "view --screenshot (offscreen)" "$detail"; fi
else fail "view --screenshot (offscreen)" "exit $?" "$tmp/logs/view.out" "$tmp/logs/view.err"; fi

if run analyze -- "$app" analyze "$sample" --out "$tmp/analysis" && detail=$("$py" packaging/smoke_checks.py summary "$tmp/analysis"); then
  pass "analyze writes its outputs" "$detail"
else fail "analyze writes its outputs" "${detail:-exit $?}" "$tmp/logs/analyze.out" "$tmp/logs/analyze.err"; fi
detail=""

if run analyze-anonymize -- "$app" analyze "$sample" --out "$tmp/analysis-anon" --anonymize \
  && detail=$("$py" packaging/smoke_checks.py summary "$tmp/analysis-anon"); then
  pass "analyze --anonymize" "$detail"
else fail "analyze --anonymize" "${detail:-exit $?}" "$tmp/logs/analyze-anonymize.out" "$tmp/logs/analyze-anonymize.err"; fi

# --- bad input: the same clear errors as the installed radlens ------------------------------
# same_error NAME EXPECTED_TEXT [VAR=value...] -- ARGS...: both exit non-zero with equal codes
# and equal "radlens ..." error lines, and the lines say EXPECTED_TEXT.
same_error() {
  local name=$1 expected=$2; shift 2
  local extra=()
  while [ "$1" != -- ]; do extra+=("$1"); shift; done
  shift
  run "$name-bundle" "${extra[@]}" -- "$app" "$@"; local code_bundle=$?
  run "$name-installed" "${extra[@]}" -- "$installed" "$@"; local code_installed=$?
  local lines_bundle lines_installed
  lines_bundle=$(errors "$name-bundle"); lines_installed=$(errors "$name-installed")
  if [ "$code_bundle" -eq 0 ]; then
    fail "$name" "the bundle exited 0" "$tmp/logs/$name-bundle.out" "$tmp/logs/$name-bundle.err"
  elif [ "$code_bundle" -ne "$code_installed" ] || [ "$lines_bundle" != "$lines_installed" ]; then
    fail "$name" "bundle: exit $code_bundle '$lines_bundle'; installed: exit $code_installed '$lines_installed'"
  elif ! grep -q -- "$expected" <<<"$lines_bundle"; then
    fail "$name" "the error does not say '$expected': $lines_bundle"
  else pass "$name" "exit $code_bundle: $(head -n 1 <<<"$lines_bundle" | cut -c 1-150)"; fi
}

mkdir -p "$tmp/broken"
first_slice=$(ls "$sample" | grep -v '^\.' | sort | head -n 1)
head -c 1500 "$sample/$first_slice" > "$tmp/broken/truncated.dcm"
same_error "broken scan: convert" "truncated\|cut short\|ends before" -- convert "$tmp/broken/truncated.dcm" "$tmp/broken.nii.gz"
same_error "broken scan: view" "error" QT_QPA_PLATFORM=offscreen -- view "$tmp/broken" --screenshot "$tmp/broken.png"

# A user model whose weights file is not there.
card_dir=$tmp/data/radlens/models/missing-weights-demo
mkdir -p "$card_dir"
sed -e 's/^name = .*/name = "missing-weights-demo"/' -e '/^default_for/d' \
  resources/models/ct-nodule-demo/card.toml > "$card_dir/card.toml"
if run models-missing -- "$app" models && grep -q '^missing-weights-demo .*weights missing' "$tmp/logs/models-missing.out"; then
  pass "models shows missing weights" "$(grep '^missing-weights-demo' "$tmp/logs/models-missing.out")"
else fail "models shows missing weights" "no 'missing-weights-demo ... weights missing'" "$tmp/logs/models-missing.out"; fi
same_error "missing model weights: analyze" "missing-weights-demo\|weights" -- analyze "$sample" --out "$tmp/analysis-missing" --model missing-weights-demo

if [ "$flavour" = cpu ]; then
  same_error "CUDA requested, no GPU: analyze" "CUDA was requested" -- analyze "$sample" --out "$tmp/analysis-cuda" --device cuda
fi

# --- the log ------------------------------------------------------------------------------
log=$tmp/state/radlens/log/radlens.log
if [ ! -s "$log" ]; then
  fail "log in the user's log folder" "no $log"
elif ! grep -q "(packaged)" "$log" || ! grep -q "ERROR" "$log"; then
  fail "log in the user's log folder" "no packaged run or no error recorded" "$log"
elif grep -q -i "RADLENS^PHANTOM\|RADLENS-PHANTOM" "$log"; then
  fail "log in the user's log folder" "it names the sample's patient" "$log"
else pass "log in the user's log folder" "$(grep -c "(packaged)" "$log") packaged runs, $(grep -c ERROR "$log") errors"; fi

written=$(find "$tmp/app" -newer "$archive" -type f | grep -v '/__pycache__/' | head -n 5)
if [ -z "$written" ]; then pass "nothing written inside the bundle"
else fail "nothing written inside the bundle" "$written"; fi

echo "smoke: $(( $(date +%s) - started )) s in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
