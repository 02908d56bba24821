#!/usr/bin/env bash
# Re-run every benchmark, in order, writing benchmarks/results/*.json (see benchmarks/README.md).
#
#   benchmarks/run_all.sh                    # all of them, in order
#   benchmarks/run_all.sh province hostile   # only those whose name contains one of the words
#
# PROVINCE=DIR names the generated province (default /work/bench/province, else benchmarks/out/province);
# PYTHON the interpreter (default: python). Commit the results files only from a clean checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
PROVINCE="${PROVINCE:-/work/bench/province}"
[ -d "$PROVINCE" ] || PROVINCE=benchmarks/out/province
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "warning: the checkout has uncommitted changes; the results files will say dirty" >&2
fi
want() { [ $# -eq 0 ] && return 0; for w in "${WORDS[@]}"; do [[ "$1" == *"$w"* ]] && return 0; done; return 1; }
WORDS=("$@")
run() { local name=$1; shift; if [ ${#WORDS[@]} -eq 0 ] || want "$name"; then
  echo "== $name: $*"; uptime; "$PY" "$@"; fi; }

run coords_speed        benchmarks/coords_speed.py
run lookup_speed        benchmarks/lookup_speed.py
run http_lookup         benchmarks/http_lookup.py
run bench_io_load       benchmarks/bench_io_load.py
run partition_sample    benchmarks/partition_sample.py data/sample --jobs 2
run partition_vs_peers  benchmarks/partition_vs_peers.py --spopt-cap 45 --sample data/sample
run siting_vs_spopt     benchmarks/siting_vs_spopt.py
run hostile_uploads     benchmarks/hostile_uploads.py
run province_cli        benchmarks/province.py --data "$PROVINCE" --via cli --configs 2
run province_speedup    benchmarks/province.py --data "$PROVINCE" --via python --configs 1,2,dask \
                          --counties 469001,469025,469029,460200 --lookup
run adopt               benchmarks/adopt.py
run adopt_small         benchmarks/adopt_small.py
run siting_capacity     benchmarks/siting_capacity_vs_spopt.py --spopt-cap 1800 --spopt-mem-gb 16
