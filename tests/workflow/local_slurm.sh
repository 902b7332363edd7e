#!/usr/bin/env bash
# A one-node SLURM cluster on this host, for tests and for trying workflow/profiles/slurm.
#
#   tests/workflow/local_slurm.sh start STATE_DIR   # install (if missing), configure, start, wait until idle
#   tests/workflow/local_slurm.sh stop STATE_DIR    # stop the daemons this script started (pid files)
#   tests/workflow/local_slurm.sh env STATE_DIR     # the environment clients need (SLURM_CONF=...)
#
# Everything lives under STATE_DIR: a munge key and socket, slurm.conf (this host's name,
# CPUs and memory from `slurmd -C`), spool/state folders, logs and the daemons' pid files.
# Clients find the cluster through SLURM_CONF, and through /etc/slurm/slurm.conf, a link to
# STATE_DIR/slurm.conf made by `start` and removed by `stop`: the SLURM executor's job step
# drops SLURM_* variables (SLURM_CONF too) before its `srun`, which then reads the default
# path. A host with a slurm.conf of its own there is left alone (exit status 3). Needs root
# (slurmd starts jobs as their users) and Debian's slurm-wlm and munge packages, which
# `start` installs with apt-get when they are missing. Exit status 3: cannot run here
# (not root, or the packages cannot be installed), with the reason on stderr.
#
# Ports: LOCAL_SLURM_PORT (default 6817) for slurmctld, the next one for slurmd.
set -euo pipefail

usage() { echo "usage: $0 start|stop|env STATE_DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
state=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$state/slurm.conf
ctld_port=${LOCAL_SLURM_PORT:-6817}
slurmd_port=$((ctld_port + 1))

cannot() { echo "local_slurm: cannot start a SLURM cluster here: $*" >&2; exit 3; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        || missing+=(slurm-wlm)
    command -v munged >/dev/null || missing+=(munge)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || cannot "${missing[*]} not installed and no apt-get to install them"
    echo "local_slurm: installing ${missing[*]} with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$state/apt.log" 2>&1 || {
        apt-get update -qq >>"$state/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$state/apt.log" 2>&1
    } || cannot "apt-get install ${missing[*]} failed (see $state/apt.log)"
}

write_config() {
    mkdir -p "$state/munge" "$state/spool" "$state/ctld" "$state/log"
    chmod 700 "$state/munge"
    if [[ ! -s $state/munge/munge.key ]]; then
        dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$state/munge/munge.key"
    fi
    local host node
    host=$(hostname -s)
    # NodeName=<host> CPUs=... Boards=... SocketsPerBoard=... CoresPerSocket=... ThreadsPerCore=... RealMemory=...
    node=$(slurmd -C | head -n 1)
    [[ $node == NodeName=$host* ]] || cannot "unexpected \`slurmd -C\` output: $node"
    cat >"$conf" <<EOF
# written by tests/workflow/local_slurm.sh: a one-node cluster on $host
ClusterName=hcmlocal
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
SchedulerType=sched/backfill
$node State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

SYSTEM_CONF=/etc/slurm/slurm.conf

link_system_conf() {
    if [[ -e $SYSTEM_CONF || -L $SYSTEM_CONF ]]; then
        local target
        target=$(readlink "$SYSTEM_CONF" || true)
        # a link left by an earlier run of this script (its config file says so) may be replaced
        if [[ -z $target ]] || ! head -n 1 "$target" 2>/dev/null | grep -q "written by tests/workflow/local_slurm.sh"; then
            [[ $target == "$conf" ]] || cannot "$SYSTEM_CONF exists (this host has a SLURM configuration of its own); not touching it"
        fi
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$conf" "$SYSTEM_CONF"
}

unlink_system_conf() {
    if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$conf" ]]; then
        rm -f "$SYSTEM_CONF"
    fi
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    [[ $(id -u) -eq 0 ]] || cannot "needs root (slurmd runs jobs as their users); running as $(id -un)"
    install_packages
    write_config
    link_system_conf
    export SLURM_CONF=$conf
    pid_alive "$state/munged.pid" || munged --force --key-file="$state/munge/munge.key" \
        --socket="$state/munge/munge.socket" --pid-file="$state/munged.pid" \
        --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed"
    pid_alive "$state/slurmctld.pid" || slurmctld -f "$conf"
    pid_alive "$state/slurmd.pid" || slurmd -f "$conf"
    local host state_now i
    host=$(hostname -s)
    for i in $(seq 1 60); do
        state_now=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
        if [[ $state_now == idle ]]; then
            echo "local_slurm: node $host idle after ${i}x0.5 s (SLURM_CONF=$conf)" >&2
            return 0
        fi
        sleep 0.5
    done
    echo "local_slurm: node $host not idle after 30 s (state: ${state_now:-none}); logs in $state/log" >&2
    tail -n 20 "$state"/log/*.log >&2 || true
    stop
    exit 1
}

stop() {
    local name pidfile pid i
    # slurmd first (it may run job steps), the controller, then munge
    for name in slurmd slurmctld munged; do
        pidfile=$state/$name.pid
        [[ -s $pidfile ]] || continue
        pid=$(cat "$pidfile")
        # only a process of this name: a stale pid file must not kill an unrelated process
        if kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
            kill "$pid"
            for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$pidfile"
    done
    unlink_system_conf
}

case $action in
    start) start ;;
    stop) stop ;;
    env) echo "SLURM_CONF=$conf" ;;
    *) usage ;;
esac
