#!/usr/bin/env bash
# The load figures of docs/serve.md, one scenario per call, on one machine over loopback.
#
#   tools/serve_load_study.sh throughput CHECKPOINT IMAGES [OUT]   convert vs serve with 16 clients
#   tools/serve_load_study.sh overload   CHECKPOINT IMAGES [OUT]   32 clients, --max-queue 16, 2 minutes
#   tools/serve_load_study.sh malformed  CHECKPOINT IMAGES [OUT]   200 bad requests mixed with good ones
#
# Each call starts `translate serve` on a free port, waits for /healthz, runs
# tools/load_serve.py, stops the server with SIGTERM and writes OUT/<scenario>.json (default OUT:
# a new temp folder). Set PYTHON to the interpreter that has translate installed (default python3)
# and DEVICE (default cpu); SERVE_ARGS adds server options.
# Exit status: the load tool's (0 when every answer was right).
set -euo pipefail
scenario=${1:?scenario: throughput, overload or malformed}
ckpt=${2:?checkpoint}
images=${3:?image folder}
out=${4:-$(mktemp -d)}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cpu}
mkdir -p "$out"
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

serve_args=()
load_args=()
case "$scenario" in
    throughput)
        # The reference: the same images through `translate convert` on the same device, before
        # and after the server's run (the machine's load may drift), at its default batch size
        # and at the server's --max-batch.
        for run in before-b4:4 before-b8:8; do
            rm -rf "$out/convert"
            echo "convert ${run%%:*} (batch ${run##*:}): $(uptime)"
            "$PYTHON" -m translate convert "$ckpt" "$images" "$out/convert" --device "$DEVICE" --no-progress \
                --ext png --batch-size "${run##*:}" 2>&1 | tee "$out/convert-${run%%:*}.log"
        done
        load_args=(--clients 16 --seconds 90 --warmup 5) ;;
    overload)
        serve_args=(--max-queue 16)
        load_args=(--clients 32 --seconds 120 --warmup 10) ;;
    malformed)
        serve_args=(--max-bytes 2000000)
        load_args=(--clients 16 --seconds 480 --mode malformed --malformed 200) ;;
    *) echo "unknown scenario $scenario (throughput, overload, malformed)" >&2; exit 2 ;;
esac

# SERVE_ARGS: more options for the server (e.g. "--max-batch 4"), split on spaces.
# shellcheck disable=SC2206
serve_args+=(${SERVE_ARGS:-})
"$PYTHON" -m translate serve "$ckpt" --port "$port" --device "$DEVICE" --log-level warning "${serve_args[@]}" \
    > "$out/server-$scenario.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    if curl -fs "$url/healthz" >/dev/null 2>&1; then break; fi
    sleep 0.5
done
echo "load: $(uptime)"
status=0
"$PYTHON" tools/load_serve.py "$url" --images "$images" --json "$out/$scenario.json" "${load_args[@]}" || status=$?
if [ "$scenario" = throughput ]; then
    kill -TERM $server; wait $server 2>/dev/null || true
    rm -rf "$out/convert"
    echo "convert after-b4 (batch 4): $(uptime)"
    "$PYTHON" -m translate convert "$ckpt" "$images" "$out/convert" --device "$DEVICE" --no-progress \
        --ext png 2>&1 | tee "$out/convert-after-b4.log"
fi
exit $status
