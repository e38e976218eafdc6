#!/usr/bin/env bash
# One GPU-host session's steps for issue #8, after ../shared/tools' staging and `install`
# (.gpu-stage/bin/gpu-host.sh). Run from the project root on the GPU host:
#
#   bash tests/gpu/host.sh models      # tiny + 1B now; the 7B shapes and the MoE in the background
#   bash tests/gpu/host.sh models-small  # tiny, 1B and the Mistral shape (what tests/gpu needs) only
#   bash tests/gpu/host.sh tests [-k EXPR]   # tests/gpu through pytest, report in $OUT
#   bash tests/gpu/host.sh fits-start  # fit-calibration runs in the background, one list per GPU
#   bash tests/gpu/host.sh fits-wait   # wait for them; results tarred into $OUT/fit-runs.tgz
#   bash tests/gpu/host.sh parity      # bench/serve_parity.py on GPU 0, into $OUT/parity.tgz
#   bash tests/gpu/host.sh parity-start llama-3.1-8b --rounds 5 --scale 2 --budget-s 1300 --restart-raw
#                                      # longer, in the background (model made first);
#   bash tests/gpu/host.sh parity-wait  # then this, once per call, until it says done
#   bash tests/gpu/host.sh startup tiny 2   # launch to ready, raw and llmdesk each alone, by turns
#   bash tests/gpu/host.sh bench-start llama-3.1-8b --rounds 3   # #19: llmdesk bench beside vllm bench serve
#   bash tests/gpu/host.sh bench-wait   # then this, once per call, until it says done
#   bash tests/gpu/host.sh printcmd-start llama-3.1-8b   # #20: the --print-command argv raw vs llmdesk serve
#   bash tests/gpu/host.sh printcmd-wait   # then this, once per call, until it says done
#   bash tests/gpu/host.sh quant-start     # #21: each quantized format of the 8B shape and two LoRA settings
#   bash tests/gpu/host.sh quant-wait      # then this, once per call, until it says done
#   bash tests/gpu/host.sh speed-start     # #21: output tokens/s per format of the 8B shape at c=1 and 64
#   bash tests/gpu/host.sh speed-wait      # then this, once per call, until it says done
#   bash tests/gpu/host.sh rest21-start [FORMAT…]  # #21's runs not reached on 2026-12-06 (gpt-oss, Mistral v0.1,
#   bash tests/gpu/host.sh rest21-wait     #   FP8 blocks, LoRA 4×64, then the speed of FORMATs, e.g. bf16 gptq4 w8a8)
#   bash tests/gpu/host.sh startup23-start [--options …]  # #23: start-up phases and speed per option
#   bash tests/gpu/host.sh startup23-wait [LIMIT_S]       #   then this, once per call, until it says done
#   bash tests/gpu/host.sh pending-start   # #22's tool round trip, one background job on GPU 0 (right after
#                                          # `install`; carry .gpu-extra, see below): the tool round trip on
#                                          # the tiny model (about 2 minutes; passed on an H100, 2026-12-07)
#   bash tests/gpu/host.sh pending-wait [LIMIT_S]   # then this, once per call, until it says done
#   bash tests/gpu/host.sh arch-start      # #21: vLLM on random-weight gpt-oss-20b (MXFP4), Gemma 3 1B, DeepSeek-V2-Lite,
#                                          # Mixtral-8x7B and Mistral-7B-v0.1 checkpoints (tests/gpu/make_arch_model.py)
#   bash tests/gpu/host.sh arch-wait [LIMIT_S]   # then this, once per call, until it says done
#   bash tests/gpu/host.sh tp24-start      # #24 (2+ GPUs): the Llama-3.3-70B shape in FP8 on 1 GPU (the fit says
#                                          # it needs 2) and on 2, BF16 on 4; Qwen3-30B-A3B (48 layers) TP 2, TP 2 +
#                                          # expert parallel; the benchmark sweep 1-128 on the 70B's TP-2 server
#                                          # beside vllm bench serve; then tests/gpu's tensor-parallel stop and kill
#   bash tests/gpu/host.sh tp24-wait [LIMIT_S]   # then this, once per call, until it says done
#
# Stage with `PART_MIB=40 ../shared/tools/gpu-stage`: the checkout itself is ~18 MB (screenshots) and a transfer
# carries 64 MiB in all, so 60 MiB parts are refused (2026-12-07: six parts of 40 MiB went, 0.4 s each).
#
# The GPU host lacks some of llmdesk's pure-Python dependencies (platformdirs, keyring and theirs, pytest-asyncio):
# `pip install --target .gpu-extra --no-deps platformdirs keyring jaraco.classes jaraco.functools jaraco.context
# more-itertools pytest-asyncio` here, and carry .gpu-extra (2.6 MB) with .gpu-stage/bin and .gpu-stage/sha256.
#
# Background work is started with setsid so that it outlives the command that started it; the host
# keeps it only while it is held (the next command must follow within about 30 s).
set -u
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091
source /srv/site/env.sh
export PYTHONPATH=$PWD:$PWD/.gpu-extra:${PYTHONPATH:-} PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/.gpu-out}
M=/srv/models
WORK=/srv/llmdesk
mkdir -p "$OUT" "$WORK"

pack() {  # what a run left in $WORK/NAME -> $OUT/NAME.tgz; a run that left none is not a failed command
  if [ -e "$WORK/$1" ]; then tar -czf "$OUT/$1.tgz" -C $WORK "$1"; fi
}

kill_vllm() {
  pkill -9 -f "[V]LLM::" ; pkill -9 -f "[v]llm.entrypoints.cli.main" ; pkill -9 -f "[v]llm serve" ; sleep 1
}

stop_background() {  # an earlier *-start's job goes on after its wait gave up: it would start servers beside ours
  # (2026-12-06: the speed run's next server took 10 GiB while gpt-oss started, and vLLM refused for free memory)
  pkill -9 -f "[p]ytest tests/gpu|[f]ormat_speed.py|[s]tartup_options.py|[f]it_runs.py|[q]uant_list|[a]rch_list|[t]p24_list|[b]ench_parity.py|[s]erve_parity.py"
  kill_vllm
}

mistral_shape() {  # Mistral-7B-v0.3's shape: Llama-3.1-8B's layers, a 32,768-token vocabulary and context
  [ -f $M/mistral-7b-shape/config.json ] || python3 .gpu-stage/bin/make_tiny_llama.py --preset llama-3.1-8b \
    --vocab-size 32768 --max-len 32768 --fast --out $M/mistral-7b-shape
}

big_models() {
  bash .gpu-stage/bin/gpu-host.sh models qwen2.5-7b-geom
  mistral_shape
  [ -f $M/qwen3-moe-8l/config.json ] || python3 tests/gpu/make_moe_model.py --layers 8 --tokenizer-from $M/tiny \
    --out $M/qwen3-moe-8l
  touch $WORK/big-models.done
}

fit_list() {  # gpu port runs...
  local gpu=$1 port=$2
  shift 2
  CUDA_VISIBLE_DEVICES=$gpu python3 tests/gpu/fit_runs.py --port "$port" --out $WORK/fit-runs "$@"
  touch $WORK/fit-gpu$gpu.done
}

quant_list() {  # gpu port formats...: each format made from the 8B shape, started, measured, deleted
  local gpu=$1 port=$2
  shift 2
  for fmt in "$@"; do
    case $fmt in
      lora*)  # lora-N-R: the BF16 8B with N adapter slots of rank R
        IFS=- read -r _ n r <<< "$fmt"
        CUDA_VISIBLE_DEVICES=$gpu python3 tests/gpu/fit_runs.py --port "$port" --out $WORK/quant-runs \
          "l8b-$fmt=$M/llama-3.1-8b,--max-model-len,8192,--enable-lora,--max-loras,$n,--max-lora-rank,$r" ;;
      *)
        # QUANT_LAYERS (default 8) of the 32: the per-layer figures are the same, the make and the start shorter
        python3 tests/gpu/make_quant_checkpoint.py --base $M/llama-3.1-8b --format "$fmt" --out $WORK/q-$fmt \
          --layers "${QUANT_LAYERS:-8}" > $WORK/quant-runs/make-$fmt.json 2>&1
        # DeepGEMM's warm-up JIT-compiles every batch size (over 3 min for fp8-block); the memory lines come
        # before it, and skipping it changes no figure the fit is checked on
        VLLM_DEEP_GEMM_WARMUP=skip CUDA_VISIBLE_DEVICES=$gpu python3 tests/gpu/fit_runs.py --port "$port" \
          --out $WORK/quant-runs "l8b${QUANT_LAYERS:-8}l-$fmt=$WORK/q-$fmt,--max-model-len,8192"
        rm -rf $WORK/q-$fmt ;;  # 6-9 GB each: the host's disk holds one at a time beside the base
    esac
  done
  touch $WORK/quant-gpu$gpu.done
}

arch_list() {  # presets...: each made under $WORK/a-PRESET with the tiny model's tokenizer, started on GPU 0, deleted
  for preset in "$@"; do
    python3 tests/gpu/make_arch_model.py --preset "$preset" --tokenizer-from $M/tiny --out $WORK/a-$preset \
      > $WORK/arch-runs/make-$preset.json 2>&1
    CUDA_VISIBLE_DEVICES=0 python3 tests/gpu/fit_runs.py --port 8011 --out $WORK/arch-runs \
      "arch-$preset=$WORK/a-$preset,--max-model-len,8192"
    rm -rf $WORK/a-$preset  # 2-6.3 GB each: one at a time on the host's disk
  done
}

tp24_list() {  # every GPU of the host: fit runs under tensor (and expert) parallelism, then the stop/kill tests
  local n all free_gb layers
  n=$(nvidia-smi -L | wc -l)
  all=$(seq -s, 0 $((n - 1)))
  free_gb=$(df --output=avail -BG "$WORK" | tail -1 | tr -dc 0-9)
  layers=80  # the whole model (141 GB): whether one GPU holds it is the point of the first run
  [ "$free_gb" -lt 200 ] && layers=16  # a smaller disk: the per-layer figures are the same (2 GPUs' host: 128 GB)
  python3 tests/gpu/make_arch_model.py --preset llama-3.3-70b --layers $layers --tokenizer-from $M/tiny \
    --out $WORK/l70 > $WORK/tp24-runs/make-l70.json 2>&1
  export CUDA_DEVICE_ORDER=PCI_BUS_ID
  CUDA_VISIBLE_DEVICES=0 python3 tests/gpu/fit_runs.py --port 8011 --out $WORK/tp24-runs \
    "l70x${layers}-fp8-tp1=$WORK/l70,--quantization,fp8,--max-model-len,8192"
  CUDA_VISIBLE_DEVICES=0,1 python3 tests/gpu/fit_runs.py --port 8011 --out $WORK/tp24-runs \
    "l70x${layers}-fp8-tp2=$WORK/l70,--quantization,fp8,--max-model-len,8192,--tensor-parallel-size,2"
  [ "$n" -ge 4 ] && CUDA_VISIBLE_DEVICES=0,1,2,3 python3 tests/gpu/fit_runs.py --port 8011 --out $WORK/tp24-runs \
    "l70x${layers}-bf16-tp4=$WORK/l70,--max-model-len,8192,--tensor-parallel-size,4"
  # the Benchmark's sweep on the tensor-parallel server against `vllm bench serve`, side by side (goal ±3%)
  CUDA_VISIBLE_DEVICES=0,1 python3 bench/bench_parity.py --model $WORK/l70 --name l70 --out $WORK/tp24-runs/bench-tp2 \
    --tensor-parallel-size 2 --quantization fp8 --concurrency 1 2 4 8 16 32 64 128 --rounds 2 --budget-s 1500 \
    > $WORK/tp24-runs/bench-tp2.txt 2>&1
  rm -rf $WORK/l70
  python3 tests/gpu/make_moe_model.py --layers 48 --tokenizer-from $M/tiny --out $WORK/moe48 \
    > $WORK/tp24-runs/make-moe48.json 2>&1
  CUDA_VISIBLE_DEVICES=0,1 python3 tests/gpu/fit_runs.py --port 8011 --out $WORK/tp24-runs \
    "moe48-tp2=$WORK/moe48,--max-model-len,8192,--tensor-parallel-size,2" \
    "moe48-tp2-ep=$WORK/moe48,--max-model-len,8192,--tensor-parallel-size,2,--enable-expert-parallel"
  rm -rf $WORK/moe48
  CUDA_VISIBLE_DEVICES=$all OUT=$WORK/tp24-tests python3 -m pytest tests/gpu/test_end_to_end.py -v \
    -p no:cacheprovider -k "tensor_parallel" > $WORK/tp24-tests.txt 2>&1
  touch $WORK/tp24.done
}

case "${1:-}" in
  tp24-start)  # #24: needs 2 GPUs or more (4 for the BF16 run)
    stop_background
    rm -rf $WORK/tp24-runs $WORK/tp24-tests $WORK/tp24.done
    mkdir -p $WORK/tp24-runs $WORK/tp24-tests
    export -f tp24_list
    export M WORK
    setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models tiny llama-3.2-1b && tp24_list" \
      > $WORK/tp24.log 2>&1 < /dev/null &
    sleep 5
    ;;
  tp24-wait)  # [LIMIT_S]: tars what is there each time, done or not
    t0=$SECONDS
    while [ ! -f $WORK/tp24.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    [ -f $WORK/tp24.done ] || echo "tp24 not finished after ${2:-560} s"
    tail -8 $WORK/tp24.log
    tail -15 $WORK/tp24-tests.txt 2>/dev/null
    ls -la $WORK/tp24-runs
    tar -czf "$OUT/tp24.tgz" -C $WORK tp24-runs tp24-tests $(cd $WORK && ls tp24-tests.txt 2>/dev/null)
    ;;
  arch-start)  # #21: real vLLM on the five architectures' random-weight checkpoints, one after another on GPU 0
    stop_background
    rm -rf $WORK/arch-runs $WORK/arch.done
    mkdir -p $WORK/arch-runs
    export -f arch_list
    export M WORK
    setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models tiny && \
      arch_list gpt-oss-20b gemma3-1b deepseek-v2-lite mixtral-8x7b mistral-7b-v0.1; touch $WORK/arch.done" \
      > $WORK/arch.log 2>&1 < /dev/null &
    sleep 5
    ;;
  arch-wait)
    t0=$SECONDS
    while [ ! -f $WORK/arch.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    [ -f $WORK/arch.done ] || echo "arch runs not finished after ${2:-560} s"
    tail -20 $WORK/arch.log
    ls -la $WORK/arch-runs
    tar -czf "$OUT/arch-runs.tgz" -C $WORK arch-runs
    ;;
  quant-start)  # #21: every quantized format and two LoRA settings on the 8B shape, one GPU (or two: QUANT_GPUS=2)
    stop_background
    rm -rf $WORK/quant-runs $WORK/quant-gpu*.done
    mkdir -p $WORK/quant-runs
    export -f quant_list
    export M WORK QUANT_LAYERS
    first="awq gptq4 w8a8 fp8 lora-1-16 bnb-nf4"
    second="gptq8 w4a16 fp8-block lora-4-64"
    if [ "${QUANT_GPUS:-1}" = 2 ]; then
      setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models llama-3.1-8b && quant_list 0 8011 $first" \
        > $WORK/quant-gpu0.log 2>&1 < /dev/null &
      setsid bash -c "while [ ! -f $M/llama-3.1-8b/config.json ]; do sleep 2; done; sleep 30; quant_list 1 8012 $second" \
        > $WORK/quant-gpu1.log 2>&1 < /dev/null &
    else
      setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models llama-3.1-8b && quant_list 0 8011 $first $second; \
        touch $WORK/quant-gpu1.done" > $WORK/quant-gpu0.log 2>&1 < /dev/null &
    fi
    sleep 5
    ;;
  speed-start)  # #21: output tokens/s of BF16, FP8, AWQ, GPTQ and W8A8 of the 8B shape, one card, one run
    stop_background
    rm -rf $WORK/format-speed $WORK/speed.done
    CUDA_VISIBLE_DEVICES=0 setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models llama-3.1-8b && \
      python3 bench/format_speed.py --base $M/llama-3.1-8b --work $WORK/speed --out $WORK/format-speed \
      > $WORK/speed.txt 2>&1; touch $WORK/speed.done" < /dev/null > $WORK/speed-models.log 2>&1 &
    sleep 5
    ;;
  rest21-start)  # #21's runs the first session did not reach, one job on GPU 0: the two architectures, FP8 blocks and
    # the second LoRA setting, then all five formats' speed again (ratios are compared within one run only)
    stop_background
    rm -rf $WORK/arch-runs $WORK/quant-runs $WORK/format-speed $WORK/rest21.done
    mkdir -p $WORK/arch-runs $WORK/quant-runs
    export -f arch_list quant_list
    export M WORK QUANT_LAYERS
    shift
    speed="true"  # [FORMAT...]: the formats whose speed is measured afterwards, BF16 first (none: no speed run)
    [ $# -gt 0 ] && speed="python3 bench/format_speed.py --base $M/llama-3.1-8b --work $WORK/speed \
      --out $WORK/format-speed --formats $* > $WORK/speed.txt 2>&1"
    CUDA_VISIBLE_DEVICES=0 setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models tiny llama-3.1-8b && \
      arch_list gpt-oss-20b mistral-7b-v0.1; quant_list 0 8011 fp8-block lora-4-64; \
      $speed; touch $WORK/rest21.done" < /dev/null > $WORK/rest21.log 2>&1 &
    sleep 5
    ;;
  pending-start)  # what #22 still needs, one background job on GPU 0: the tool round trip (tiny model only)
    stop_background
    rm -rf $WORK/gpu-out $WORK/gpu-out-sleep $WORK/startup-options $WORK/pending.done $WORK/startup23.done \
      $WORK/startup23.txt $WORK/pending-sleep.txt
    bash .gpu-stage/bin/gpu-host.sh models tiny
    # after 2026-12-07's second run: the tiny model has <|python_tag|> and the server compact JSON (random
    # weights wrote spaces to max tokens under vLLM's JSON grammar); #23's start-up and pause runs are done
    CUDA_VISIBLE_DEVICES=0 setsid bash -c "OUT=$WORK/gpu-out python3 -m pytest tests/gpu -v -p no:cacheprovider \
      -k 'tools_structured and round_trip' > $WORK/pending-tests.txt 2>&1; touch $WORK/pending.done" \
      < /dev/null > $WORK/pending.log 2>&1 &
    sleep 5
    ;;
  pending-wait)  # [LIMIT_S]: tars what is there each time, done or not
    t0=$SECONDS
    while [ ! -f $WORK/pending.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    [ -f $WORK/pending.done ] || echo "pending not finished after ${2:-560} s"
    grep -E "PASSED|FAILED|ERROR|passed|failed" $WORK/pending-tests.txt 2>/dev/null | tail -8
    grep -v "^INFO\|^(APIServer\|^(EngineCore\|^WARNING" $WORK/startup23.txt 2>/dev/null | tail -25
    grep -E "PASSED|FAILED|ERROR|passed|failed" $WORK/pending-sleep.txt 2>/dev/null | tail -4
    cp $WORK/pending-tests.txt "$OUT/pytest-gpu.txt" 2>/dev/null
    cp $WORK/pending-sleep.txt "$OUT/pytest-gpu-sleep.txt" 2>/dev/null
    pack gpu-out
    pack gpu-out-sleep
    pack startup-options
    ;;
  startup23-start)  # #23: start-up phases per option, each with its throughput at c=1 and 64 (bench/startup_options.py)
    stop_background
    shift
    rm -rf $WORK/startup-options $WORK/startup23.done
    CUDA_VISIBLE_DEVICES=0 setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models llama-3.1-8b && \
      python3 bench/startup_options.py --model $M/llama-3.1-8b --work $WORK/startup --out $WORK/startup-options $* \
      > $WORK/startup23.txt 2>&1; touch $WORK/startup23.done" < /dev/null > $WORK/startup23-models.log 2>&1 &
    sleep 5
    ;;
  startup23-wait)  # [LIMIT_S]: tars what is there each time, done or not
    t0=$SECONDS
    while [ ! -f $WORK/startup23.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    [ -f $WORK/startup23.done ] || echo "startup23 not finished after ${2:-560} s"
    grep -v "^INFO\|^(APIServer\|^(EngineCore\|^WARNING" $WORK/startup23.txt 2>/dev/null | tail -25
    pack startup-options
    ;;
  rest21-wait)  # [LIMIT_S]: tars what is there each time, done or not
    t0=$SECONDS
    while [ ! -f $WORK/rest21.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    [ -f $WORK/rest21.done ] || echo "rest21 not finished after ${2:-560} s"
    tail -8 $WORK/rest21.log
    grep -v "^INFO\|^(APIServer\|^(EngineCore\|^WARNING" $WORK/speed.txt 2>/dev/null | tail -8
    tar -czf "$OUT/rest21.tgz" -C $WORK $(cd $WORK && ls -d arch-runs quant-runs format-speed 2>/dev/null)
    ;;
  speed-wait)
    t0=$SECONDS
    while [ ! -f $WORK/speed.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    grep -v "^INFO\|^(APIServer\|^(EngineCore\|^WARNING" $WORK/speed.txt | tail -20
    pack format-speed
    ;;
  quant-wait)
    t0=$SECONDS
    while [ ! -f $WORK/quant-gpu0.done ] || [ ! -f $WORK/quant-gpu1.done ]; do
      [ $((SECONDS - t0)) -gt "${2:-560}" ] && { echo "quantized runs not finished after ${2:-560} s"; break; }
      sleep 2
    done
    tail -5 $WORK/quant-gpu*.log
    ls $WORK/quant-runs
    tar -czf "$OUT/quant-runs.tgz" -C $WORK quant-runs
    ;;
  models-small)  # what tests/gpu and the parity bench need, in the foreground
    bash .gpu-stage/bin/gpu-host.sh models tiny llama-3.2-1b
    mistral_shape
    ;;
  models)
    bash .gpu-stage/bin/gpu-host.sh models tiny llama-3.2-1b
    export -f big_models mistral_shape
    export M WORK
    setsid bash -c big_models >$WORK/big-models.log 2>&1 < /dev/null &
    ;;
  tests)
    shift
    kill_vllm
    rm -rf $WORK/gpu-out
    OUT=$WORK/gpu-out python3 -m pytest tests/gpu -v -p no:cacheprovider "$@" 2>&1 | tee "$OUT/pytest-gpu.txt"
    tar -czf "$OUT/gpu-out.tgz" -C $WORK gpu-out  # the report and every log, in one file
    ;;
  fits-start)
    stop_background
    while [ ! -f $WORK/big-models.done ]; do sleep 2; done
    cat $WORK/big-models.log
    export -f fit_list
    export M WORK
    setsid bash -c "fit_list 0 8011 qwen7b-fp8=$M/qwen2.5-7b-geom,--quantization,fp8 mistral7b=$M/mistral-7b-shape \
      llama1b=$M/llama-3.2-1b" >$WORK/fit-gpu0.log 2>&1 < /dev/null &
    setsid bash -c "fit_list 1 8012 moe8l-fp8=$M/qwen3-moe-8l,--quantization,fp8 \
      mistral7b-fp8=$M/mistral-7b-shape,--quantization,fp8 llama1b-fp8=$M/llama-3.2-1b,--quantization,fp8" \
      >$WORK/fit-gpu1.log 2>&1 < /dev/null &
    sleep 5
    ;;
  fits-wait)
    limit=${2:-560}
    t0=$SECONDS
    while [ ! -f $WORK/fit-gpu0.done ] || [ ! -f $WORK/fit-gpu1.done ]; do
      [ $((SECONDS - t0)) -gt "$limit" ] && { echo "fit runs not finished after $limit s"; break; }
      sleep 2
    done
    cat $WORK/fit-gpu0.log $WORK/fit-gpu1.log
    tar -czf "$OUT/fit-runs.tgz" -C $WORK fit-runs
    ;;
  parity)
    kill_vllm
    CUDA_VISIBLE_DEVICES=0 python3 bench/serve_parity.py --model $M/llama-3.2-1b --name l1b --out $WORK/parity \
      --watched --restart-raw --budget-s "${2:-540}" 2>&1 | tee "$OUT/parity.txt"
    tar -czf "$OUT/parity.tgz" -C $WORK parity
    ;;
  parity-start)  # the same in the background, for runs longer than one command: [PRESET] then bench options
    stop_background
    shift
    preset=llama-3.2-1b
    case "${1:-}" in -*|"") ;; *) preset=$1; shift ;; esac
    rm -rf $WORK/parity $WORK/parity.done
    # the model is made in the same background job: an 8B shape takes longer than a call can wait
    CUDA_VISIBLE_DEVICES=0 setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models $preset && \
      python3 bench/serve_parity.py --model $M/$preset --name parity --out $WORK/parity $* \
      > $WORK/parity.txt 2>&1; touch $WORK/parity.done" < /dev/null > $WORK/parity-models.log 2>&1 &
    sleep 5
    ;;
  startup)  # launch-to-ready of raw and llmdesk, each alone on GPU 0, by turns: [PRESET] [ROUNDS] [LIMIT_S]
    kill_vllm
    bash .gpu-stage/bin/gpu-host.sh models "${2:-tiny}"
    rm -rf $WORK/startup
    CUDA_VISIBLE_DEVICES=0 timeout "${4:-1800}" python3 bench/serve_parity.py --model $M/"${2:-tiny}" --name parity --out $WORK/startup \
      --startup-rounds "${3:-2}" 2>&1 | grep -v "^INFO\|^(APIServer\|^(EngineCore" | tee "$OUT/startup.txt"
    tar -czf "$OUT/startup.tgz" -C $WORK startup
    ;;
  bench-start)  # #19: llmdesk's benchmark beside `vllm bench serve` on one server, and the energy check
    stop_background
    shift
    preset=${1:-llama-3.1-8b}
    shift || true
    rm -rf $WORK/bench-parity $WORK/bench.done
    CUDA_VISIBLE_DEVICES=0 setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models $preset && \
      python3 bench/bench_parity.py --model $M/$preset --out $WORK/bench-parity $* \
      > $WORK/bench.txt 2>&1; touch $WORK/bench.done" < /dev/null > $WORK/bench-models.log 2>&1 &
    sleep 5
    ;;
  printcmd-start)  # #20: `llmdesk serve --print-command`'s line started raw, against `llmdesk serve`
    stop_background
    preset=${2:-llama-3.1-8b}
    rm -rf $WORK/printcmd $WORK/printcmd.done
    CUDA_VISIBLE_DEVICES=0 setsid bash -c "bash .gpu-stage/bin/gpu-host.sh models $preset && \
      python3 tests/gpu/print_command_check.py --model $M/$preset --out $WORK/printcmd \
      > $WORK/printcmd.txt 2>&1; touch $WORK/printcmd.done" < /dev/null > $WORK/printcmd-models.log 2>&1 &
    sleep 5
    ;;
  printcmd-wait)
    t0=$SECONDS
    while [ ! -f $WORK/printcmd.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    tail -3 $WORK/printcmd-models.log
    grep -v "^INFO\|^(APIServer\|^(EngineCore\|^WARNING" $WORK/printcmd.txt | tail -30
    pack printcmd
    ;;
  bench-wait)
    t0=$SECONDS
    while [ ! -f $WORK/bench.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    tail -3 $WORK/bench-models.log
    grep -v "^INFO\|^(APIServer\|^(EngineCore\|^WARNING" $WORK/bench.txt | tail -40
    pack bench-parity
    ;;
  parity-wait)
    t0=$SECONDS
    while [ ! -f $WORK/parity.done ] && [ $((SECONDS - t0)) -lt "${2:-560}" ]; do sleep 2; done
    tail -3 $WORK/parity-models.log
    grep -v "^INFO\|^(APIServer" $WORK/parity.txt | tail -40
    if [ -f $WORK/parity.done ]; then pack parity; fi
    ;;
  *)
    sed -n '2,30p' "$0"
    exit 2
    ;;
esac
