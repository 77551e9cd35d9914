#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine (Debian 12 or alike): this host is the
# controller and the only compute node, in partition `nas`, every CPU schedulable, no
# accounting database. For trying `nas search` on Slurm and for the Slurm tests in CI.
# scripts/slurm-down.sh stops it.
#
#   scripts/slurm-up.sh                 installs slurmctld, slurmd, slurm-client and
#                                       munge if missing, writes /etc/slurm/slurm.conf,
#                                       starts whichever of munged, slurmctld and slurmd
#                                       is not running, and waits until the node is
#                                       idle. A slurmctld it starts begins with no jobs
#                                       (job ids go on from the last one saved).
#   scripts/slurm-up.sh --keep-state    the same, but a slurmctld it starts recovers
#                                       the jobs it had saved, as a real controller
#                                       does after a crash.
#
# Running it again while the cluster is up changes nothing (a changed slurm.conf
# restarts the daemons; a node left down or drained is resumed). Stale pid files and
# sockets left by a killed cluster are dealt with. Needs root (it runs itself under
# sudo otherwise). Prints how long it took.
#
# Environment: NAS_SLURM_DIR (default /var/lib/nas-slurm) holds the state, spool, logs
# and pid files; NAS_SLURM_TIMEOUT (default 60) is how many seconds to wait for the
# node; NAS_SLURM_MIN_JOB_AGE (default 300) is how long finished jobs stay in squeue.
set -euo pipefail

keep_state=0
for arg in "$@"; do
  case "$arg" in
    --keep-state) keep_state=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "slurm-up: unknown argument $arg" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  exec sudo --preserve-env=NAS_SLURM_DIR,NAS_SLURM_TIMEOUT,NAS_SLURM_MIN_JOB_AGE "$0" "$@"
fi

start=$(date +%s.%N)
dir="${NAS_SLURM_DIR:-/var/lib/nas-slurm}"
timeout="${NAS_SLURM_TIMEOUT:-60}"
min_job_age="${NAS_SLURM_MIN_JOB_AGE:-300}"
conf=/etc/slurm/slurm.conf
marker="# Written by nas scripts/slurm-up.sh"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

say() { echo "slurm-up: $*"; }
die() { echo "slurm-up: $*" >&2; exit 1; }

# --- packages --------------------------------------------------------------------------
if ! [ -x /usr/sbin/slurmctld ] || ! [ -x /usr/sbin/slurmd ] || ! [ -x /usr/bin/sbatch ] \
  || ! [ -x /usr/sbin/munged ]; then
  say "installing slurmctld slurmd slurm-client munge"
  pkgs=(slurmctld slurmd slurm-client munge)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; }
fi

mkdir -p "$dir"/{state,spool,log,run}
chmod 0755 "$dir" "$dir"/{state,spool,log,run}
# One slurm-up or slurm-down at a time (the daemons are started with fd 9 closed, so
# that they do not hold the lock).
exec 9>"$dir/.lock"
flock -w 120 9 || die "another slurm-up or slurm-down holds $dir/.lock"

# pid NAME: the pid in NAME's pid file if that process is alive and is NAME, else
# nothing (and a stale pid file is removed).
pid_of() {
  local f="$dir/run/$1.pid" p comm
  [ -s "$f" ] || { rm -f "$f"; return 0; }
  p=$(tr -dc 0-9 <"$f")
  comm=$(cat "/proc/$p/comm" 2>/dev/null || true)
  if [ -n "$p" ] && [ "${comm#"$1"}" != "$comm" ]; then echo "$p"; else rm -f "$f"; fi
}

# stop NAME: SIGTERM to the pid it wrote, wait up to 15 s, then SIGKILL.
stop() {
  local p
  p=$(pid_of "$1")
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 150); do [ -d "/proc/$p" ] || break; sleep 0.1; done
  if [ -d "/proc/$p" ]; then kill -KILL "$p" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$dir/run/$1.pid"
}

show_logs() {
  local f
  for f in "$dir"/log/munged.log "$dir"/log/slurmctld.log "$dir"/log/slurmd.log; do
    [ -f "$f" ] || continue
    echo "--- last lines of $f" >&2
    tail -n 25 "$f" >&2
  done
}

if [ -e "$conf" ] && ! grep -qxF "$marker" "$conf"; then
  die "$conf exists and was not written by this script; move it away to use the local cluster"
fi

# --- munge -----------------------------------------------------------------------------
if ! [ -s /etc/munge/munge.key ]; then
  say "creating the munge key"
  install -d -o munge -g munge -m 0700 /etc/munge
  runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
fi
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  stop munged
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0755 "$dir/run/munge"
  touch "$dir/log/munged.log" && chown munge:munge "$dir/log/munged.log"
  # --force: a socket left by a killed munged does not stop it.
  runuser -u munge -- munged --force --pid-file="$dir/run/munge/munged.pid" \
    --log-file="$dir/log/munged.log" 9>&- || { show_logs; die "munged did not start"; }
  ln -sf munge/munged.pid "$dir/run/munged.pid"
  for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
  munge_ok || { show_logs; die "munged does not answer"; }
fi

# --- slurm.conf ------------------------------------------------------------------------
node=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
real_mem=$((mem_mb * 9 / 10))
new_conf=$(
  cat <<EOF
$marker
# (rewritten on each run).
ClusterName=nas
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits about cred_expire + 10 s before it can run again (default 120).
AuthInfo=cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Schedule a batch job at once when it is submitted (default: within 3 s), and look
# for jobs that became eligible (a requeued one) every 5 s (default 30 s).
SchedulerParameters=batch_sched_delay=0,bf_interval=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay listed by squeue --states=all this long (seconds).
MinJobAge=$min_job_age
# A node whose slurmd does not answer for this long is marked DOWN and its jobs requeued.
SlurmdTimeout=30
SlurmctldTimeout=30
InactiveLimit=0
KillWait=5
MessageTimeout=10
ReturnToService=1
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=nas Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)
restart=0
if ! [ -f "$conf" ] || [ "$(cat "$conf")" != "$new_conf" ]; then
  mkdir -p /etc/slurm
  printf '%s\n' "$new_conf" >"$conf.tmp" && mv "$conf.tmp" "$conf"
  restart=1
fi

# --- slurmctld and slurmd --------------------------------------------------------------
ctld=$(pid_of slurmctld)
slurmd=$(pid_of slurmd)
if [ "$restart" = 1 ] && { [ -n "$ctld" ] || [ -n "$slurmd" ]; }; then
  say "slurm.conf changed: restarting the daemons"
  stop slurmd
  stop slurmctld
  ctld=""
  slurmd=""
fi
if [ -z "$ctld" ]; then
  if [ "$keep_state" = 1 ]; then
    flags=(-i) # recover the saved jobs, ignoring state files it cannot read
  else
    flags=(-c) # start with no jobs and the nodes as configured
  fi
  slurmctld -f "$conf" "${flags[@]}" 9>&- || { show_logs; die "slurmctld did not start"; }
fi
if [ -z "$slurmd" ]; then
  slurmd -f "$conf" 9>&- || { show_logs; die "slurmd did not start"; }
fi

# --- wait for the node -----------------------------------------------------------------
resumed=0
state=""
deadline=$(($(date +%s) + timeout))
while :; do
  state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null | head -n 1 || true)
  case "$state" in
    idle | mixed | allocated | completing) break ;;
    down | drained | draining | drain | fail | failing)
      # Set down or drained before (by hand or by a test): bring it back once.
      if [ "$resumed" = 0 ]; then
        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
        resumed=1
      fi
      ;;
  esac
  now=$(date +%s)
  if [ "$now" -ge $((deadline - timeout + 3)) ] \
    && { [ -z "$(pid_of slurmctld)" ] || [ -z "$(pid_of slurmd)" ]; }; then
    show_logs
    die "$( [ -z "$(pid_of slurmctld)" ] && echo slurmctld || echo slurmd) exited"
  fi
  if [ "$now" -ge "$deadline" ]; then
    show_logs
    die "node $node not idle after ${timeout} s (state: ${state:-no answer from slurmctld})"
  fi
  sleep 0.2
done
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
say "node $node $state ($cpus CPUs, partition nas); ready in $took s"
