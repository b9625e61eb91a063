#!/usr/bin/env bash
# `writ dev` end to end: start it on free ports in a temporary directory, wait until it is
# ready, run the README's "Exchange a task token" (scripts/exchange-task.sh) with the values it
# prints, then stop it with SIGTERM (exit 0). Also checks that NODE_ENV=production is refused
# (exit 2). Fails loudly on any error; WRIT_CLI runs the CLI (default: dist/cli/main.js).
set -euo pipefail
cd "$(dirname "$0")/.."
WRIT_CLI=${WRIT_CLI:-node $PWD/dist/cli/main.js}
export WRIT_CLI
work=$(mktemp -d)
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port=$(free_port) ops=$(free_port) op=$(free_port) saas=$(free_port)

set +e; NODE_ENV=production $WRIT_CLI dev --dir "$work/refused" >/dev/null 2>"$work/refused.err"; code=$?; set -e
if [ "$code" != 2 ] || ! grep -q 'NODE_ENV=production' "$work/refused.err"; then echo "FAIL: NODE_ENV=production gave exit $code: $(cat "$work/refused.err")"; exit 1; fi
echo "NODE_ENV=production refused (exit 2)"

start=$(date +%s%N)
setsid $WRIT_CLI dev --dir "$work/dev" --port "$port" --ops-port "$ops" --op-port "$op" --saas-port "$saas" >"$work/out.log" 2>"$work/err.log" &
pid=$!
trap 'kill -- -$pid 2>/dev/null || true; rm -rf "$work"' EXIT
ready=
for _ in $(seq 1 200); do
  if curl -fsS "http://127.0.0.1:$ops/readyz" >/dev/null 2>&1 && grep -q '^export WRIT_SERVER=' "$work/out.log"; then ready=yes; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then echo "FAIL: writ dev not ready"; cat "$work/err.log"; grep -v '^{' "$work/out.log" || true; exit 1; fi
echo "writ dev ready after $(( ($(date +%s%N) - start) / 1000000 )) ms"
eval "$(grep '^export ' "$work/out.log")"
bash scripts/exchange-task.sh > "$work/exchange.log" 2>&1 || { echo "FAIL: exchange-task.sh"; cat "$work/exchange.log"; cat "$work/err.log"; exit 1; }
cat "$work/exchange.log"
kill -TERM "$pid"
if wait "$pid"; then echo "writ dev exited 0 on SIGTERM"; else echo "FAIL: writ dev exit code $? on SIGTERM"; cat "$work/err.log"; exit 1; fi
if grep -q 'oidc-provider WARNING' "$work/err.log" "$work/out.log"; then echo "FAIL: oidc-provider warned:"; grep 'oidc-provider' "$work/err.log" "$work/out.log"; exit 1; fi
