#!/bin/bash
# Issue 6 on a real H200: real vLLM 0.26 serving random-weight Qwen3-Reranker shapes, driven by several
# `rerank-doctor stress` client processes, while `rerank-doctor collect` records a bundle and a plain
# `nvidia-smi --query-gpu ... -l 1` log runs beside it as the reference; plus the transformers bypass.
#
# usage (on the device machine, from the repo root; .gpu-carry carried):
#   bash tests/gpu/run_h200.sh "STEP STEP ..."
# steps, run in order, each skipped when too little of the time box (LIMIT s, default 570) is left:
#   gen4b | gen06b                          build the random-weight model (tests/gpu/gen_model.py)
#   serve:SHAPE:NAPI                        (re)start vLLM, e.g. serve:4b:8 (8 API servers); skipped unless
#                                           SERVE_NEED s (220) are left: a start and one window
#   closed:TAG | open:TAG                   one measured window on the running server (see window())
#   closed:TAG:DxW:CHURN:RATE               the same with this window's own request shape (D documents x W
#                                           words), CHURN=churn for --new-connection-per-request, and (open)
#                                           RATE total calls/s instead of 1.5x the last closed window; any
#                                           field may be empty, e.g. open:0.6b-8api-churn::churn:400
# Beside every window, evidence not from rerank-doctor: nvidia-smi -l 1, top -b (1 s), ps (5 s) and
# ss's TIME-WAIT count on the port (1 s), see outside_logs().
#   bypass:SHAPE                            `rerank-doctor bypass` on 640 of the stress pairs, transformers on
#                                           cuda; with --url (same pairs through the server) when one is up
#   stop                                    stop the server
#   hf:SHAPE                                transformers scoring loop, batch 32 (tests/gpu/hf_score.py)
#   nvml:SHAPE:TAG                          no-vLLM fallback: NVML window (real sampler) beside nvidia-smi,
#                                           while the transformers loop is the workload
#   fallback:SHAPE:TAG                      nvml:SHAPE:TAG, only if no vLLM window was recorded
# Setup (wheels to /tmp/site, trimmed vLLM to /tmp/v26) always runs first. Everything lands in /tmp/w and
# is packed into $OUT/gpu-h200-results.tar.gz at the end (and after every window, so a kill keeps it).
# LOCALTEST=1: no GPU, no vLLM; a fake server (tests/gpu/fake_vllm.py) stands in, to test this script.
set -u
STEPS=${1:-"gen4b serve:4b:8 closed:4b-8api open:4b-8api stop"}
T0=$(date +%s); LIMIT=${LIMIT:-570}; END=$((T0 + LIMIT))
REPO=$(cd "$(dirname "$0")/../.." && pwd)
C=$REPO/.gpu-carry
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
W=${W:-/tmp/w}; mkdir -p "$W"
PY=${PY:-python3}
RD="$PY $REPO/tests/gpu/rd.py"
PORT=8000; URL=http://127.0.0.1:$PORT
K=${K:-4}                 # stress client processes
CONC=${CONC:-16}          # closed loop: workers per client process
DOCS=${DOCS:-20}; WORDS=${WORDS:-300}
LEAD=${LEAD:-5}           # load runs this long before the collect window opens (steady state inside it)
WIN=${WIN:-30}            # collect window, s
LOCALTEST=${LOCALTEST:-0}
exec > >(tee -a "$W/driver.log") 2>&1
el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( END - $(date +%s) )); }
log() { echo "[t=$(el)s] $*"; }
pack() { tar czf "$OUT/gpu-h200-results.tar.gz" -C "$W" --exclude='*.safetensors' . 2>/dev/null; }
hok() { $PY -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; }
export VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
SPGID=""; SERVER_TAG=""; SERVER_CMD=""
cleanup() { stop_server; pack; }
trap cleanup EXIT

# ---------------------------------------------------------------- setup
log "steps: $STEPS (limit ${LIMIT}s, K=$K CONC=$CONC DOCS=$DOCS WORDS=$WORDS LEAD=$LEAD WIN=$WIN)"
{
  echo "date_utc: $(date -u +%FT%TZ)"; echo "utc_offset: $(date +%z)"; echo "TZ: ${TZ:-unset}"
  echo "uname: $(uname -a)"; echo "nproc: $(nproc)"; free -g
  $PY -V
  $PY -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|tokenizers|triton|aiohttp|psutil|prometheus.client|rich|requests|nvidia-ml-py|uvloop|numpy|safetensors) "
  command -v nvidia-smi && nvidia-smi && nvidia-smi -q | grep -i -E "Driver Version|CUDA Version|Product Name|Power Limit|Max Clocks|Persistence" | head -20
} > "$W/env.txt" 2>&1
head -3 "$W/env.txt"; grep -E "^(torch|transformers|nvidia-ml-py|psutil|rich|prometheus) " "$W/env.txt" | tr '\n' ' '; echo
if [ "$LOCALTEST" != 1 ]; then
  if [ ! -f /tmp/site/.done ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$C"/whl/*.whl \
      > "$W/pip.log" 2>&1 || { log "pip install failed"; tail -5 "$W/pip.log"; }
    mkdir -p /tmp/v26
    if command -v xz > /dev/null; then xz -T0 -dc "$C/vllm026s.tar.xz" | tar -xf - -C /tmp/v26 || log "vLLM untar failed"
    else $PY -c "import tarfile,sys; tarfile.open(sys.argv[1],'r:xz').extractall(sys.argv[2])" "$C/vllm026s.tar.xz" /tmp/v26 || log "vLLM untar failed"; fi
    touch /tmp/site/.done
  fi
  export PYTHONPATH=/tmp/site:/tmp/v26:$REPO
  $PY -c "import vllm, torch, transformers; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)" \
    2>&1 | tail -1 | tee -a "$W/env.txt"
else
  export PYTHONPATH=$REPO
fi
$RD --version | tee -a "$W/env.txt"
log "setup done"

# ---------------------------------------------------------------- helpers
model_dir() { # 4b -> /tmp/m4b, 0.6b -> /tmp/m06b (LOCALTEST: the lab's tiny model, for the bypass)
  if [ "$LOCALTEST" = 1 ]; then echo "${LT_MODEL:-/tmp/lt/labmodel}"; else echo "/tmp/m$(echo "$1" | tr -d .)"; fi
}
served() { echo "qwen3-reranker-$1-random"; }

gen() { # shape
  local m; m=$(model_dir "$1")
  if [ "$LOCALTEST" = 1 ]; then return 0; fi
  timeout 240 $PY "$REPO/tests/gpu/gen_model.py" --shape "$1" --tok "$C/tok" --out "$m" 2>&1 | grep -v -i -E "warn|Writing" | tail -2
}

gpu_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | head -1; }

group_alive() { # pgid: any member of the group that is not a zombie (kill -0 would count zombies)
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {found=1} END {exit !found}'
}

stop_server() {
  [ -z "$SPGID" ] && return 0
  # SIGTERM: a background job of a non-interactive shell starts with SIGINT ignored.
  kill -TERM -- "-$SPGID" 2>/dev/null
  for _ in $(seq 1 25); do group_alive "$SPGID" || break; sleep 1; done
  group_alive "$SPGID" && { log "server group still alive after SIGTERM: SIGKILL"; kill -9 -- "-$SPGID" 2>/dev/null; sleep 2; }
  wait "$SPGID" 2>/dev/null
  SPGID=""
  if [ "$LOCALTEST" != 1 ]; then  # the next server needs the memory back
    for _ in $(seq 1 15); do m=$(gpu_mem | tr -dc 0-9); [ -n "$m" ] && [ "$m" -lt 4000 ] && break; sleep 1; done
  fi
  log "server $SERVER_TAG stopped (GPU memory now $(gpu_mem))"
}

start_server() { # shape napi
  local shape=$1 napi=$2 m name slog t=0 to=${START_TO:-300}
  m=$(model_dir "$shape"); name=$(served "$shape"); SERVER_TAG="$shape-${napi}api"
  slog="$W/server-$SERVER_TAG.log"
  if [ "$LOCALTEST" = 1 ]; then
    SERVER_CMD="$PY $REPO/tests/gpu/fake_vllm.py --port $PORT --model $name"
  else
    # The `vllm serve` entry point (vllm.entrypoints.cli.main): the one that takes --api-server-count.
    SERVER_CMD="$PY -m vllm.entrypoints.cli.main serve $m --host 127.0.0.1 --port $PORT --served-model-name $name --runner pooling --dtype bfloat16 --max-model-len 8192 --gpu-memory-utilization 0.85 --api-server-count $napi --disable-uvicorn-access-log"
  fi
  echo "$SERVER_CMD" > "$W/server-$SERVER_TAG.cmd"
  # Its own session and process group, so stop_server ends exactly the server and its children.
  setsid $SERVER_CMD > "$slog" 2>&1 < /dev/null &
  SPGID=$!
  while [ $t -lt "$to" ]; do
    sleep 2; t=$((t + 2))
    if ! kill -0 "$SPGID" 2>/dev/null; then log "server $SERVER_TAG died after ${t}s"; tail -15 "$slog"; SPGID=""; return 1; fi
    if hok "$URL/health"; then log "server $SERVER_TAG healthy after ${t}s"; echo "healthy_after_s: $t" >> "$W/server-$SERVER_TAG.cmd"; return 0; fi
    [ "$(left)" -lt 60 ] && break
  done
  log "server $SERVER_TAG not healthy in ${t}s"; tail -15 "$slog"; stop_server; return 1
}

sum_json() { # key files...  -> sum of a top-level number over stress JSON reports
  $PY - "$@" <<'EOF'
import json, sys
key, tot, n = sys.argv[1], 0.0, 0
for f in sys.argv[2:]:
    try:
        v = json.load(open(f)).get(key)
    except Exception:
        continue
    if isinstance(v, (int, float)):
        tot += v; n += 1
print(f"{tot:.3f}" if n else "")
EOF
}

CAP_CALLS=""   # calls/s the last closed window sustained (all client processes together)

outside_logs() { # dir seconds: top, ps and ss logged beside the window (evidence not from rerank-doctor)
  local d=$1 n=$2 i
  for i in $(seq 1 "$n"); do
    echo "### t_unix=$(date +%s.%N)" >> "$d/top.log"
    top -b -n 1 -w 200 2>&1 | head -25 >> "$d/top.log"
    { echo "### t_unix=$(date +%s.%N)"; ss -Htan state time-wait "( sport = :$PORT )" | wc -l; ss -s | head -3; } >> "$d/ss.log" 2>&1
    if [ $((i % 5)) = 1 ]; then
      { echo "### t_unix=$(date +%s.%N)"; ps -eo pid,ppid,pcpu,rss,etimes,stat,comm,args --sort=-pcpu | head -25; } >> "$d/ps.log" 2>&1
    fi
    sleep 1
  done
}

window() { # mode tag [DxW] [churn] [rate]
  local mode=$1 tag=$2 shape=${3:-} churn=${4:-} fixed_rate=${5:-} d i sp=() nv cp dur ol
  local DOCS=$DOCS WORDS=$WORDS conn=""
  [ -n "$shape" ] && { DOCS=${shape%x*}; WORDS=${shape#*x}; }
  [ "$churn" = churn ] && conn="--new-connection-per-request"
  d="$W/gpu-h200-$tag"; [ -n "$shape$churn$fixed_rate" ] || d="$d-$mode"; mkdir -p "$d"
  dur=$((LEAD + WIN + 3))
  local load
  if [ "$mode" = closed ]; then
    load="--concurrency $CONC"
  elif [ -n "$fixed_rate" ]; then
    load="--rate $($PY -c "print(round($fixed_rate/$K, 3))") --arrival poisson"
  else
    # Open loop at 1.5x what the closed window sustained: the queue must grow through the window.
    local rate
    rate=$($PY -c "import sys; c=float(sys.argv[1] or 0); print(round(max(c, 2.0)*1.5/$K, 3))" "${CAP_CALLS:-0}")
    load="--rate $rate --arrival poisson"
  fi
  echo "$SERVER_CMD" > "$d/server-cmd.txt"
  { echo "mode: $mode"; echo "clients: $K processes, each: rerank-doctor stress --url $URL $load $conn --docs $DOCS --words $WORDS --duration ${dur}s --timeout 120s --distinct-bodies 256 --seed <i> --json --quiet"
    echo "collect: rerank-doctor collect --url $URL --duration ${WIN}s --out bundle --quiet (opened ${LEAD}s after the load started)"
    echo "reference: nvidia-smi --query-gpu=timestamp,index,name,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw,power.limit,clocks.sm,clocks.mem,temperature.gpu,pstate,clocks_event_reasons.active --format=csv -l 1"
    echo "outside: every 1 s 'top -b -n 1 -w 200 | head -25' (top.log) and 'ss -Htan state time-wait \"( sport = :$PORT )\" | wc -l; ss -s | head -3' (ss.log), every 5 s 'ps -eo pid,ppid,pcpu,rss,etimes,stat,comm,args --sort=-pcpu | head -25' (ps.log), from the load's start to the window's end"
  } > "$d/load.txt"
  if [ "$LOCALTEST" != 1 ]; then
    nvidia-smi --query-gpu=timestamp,index,name,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw,power.limit,clocks.sm,clocks.mem,temperature.gpu,pstate,clocks_event_reasons.active \
      --format=csv -l 1 > "$d/reference-nvidia-smi.csv" 2> "$d/reference-nvidia-smi.err" & nv=$!
  fi
  for i in $(seq 0 $((K - 1))); do
    local extra=""; [ "$i" -gt 0 ] && extra="--no-metrics"   # one client's before/after scrape is enough
    timeout -s INT $((dur + 60)) $RD stress --url "$URL" $load $conn --docs "$DOCS" --words "$WORDS" --duration "${dur}s" \
      --timeout 120s --distinct-bodies 256 --seed "$i" --json --quiet $extra > "$d/stress-$i.json" 2> "$d/stress-$i.err" &
    sp+=($!)
  done
  outside_logs "$d" $((LEAD + WIN + 2)) & ol=$!
  sleep "$LEAD"
  timeout -s INT $((WIN + 40)) $RD collect --url "$URL" --duration "${WIN}s" --out "$d/bundle" --quiet > "$d/collect.out" 2>&1
  echo "collect exit: $?" >> "$d/collect.out"
  if [ "$mode" = open ]; then
    # Arrivals exceed capacity on purpose, so the backlog would take long to drain: stop the clients now
    # (SIGINT: each still writes its report, the unanswered calls counted as unfinished).
    sleep 1; for p in "${sp[@]}"; do kill -INT "$p" 2>/dev/null; done
  fi
  for p in "${sp[@]}"; do wait "$p"; done
  wait "$ol" 2>/dev/null
  [ -n "${nv:-}" ] && { sleep 1; kill "$nv" 2>/dev/null; wait "$nv" 2>/dev/null; }
  if [ "$mode" = closed ]; then CAP_CALLS=$(sum_json calls_per_s "$d"/stress-*.json); fi
  log "window $tag-$mode: pairs/s=$(sum_json pairs_per_s "$d"/stress-*.json) calls/s=$(sum_json calls_per_s "$d"/stress-*.json) $(tail -1 "$d/collect.out")"
  $PY "$REPO/tests/gpu/summarize.py" "$d" 2>&1 | tail -4
  pack
}

# ---------------------------------------------------------------- steps
need() { # seconds a step needs; false (and a log line) when the time box has less left
  if [ "$(left)" -lt "$1" ]; then log "SKIP $2: needs ~$1 s, $(left) s left"; return 1; fi
}
for step in $STEPS; do
  IFS=: read -r what a b c e <<< "$step"
  case $what in
    gen4b) need 150 "$step" && { gen 4b; log "gen 4b done"; } ;;
    gen06b) need 60 "$step" && { gen 0.6b; log "gen 0.6b done"; } ;;
    serve) stop_server; need "${SERVE_NEED:-220}" "$step" && start_server "$a" "$b" && {
             # warm-up, unmeasured: first calls compile/allocate nothing later windows should pay for
             timeout -s INT 60 $RD stress --url "$URL" --concurrency 8 --docs "$DOCS" --words "$WORDS" --duration 6s --json --quiet \
               --no-metrics --distinct-bodies 64 --seed 99 > "$W/warmup-$SERVER_TAG.json" 2>&1
             log "warm-up done: $(sum_json pairs_per_s "$W/warmup-$SERVER_TAG.json") pairs/s"; } ;;
    closed|open) [ -n "$SPGID" ] && need $((LEAD + WIN + 25)) "$step" && window "$what" "$a" "$b" "$c" "$e" ;;
    stop) stop_server ;;
    hf) need 60 "$step" && [ "$LOCALTEST" != 1 ] && {
          mkdir -p "$W/gpu-h200-$a-bypass"
          timeout 150 $PY "$REPO/tests/gpu/hf_score.py" run --model "$(model_dir "$a")" --docs "$DOCS" --words "$WORDS" \
            --seconds 20 --out "$W/gpu-h200-$a-bypass/transformers-loop.json" 2>&1 | grep -v -i warn | tail -3; } ;;
    bypass) need 100 "$step" && {
          d="$W/gpu-h200-$a-bypass"; mkdir -p "$d"
          $PY "$REPO/tests/gpu/hf_score.py" pairs --docs "$DOCS" --words "$WORDS" --distinct 32 --out "$d/pairs.json"
          served=""; [ -n "$SPGID" ] && served="--url $URL --served-model $(served "$a")"
          dev="--device cuda"; [ "$LOCALTEST" = 1 ] && dev="--device cpu --python /work/lab/venv/bin/python"
          echo "rerank-doctor bypass --model $(model_dir "$a") $dev --pairs pairs.json --batch-size $DOCS $served --worker-timeout 150 --json --save ." > "$d/bypass-cmd.txt"
          timeout -s INT 200 $RD bypass --model "$(model_dir "$a")" $dev --pairs "$d/pairs.json" --batch-size "$DOCS" $served \
            --worker-timeout 150 --json --save "$d" > "$d/bypass.out" 2> "$d/bypass.err"
          log "bypass $a exit $?: $(head -c 300 "$d/bypass.err")"
          [ -f "$d/bypass.json" ] && $PY - "$d/bypass.json" <<'EOF2' 2>&1 | tail -3
import json, sys
d = json.load(open(sys.argv[1]))
print({k: d.get(k) for k in list(d)[:12]})
EOF2
          pack; } ;;
    fallback) # only when no vLLM window was recorded (vLLM would not start): the NVML-only window
      ls "$W"/gpu-h200-*-closed/bundle/metrics.prom > /dev/null 2>&1 && continue
      log "no vLLM window recorded: NVML fallback with the transformers loop as the workload"
      ;&
    nvml) need 80 "$step" && [ "$LOCALTEST" != 1 ] && {
          d="$W/gpu-h200-$b-nvml"; mkdir -p "$d"
          nvidia-smi --query-gpu=timestamp,index,name,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw,power.limit,clocks.sm,clocks.mem,temperature.gpu,pstate,clocks_event_reasons.active \
            --format=csv -l 1 > "$d/reference-nvidia-smi.csv" 2>/dev/null & nv=$!
          $PY "$REPO/tests/gpu/hf_score.py" run --model "$(model_dir "$a")" --docs "$DOCS" --words "$WORDS" --seconds 45 \
            --out "$d/transformers-loop.json" > "$d/hf.out" 2>&1 & hp=$!
          sleep 20
          timeout 60 $PY "$REPO/tests/gpu/nvml_window.py" --pid "$hp" --duration "$WIN" --out "$d/bundle" > "$d/nvml.out" 2>&1
          wait "$hp"; sleep 1; kill "$nv" 2>/dev/null
          $PY "$REPO/tests/gpu/summarize.py" "$d" 2>&1 | tail -4; pack; } ;;
    *) log "unknown step $step" ;;
  esac
done
stop_server
log "ALL DONE in $(el)s"
pack
ls -la "$OUT"
