#!/usr/bin/env bash
# The embedded database's memory, measured: the built broker (as `npm start` runs it) on fresh
# data and CA directories, then started again on them; for each start, the peak RSS (VmHWM)
# and the RSS at rest three seconds after /readyz answers. The chart's embedded values and the
# README's figures come from this.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
for run in first second; do
  P=$(free_port); O=$(free_port)
  WRIT_PORT=$P WRIT_OPS_PORT=$O WRIT_DATA_DIR=$work/data WRIT_CA_DIR=$work/certs \
    node --max-old-space-size=160 dist/main.js > "$work/$run.out" 2> "$work/$run.err" &
  pid=$!
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$O/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 3
  mb() { awk -v k="$1:" '$1 == k { print int($2 / 1024) }' "/proc/$pid/status"; }
  echo "$run start: peak $(mb VmHWM) MB RSS, at rest $(mb VmRSS) MB"
  kill -TERM "$pid"; wait "$pid" || true
done
