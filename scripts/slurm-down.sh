#!/usr/bin/env bash
# Stops the one-node Slurm cluster that scripts/slurm-up.sh started: cancels its jobs
# (waiting up to 15 s for them to end), then stops slurmd, slurmctld and the munged it
# started, each by the pid it wrote, and waits for them to exit. Safe to run when
# nothing runs. A munged that slurm-up found already running is left alone.
#
#   scripts/slurm-down.sh               as above
#   scripts/slurm-down.sh --keep-jobs   leaves the jobs alone (their processes go on
#                                       under slurmstepd; slurm-up --keep-state finds them)
#
# Environment: NAS_SLURM_DIR, as for slurm-up.
set -euo pipefail

keep_jobs=0
for arg in "$@"; do
  case "$arg" in
    --keep-jobs) keep_jobs=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "slurm-down: unknown argument $arg" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  exec sudo --preserve-env=NAS_SLURM_DIR "$0" "$@"
fi

dir="${NAS_SLURM_DIR:-/var/lib/nas-slurm}"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
[ -d "$dir/run" ] || { echo "slurm-down: nothing to stop"; exit 0; }
exec 9>"$dir/.lock"
flock -w 120 9 || { echo "slurm-down: another slurm-up or slurm-down holds $dir/.lock" >&2; exit 1; }

pid_of() {
  local f="$dir/run/$1.pid" p comm
  [ -s "$f" ] || { rm -f "$f"; return 0; }
  p=$(tr -dc 0-9 <"$f")
  comm=$(cat "/proc/$p/comm" 2>/dev/null || true)
  if [ -n "$p" ] && [ "${comm#"$1"}" != "$comm" ]; then echo "$p"; else rm -f "$f"; fi
}

stopped=()
stop() {
  local p
  p=$(pid_of "$1")
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 150); do [ -d "/proc/$p" ] || break; sleep 0.1; done
  if [ -d "/proc/$p" ]; then
    echo "slurm-down: $1 ($p) still running after 15 s: SIGKILL" >&2
    kill -KILL "$p" 2>/dev/null || true
    for _ in $(seq 50); do [ -d "/proc/$p" ] || break; sleep 0.1; done
  fi
  rm -f "$dir/run/$1.pid"
  stopped+=("$1")
}

if [ "$keep_jobs" = 0 ] && [ -n "$(pid_of slurmctld)" ] && [ -n "$(pid_of slurmd)" ]; then
  # Every job of the cluster's partition, whoever submitted it.
  if scancel --partition=nas 2>/dev/null; then
    for _ in $(seq 75); do
      [ -z "$(squeue -h -p nas --states=RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi
stop slurmd
stop slurmctld
stop munged
if [ "${#stopped[@]}" = 0 ]; then
  echo "slurm-down: nothing was running"
else
  echo "slurm-down: stopped ${stopped[*]}"
fi
