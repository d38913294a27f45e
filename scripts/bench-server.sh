#!/usr/bin/env bash
# The server benchmark of docs/benchmarks.md: memeguard against a plain FastAPI + uvicorn +
# onnxruntime peer doing the same work (scripts/bench/peer_fastapi.py) and against the
# bare-session ceiling (scripts/bench/ceiling.py), with an external load generator (wrk),
# in one run, alternating the two servers slice by slice so the machine's load hits both.
#
#   scripts/bench-server.sh [SECONDS_PER_SLICE] [ROUNDS]     # defaults: 10 s, 2 rounds
#
# Request: OpenAI content parts, a 500×500 JPEG as a base64 data URL plus a 70-character
# caption, scored by the demo package. Installs wrk (apt) and an optional venv
# .cache/bench-venv (fastapi, uvicorn, onnxruntime 1.31.1, tokenizers, pillow, numpy).
# Everything listens on 127.0.0.1 only. Prints a Markdown table. MEMEGUARD_BENCH_NO_BUILD=1
# uses the release binary as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
slice=${1:-10}
rounds=${2:-2}
mg_port=${MEMEGUARD_BENCH_PORT:-8090}
peer_port=${PEER_BENCH_PORT:-8091}
extra_flags=${MEMEGUARD_BENCH_FLAGS:-}

scripts/apt-install.sh bench-server wrk
scripts/onnxruntime.sh cpu
venv=.cache/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q fastapi uvicorn onnxruntime==1.31.1 tokenizers pillow numpy
fi
[ -n "${MEMEGUARD_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p memeguard
package=$(ls -d models/demo/*/ | sort | tail -n 1)
package=${package%/}

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

db="sqlite://$work/memeguard.db"
key=$(target/release/memeguard keys create --role scorer --name bench --database-url "$db" 2>/dev/null | grep -o 'mg_[A-Za-z0-9_-]*' | head -n 1)
# shellcheck disable=SC2086
target/release/memeguard serve --bind "127.0.0.1:$mg_port" --database-url "$db" --models-dir models $extra_flags \
  >"$work/memeguard.log" 2>&1 &
pids+=($!)
"$venv/bin/python" scripts/bench/peer_fastapi.py --package "$package" --port "$peer_port" >"$work/peer.log" 2>&1 &
pids+=($!)
for url in "http://127.0.0.1:$mg_port/readyz" "http://127.0.0.1:$peer_port/docs"; do
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.2; done
  curl -fsS -o /dev/null "$url" || { echo "bench-server: $url never answered" >&2; cat "$work"/*.log >&2; exit 1; }
done

"$venv/bin/python" - "$work/body.json" <<'PY'
import base64, io, json, sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(7)
y, x = np.mgrid[0:500, 0:500]
rgb = np.stack([(x * 255 // 499), (y * 255 // 499), ((x // 25 + y // 25) % 2) * 180], -1).astype(np.int64)
rgb = np.clip(rgb + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
buf = io.BytesIO()
Image.fromarray(rgb).save(buf, "JPEG", quality=85)
caption = "when the exam has no questions and the teacher says it was all in the book"[:70]
body = {"model": "memeguard", "input": [
    {"type": "text", "text": caption},
    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()}}]}
open(sys.argv[1], "w").write(json.dumps(body))
PY
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$work/body.json", "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
# Both answer 200 before measuring.
for port in "$mg_port" "$peer_port"; do
  code=$(curl -s -o "$work/check.json" -w '%{http_code}' "http://127.0.0.1:$port/v1/moderations" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data-binary "@$work/body.json")
  [ "$code" = 200 ] || { echo "bench-server: port $port answered $code: $(cat "$work/check.json")" >&2; exit 1; }
done

# wrk's latency table in ms for a percentile line ("50.000%    3.21ms").
ms() { awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print v }'; }
run() { # port concurrency -> "req/s p50 p99 non2xx"
  local out threads=$(($2 > 1 ? 2 : 1))
  out=$(wrk -t"$threads" -c"$2" -d"${slice}s" --latency -s "$work/post.lua" "http://127.0.0.1:$1/v1/moderations")
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '/Latency Distribution/ { on = 1 } on' <<<"$out" | ms 50%)
  p99=$(awk '/Latency Distribution/ { on = 1 } on' <<<"$out" | ms 99%)
  bad=$(awk '/Non-2xx/ { print $5 }' <<<"$out")
  echo "$rps ${p50:-?} ${p99:-?} ${bad:-0}"
}

ceiling=$("$venv/bin/python" scripts/bench/ceiling.py --package "$package" --seconds 5)
echo "| concurrency | server | req/s | p50 ms | p99 ms | p99/p50 | non-2xx |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
declare -A sum
for c in 1 32; do
  for r in $(seq 1 "$rounds"); do
    for who in memeguard peer; do
      port=$mg_port; [ "$who" = peer ] && port=$peer_port
      read -r rps p50 p99 bad < <(run "$port" "$c")
      ratio=$(awk -v a="$p99" -v b="$p50" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')
      echo "| $c | $who (round $r) | $rps | $p50 | $p99 | $ratio | $bad |"
      sum[$who,$c]=$(awk -v a="${sum[$who,$c]:-0}" -v b="$rps" 'BEGIN { print a + b }')
    done
  done
done
echo
echo "Bare ONNX Runtime session, batches of 32 (the ceiling): $ceiling pairs/s"
for c in 1 32; do
  awk -v m="${sum[memeguard,$c]}" -v p="${sum[peer,$c]}" -v r="$rounds" -v c="$c" -v top="$ceiling" 'BEGIN {
    printf "c=%d: memeguard %.0f req/s (%.1f %% of the ceiling), peer %.0f req/s; memeguard / peer = %.2f\n",
      c, m / r, 100 * m / r / top, p / r, m / p }'
done
