#!/usr/bin/env bash
# Multi-process tests of host/comm*.c: test_comm.sh SUITE PATH/TO/test_comm
#   mpi         the collectives under mpirun -np 2 and -np 4 (CPU backend, MPI)
#   mpi_faults  a rank that dies, a rank that stalls: the whole job ends, in bounded time
#   tcp         three torchrun-style ranks on 127.0.0.1: rendezvous, all-gather, config check
#   tcp_faults  rendezvous timeouts (both sides), a world-size mismatch, a rank that dies
# Exits 77 (skipped) when the suite needs mpirun, or an MPI-enabled saec, and has neither.
set -u
SUITE=${1:?suite}
BIN=$(realpath "${2:?path to test_comm}")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/saec-comm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
FAILED=0
fail() { echo "FAIL: $*" >&2; FAILED=1; }
pass() { echo "ok: $*"; }
finish() { if [ "$FAILED" -ne 0 ]; then echo "some checks failed" >&2; exit 1; fi; echo "all checks passed"; exit 0; }

# Launcher variables of the environment ctest runs in must not leak into the ranks.
unset RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT SAEC_COMM_TIMEOUT \
      SAEC_MASTER_PORT TORCHELASTIC_USE_AGENT_STORE SLURM_PROCID SLURM_NTASKS SLURM_NPROCS \
      SLURM_LOCALID PMI_RANK PMI_SIZE
for v in $(env | grep -o '^OMPI_COMM_WORLD_[A-Z_]*'); do unset "$v"; done

now_ms() { date +%s%3N; }
free_port() { "${PYTHON:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
show() { echo "---- $1"; sed 's/^/    /' "$1"; }

# expect_in FILE TEXT NAME
expect_in() { grep -qF -- "$2" "$1" && pass "$3" || { fail "$3: '$2' not in $1"; show "$1" >&2; }; }

# ---- mpirun --------------------------------------------------------------------------------------
MPIRUN=()
need_mpi() {
  if ! command -v mpirun >/dev/null 2>&1; then echo "mpirun not found: skipped"; exit 77; fi
  if ! "$BIN" has-mpi; then echo "saec was built without MPI: skipped"; exit 77; fi
  MPIRUN=(mpirun --oversubscribe)
  [ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)
}

# run_bounded LIMIT_S LOG CMD... : runs CMD under `timeout`, sets RC and ELAPSED_MS
run_bounded() {
  local limit=$1 log=$2; shift 2
  local t0; t0=$(now_ms)
  timeout --kill-after=5 "$limit" "$@" >"$log" 2>&1
  RC=$?
  ELAPSED_MS=$(( $(now_ms) - t0 ))
}

suite_mpi() {
  need_mpi
  for np in 2 4; do
    run_bounded 60 mpi_$np.log env SAEC_COMM_TIMEOUT=30 "${MPIRUN[@]}" -np $np "$BIN" mpi
    if [ $RC -eq 0 ]; then pass "mpirun -np $np: collectives ($((ELAPSED_MS / 1000)) s)"
    else fail "mpirun -np $np exited $RC"; show mpi_$np.log >&2; fi
    n_ok=$(grep -c "checks passed" mpi_$np.log)
    [ "$n_ok" -eq $np ] && pass "mpirun -np $np: every rank passed" || fail "mpirun -np $np: $n_ok of $np ranks passed"
  done
}

suite_mpi_faults() {
  need_mpi
  # The last rank exits(1) before an all-reduce. OpenMPI's mpirun ends the job as soon as a rank
  # exits with an error, before saec's timeout could: this checks the launch as a whole (what a
  # user sees), not saec's own bound, which the stall case below checks.
  run_bounded 60 dead.log env SAEC_COMM_TIMEOUT=10 "${MPIRUN[@]}" -np 3 "$BIN" mpi-dead
  if [ $RC -ne 0 ] && [ $RC -ne 124 ] && [ $RC -ne 137 ] && [ $ELAPSED_MS -lt 30000 ]; then
    pass "a dead rank ends the job (mpirun's doing): exit $RC after $((ELAPSED_MS / 1000)) s"
  else fail "dead rank: exit $RC after $ELAPSED_MS ms (want non-zero within 30 s)"; show dead.log >&2; fi

  # The last rank sleeps instead of joining: the others time out and abort the job.
  run_bounded 60 stall.log env SAEC_COMM_TIMEOUT=3 "${MPIRUN[@]}" -np 2 "$BIN" mpi-stall
  if [ $RC -ne 0 ] && [ $RC -ne 124 ] && [ $RC -ne 137 ] && [ $ELAPSED_MS -lt 30000 ]; then
    pass "a stalled rank ends the job: exit $RC after $((ELAPSED_MS / 1000)) s"
  else fail "stalled rank: exit $RC after $ELAPSED_MS ms (want non-zero within 30 s)"; show stall.log >&2; fi
  expect_in stall.log "all-reduce (1000 x f32, sum) over MPI did not complete within 3.0 s" \
    "the stall message names the collective and the timeout"
}

# ---- torchrun-style groups -------------------------------------------------------------------------

# start_rank LOG RANK WORLD_SIZE PORT TIMEOUT MODE: starts one rank in the background (PID in $!)
start_rank() {
  local log=$1 rank=$2 size=$3 port=$4 to=$5 mode=$6
  env RANK=$rank WORLD_SIZE=$size MASTER_ADDR=127.0.0.1 MASTER_PORT=$port SAEC_COMM_TIMEOUT=$to \
    timeout --kill-after=5 60 "$BIN" "$mode" >"$log" 2>&1 &
}

suite_tcp() {
  local port; port=$(free_port)
  local pids=()
  # the peers start first, so that they retry until rank 0 listens
  for r in 2 1; do start_rank tcp_$r.log $r 3 "$port" 20 tcp; pids[$r]=$!; done
  sleep 0.5
  start_rank tcp_0.log 0 3 "$port" 20 tcp; pids[0]=$!
  for r in 0 1 2; do
    wait "${pids[$r]}"; rc=$?
    [ $rc -eq 0 ] && pass "tcp rank $r: rendezvous, all-gather, broadcast, config check" \
      || { fail "tcp rank $r exited $rc"; show tcp_$r.log >&2; }
  done
}

suite_tcp_faults() {
  local port t0 el pids=()
  # A rank whose rank 0 never comes: bounded, names the address and port.
  port=$(free_port)
  run_bounded 30 peer_timeout.log env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    SAEC_COMM_TIMEOUT=2 "$BIN" tcp-open
  [ $RC -eq 3 ] && [ $ELAPSED_MS -lt 10000 ] && pass "peer rendezvous timeout: exit 3 after $ELAPSED_MS ms" \
    || { fail "peer rendezvous timeout: exit $RC after $ELAPSED_MS ms (want 3 within 10 s)"; show peer_timeout.log >&2; }
  expect_in peer_timeout.log "could not reach rank 0 at 127.0.0.1:$port within" "the peer names the address and port"

  # Rank 0 and rank 1 of three: rank 2 never comes. Both fail; both name rank 2.
  port=$(free_port)
  t0=$(now_ms)
  start_rank root_timeout_0.log 0 3 "$port" 2 tcp-open; pids[0]=$!
  start_rank root_timeout_1.log 1 3 "$port" 2 tcp-open; pids[1]=$!
  for r in 0 1; do
    wait "${pids[$r]}"; rc=$?
    [ $rc -eq 3 ] && pass "rendezvous with a missing rank: rank $r exits 3" \
      || { fail "rendezvous with a missing rank: rank $r exited $rc"; show root_timeout_$r.log >&2; }
    expect_in root_timeout_$r.log "rank 2 never arrived" "rank $r names the missing rank"
  done
  el=$(( $(now_ms) - t0 ))
  [ $el -lt 10000 ] && pass "missing rank detected in $el ms" || fail "missing rank: took $el ms"
  expect_in root_timeout_0.log "127.0.0.1:$port" "rank 0 names the address and port"

  # Ranks started with different world sizes.
  port=$(free_port)
  start_rank size_0.log 0 2 "$port" 10 tcp-open; pids[0]=$!
  env RANK=1 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port SAEC_COMM_TIMEOUT=10 \
    timeout 60 "$BIN" tcp-open >size_1.log 2>&1 & pids[1]=$!
  for r in 0 1; do
    wait "${pids[$r]}"; rc=$?
    [ $rc -eq 3 ] && pass "world-size mismatch: rank $r exits 3" \
      || { fail "world-size mismatch: rank $r exited $rc"; show size_$r.log >&2; }
    expect_in size_$r.log "rank 1 was started with WORLD_SIZE=3 but rank 0 with WORLD_SIZE=2" \
      "world-size mismatch named on rank $r"
  done

  # A rank that dies after the rendezvous: the others fail at once (closed connections), long
  # before the 30 s timeout.
  port=$(free_port)
  t0=$(now_ms)
  for r in 0 1 2; do start_rank dead_$r.log $r 3 "$port" 30 tcp-dead; pids[$r]=$!; done
  for r in 0 1 2; do
    wait "${pids[$r]}"; rc=$?
    want=$([ $r -eq 2 ] && echo 1 || echo 3)
    [ $rc -eq "$want" ] && pass "dead rank: rank $r exits $rc" \
      || { fail "dead rank: rank $r exited $rc, expected $want"; show dead_$r.log >&2; }
  done
  el=$(( $(now_ms) - t0 ))
  [ $el -lt 10000 ] && pass "dead rank noticed in $el ms" || fail "dead rank: took $el ms"
  expect_in dead_0.log "lost its connection to rank 2" "rank 0 names the dead rank"
  expect_in dead_1.log "lost its connection to rank 0" "rank 1 names its lost link"
}

case "$SUITE" in
  mpi) suite_mpi ;;
  mpi_faults) suite_mpi_faults ;;
  tcp) suite_tcp ;;
  tcp_faults) suite_tcp_faults ;;
  *) echo "unknown suite $SUITE" >&2; exit 2 ;;
esac
finish
