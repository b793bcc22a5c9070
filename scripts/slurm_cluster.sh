#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for lbbench's Slurm tests (tests/slurm).
#
#   scripts/slurm_cluster.sh          install (if needed) and start munge, slurmctld and slurmd;
#                                     returns when `sinfo` shows the node idle
#   scripts/slurm_cluster.sh stop     take the cluster down (the packages stay installed)
#   scripts/slurm_cluster.sh status   sinfo, or "not running"
#
# Runs as root on Debian/Ubuntu (Debian's munge, slurmctld, slurmd and slurm-client packages; the
# apt step is skipped when they are installed). Made for containers: no systemd, no cgroups
# (proctrack/linuxproc, task/none), daemons started directly. LBBENCH_SLURM_CPUS (default 2) sets
# the node's CPUs. It writes /etc/slurm/slurm.conf and refuses to replace one it did not write.
set -euo pipefail

CPUS="${LBBENCH_SLURM_CPUS:-2}"
NODE="$(hostname -s)"
CONF=/etc/slurm/slurm.conf
MARK="# written by lbbench scripts/slurm_cluster.sh"
SPOOL=/var/spool/lbbench-slurm
RUN=/run/lbbench-slurm
LOGS=/var/log/lbbench-slurm
PACKAGES=(munge slurmctld slurmd slurm-client)

say() { echo "slurm_cluster: $*"; }
die() {
    echo "slurm_cluster: error: $*" >&2
    exit 1
}

missing_packages() {
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install_packages() {
    local missing
    missing="$(missing_packages)"
    [ -z "$missing" ] && return
    command -v apt-get >/dev/null || die "needs apt-get (Debian/Ubuntu) to install: $missing"
    say "installing $(echo "$missing" | tr '\n' ' ')(apt-get)"
    apt-get update -qq
    # shellcheck disable=SC2086 # one package per word
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    runuser -u munge -- /usr/sbin/munged
    munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
}

slurm_conf() {
    cat <<EOF
$MARK for a one-node test cluster
ClusterName=lbbench
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits cred_expire seconds before it may start again (Slurm's default: 120)
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=3600
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

write_conf() {
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching a real cluster's configuration"
    fi
    mkdir -p /etc/slurm "$SPOOL/ctld" "$SPOOL/d" "$RUN" "$LOGS"
    local new
    new="$(slurm_conf)"
    if [ -e "$CONF" ] && [ "$new" == "$(cat "$CONF")" ]; then return; fi
    if running slurmctld || running slurmd; then stop_slurm; fi
    printf '%s\n' "$new" >"$CONF"
    say "wrote $CONF (node $NODE, $CPUS CPUs)"
}

running() { # running slurmctld|slurmd: its pid file names a live process
    local pid
    pid="$(cat "$RUN/$1.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

start_slurm() {
    running slurmctld || /usr/sbin/slurmctld
    running slurmd || /usr/sbin/slurmd -N "$NODE"
}

wait_idle() {
    local state=""
    for _ in $(seq 1 60); do
        state="$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)"
        case "$state" in
        idle | mix | alloc | comp) return ;;
        down* | drain* | drng*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    die "node $NODE is not idle after 60 s (state '${state:-no answer}'; see $LOGS/)"
}

gone() { # gone PID...: wait up to 30 s for these processes to exit
    for _ in $(seq 1 30); do
        local alive=""
        for pid in "$@"; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
        [ -z "$alive" ] && return 0
        sleep 1
    done
    return 1
}

stop_slurm() {
    local pids
    pids="$(cat "$RUN/slurmctld.pid" "$RUN/slurmd.pid" 2>/dev/null || true)"
    scontrol shutdown >/dev/null 2>&1 || true
    # shellcheck disable=SC2086 # one pid per word
    gone $pids || kill $pids 2>/dev/null || true
}

stop_munge() {
    local pid
    pid="$(cat /run/munge/munged.pid 2>/dev/null)" || return 0
    kill "$pid" 2>/dev/null && gone "$pid"
    return 0
}

main() {
    [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"
    case "${1:-start}" in
    start)
        local t0=$SECONDS
        install_packages
        start_munge
        write_conf
        start_slurm
        wait_idle
        say "up in $((SECONDS - t0)) s: $(sinfo -h -o '%P %D node(s) %t, %c CPUs')"
        ;;
    stop)
        stop_slurm
        stop_munge
        say "stopped"
        ;;
    status) sinfo 2>/dev/null || say "not running" ;;
    *) die "usage: $0 [start|stop|status]" ;;
    esac
}

main "$@"
