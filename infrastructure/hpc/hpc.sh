#!/usr/bin/env bash
# A one-machine HPC site for development and tests: Slurm and Toil WES behind basic auth.
#
#   infrastructure/hpc/hpc.sh install   Debian packages (slurm-wlm, munge) and Toil's virtualenv
#   infrastructure/hpc/hpc.sh up        install what is missing, start everything, write
#                                       $HPC_HOME/wes.env (the OAPIP_TOIL_WES_* settings)
#   infrastructure/hpc/hpc.sh down      cancel Slurm jobs, stop everything by PID
#   infrastructure/hpc/hpc.sh status    which of the processes run
#
# What `up` starts, each with a PID file in $HPC_HOME/run and a log in $HPC_HOME/log:
#   munged          MUNGE with a key and socket of its own (Slurm's authentication)
#   slurmctld       single-node Slurm 22.05 cluster `oapip` on 127.0.0.1 (no systemd,
#   slurmd          proctrack/linuxproc, task/none, accounting off; jobcomp/filetxt keeps
#                   a line per finished job in $HPC_HOME/log/jobcomp.log)
#   celery          Toil's WES task worker; broker RabbitMQ (a vhost of its own)
#   toil-server     Toil 9.3.0 WES on a loopback port; runs use `--batchSystem slurm`
#   wes-proxy       basic auth in front of it (wes_auth_proxy.py): the URL clients use
#
# Environment:
#   HPC_HOME          state, logs, PID files (default: .hpc in the checkout); every path
#                     component must be world-searchable (munged checks its socket's path)
#   HPC_TOIL_VENV     Toil's virtualenv (default: .toil-venv in the checkout); Toil pins
#                     cwltool, so it never shares the engine's environment
#   HPC_WES_USER      basic-auth user (default: oapip)
#   HPC_WES_PASSWORD  its password (default: random, kept in $HPC_HOME/wes-password)
#   HPC_BROKER_URL    Celery broker (default: vhost oapip-hpc-<n> on guest@127.0.0.1:5672,
#                     created with rabbitmqctl; the default vhost if that is not possible)
#   HPC_JOB_PATH      folders put first on PATH of Toil and its Slurm jobs (stand-in tools)
#   HPC_TOIL_OPTS     more default Toil options, space-separated (`--opt` of toil server)
#   PYTHON            interpreter that creates Toil's virtualenv (default: python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
HPC_HOME="${HPC_HOME:-$ROOT/.hpc}"
HPC_TOIL_VENV="${HPC_TOIL_VENV:-$ROOT/.toil-venv}"
HPC_WES_USER="${HPC_WES_USER:-oapip}"
PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(slurm-wlm munge)
RUN="$HPC_HOME/run"
LOG="$HPC_HOME/log"
SLURM_CONF="$HPC_HOME/slurm/slurm.conf"
export SLURM_CONF

say() { printf '==> hpc: %s\n' "$*" >&2; }
die() { printf 'hpc: %s\n' "$*" >&2; exit 1; }

# --- installation ------------------------------------------------------------------

install_apt() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] \
            || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ "$(id -u)" == 0 ]] || die "install as root: apt-get install ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null
    # The packages enable their systemd units; without systemd nothing starts them, and
    # this stack starts its own daemons with its own configuration.
}

install_toil() {
    local wanted stamp="$HPC_TOIL_VENV/.hpc-installed"
    wanted="$(sha256sum "$HERE/toil-requirements.txt" | cut -d' ' -f1)"
    [[ -f "$stamp" && "$(<"$stamp")" == "$wanted" ]] && return 0
    exec 8<"$HERE/toil-requirements.txt"
    flock 8  # two checkouts' test runs must not pip-install into one venv at once
    if [[ ! -f "$stamp" || "$(<"$stamp")" != "$wanted" ]]; then
        local started=$SECONDS
        [[ -x "$HPC_TOIL_VENV/bin/python" ]] || "$PYTHON" -m venv --upgrade-deps "$HPC_TOIL_VENV"
        say "installing Toil into $HPC_TOIL_VENV (a few minutes on a fresh machine)"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$HPC_TOIL_VENV/bin/python" -m pip install --quiet \
            --no-compile -r "$HERE/toil-requirements.txt" \
            2> >(grep -v "^WARNING: Location 'file:.*' is ignored" >&2 || true)
        echo "$wanted" >"$stamp"
        say "Toil installed in $((SECONDS - started)) s"
    fi
    exec 8<&-
}

cmd_install() {
    install_apt
    install_toil
}

# --- process helpers ---------------------------------------------------------------

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(<"$RUN/$1.pid")" 2>/dev/null; }

# start NAME CMD...: run CMD in a session of its own, log to $LOG/NAME.log, PID to $RUN/NAME.pid
start() {
    local name="$1"
    shift
    setsid "$@" >>"$LOG/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
}

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds, or fail naming WHAT
wait_for() {
    local what="$1" deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready within $((deadline - SECONDS + $2)) s; see $LOG"
        sleep 0.2
    done
}

# stop NAME [group]: SIGTERM the PID (or its process group), SIGKILL after 10 s
stop() {
    local name="$1" target pid deadline
    [[ -f "$RUN/$name.pid" ]] || return 0
    pid="$(<"$RUN/$name.pid")"
    target="$pid"
    [[ "${2:-}" == group ]] && target="-$pid"
    if kill -TERM -- "$target" 2>/dev/null; then
        deadline=$((SECONDS + 10))
        while kill -0 -- "$target" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL -- "$target" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid"
}

# --- the pieces --------------------------------------------------------------------

start_munge() {
    mkdir -p "$HPC_HOME/munge"
    chmod 700 "$HPC_HOME/munge"
    [[ -f "$HPC_HOME/munge/munge.key" ]] || mungekey --create --keyfile="$HPC_HOME/munge/munge.key"
    # munged daemonizes and writes its own PID file.
    munged --key-file="$HPC_HOME/munge/munge.key" --socket="$RUN/munge.socket" \
        --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
        --seed-file="$HPC_HOME/munge/munged.seed"
}

write_slurm_conf() {
    local node="$1" ctld_port="$2" slurmd_port="$3"
    mkdir -p "$HPC_HOME/slurm/state" "$HPC_HOME/slurm/spool"
    cat >"$SLURM_CONF" <<EOF
# Single-node cluster for development and tests (infrastructure/hpc/hpc.sh).
ClusterName=oapip
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$RUN/munge.socket
StateSaveLocation=$HPC_HOME/slurm/state
SlurmdSpoolDir=$HPC_HOME/slurm/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups and no systemd here: track job processes by parentage.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# Accounting is off; jobcomp/filetxt still records every finished job (id, name, state,
# work directory), which is how tests prove work ran as Slurm jobs.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# More CPUs than the machine has, so a few small jobs run at once on a 2-core box.
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=8 RealMemory=8192 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

node_idle() { [[ "$(sinfo -h -o %T 2>/dev/null)" =~ ^(idle|mixed|allocated) ]]; }

start_slurm() {
    local node
    node="$(hostname -s)"
    write_slurm_conf "$node" "$(free_port)" "$(free_port)"
    # Both daemonize and write their PID files (SlurmctldPidFile, SlurmdPidFile).
    slurmctld -i
    slurmd -N "$node"
    wait_for "the Slurm node" 30 node_idle
}

broker_url() {
    if [[ -n "${HPC_BROKER_URL:-}" ]]; then
        echo "$HPC_BROKER_URL"
        return
    fi
    local vhost
    vhost="oapip-hpc-$(basename "$HPC_HOME" | tr -c 'A-Za-z0-9\n' -)-$$"
    if command -v rabbitmqctl >/dev/null \
        && rabbitmqctl -q add_vhost "$vhost" >/dev/null 2>&1 \
        && rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null 2>&1; then
        echo "$vhost" >"$RUN/rabbitmq-vhost"
        echo "amqp://guest:guest@127.0.0.1:5672/$vhost"
    else
        say "cannot create a RabbitMQ vhost; using the default one"
        echo "amqp://guest:guest@127.0.0.1:5672//"
    fi
}

wes_answers() {
    curl --noproxy '*' -sf -o /dev/null "http://127.0.0.1:$1/ga4gh/wes/v1/service-info"
}

wes_answers_with_auth() {
    curl --noproxy '*' -sf -o /dev/null -u "$HPC_WES_USER:$2" \
        "http://127.0.0.1:$1/ga4gh/wes/v1/service-info"
}

celery_ready() { grep -q "ready\.$" "$LOG/celery.log"; }

start_toil() {
    local broker toil_port proxy_port password opts=() opt
    broker="$(broker_url)"
    toil_port="$(free_port)"
    proxy_port="$(free_port)"
    password="${HPC_WES_PASSWORD:-}"
    if [[ -z "$password" ]]; then
        [[ -f "$HPC_HOME/wes-password" ]] \
            || "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$HPC_HOME/wes-password"
        password="$(<"$HPC_HOME/wes-password")"
    else
        printf '%s\n' "$password" >"$HPC_HOME/wes-password"
    fi
    chmod 600 "$HPC_HOME/wes-password"
    mkdir -p "$HPC_HOME/toil/workflows" "$HPC_HOME/toil/work"
    # Default options of every run; a run adds its own (workflow_engine_parameters).
    # --no-container: DockerRequirement hints are ignored (no registry here, docs/architecture.md §6).
    # --statePollingWait=1: Toil asks Slurm about its jobs every second, not every minute.
    for opt in --batchSystem=slurm --no-container --statePollingWait=1 \
        --workDir="$HPC_HOME/toil/work" ${HPC_TOIL_OPTS:-}; do
        opts+=("--opt=$opt")
    done
    local path="$HPC_TOIL_VENV/bin:$PATH"
    [[ -n "${HPC_JOB_PATH:-}" ]] && path="$HPC_JOB_PATH:$path"
    # The Celery worker runs the Toil leaders, which submit to Slurm with `--export=ALL`:
    # its environment (SLURM_CONF, PATH) is that of every job.
    start celery env PATH="$path" TOIL_WES_BROKER_URL="$broker" \
        "$HPC_TOIL_VENV/bin/celery" -A toil.server.celery_app worker --loglevel=INFO \
        --concurrency=4 --without-gossip --without-mingle --without-heartbeat \
        -n "oapip-hpc-$$@%h"
    start toil-server env PATH="$path" TOIL_WES_BROKER_URL="$broker" \
        "$HPC_TOIL_VENV/bin/toil" server --host 127.0.0.1 --port "$toil_port" -w 2 \
        --work_dir "$HPC_HOME/toil/workflows" --state_store "$HPC_HOME/toil/state" "${opts[@]}"
    start wes-proxy "$HPC_TOIL_VENV/bin/python" "$HERE/wes_auth_proxy.py" \
        --listen "127.0.0.1:$proxy_port" --upstream "http://127.0.0.1:$toil_port" \
        --user "$HPC_WES_USER" --password-file "$HPC_HOME/wes-password"
    wait_for "Celery" 60 celery_ready
    wait_for "the Toil WES server" 60 wes_answers "$toil_port"
    wait_for "the WES auth proxy" 20 wes_answers_with_auth "$proxy_port" "$password"
    umask 077
    cat >"$HPC_HOME/wes.env" <<EOF
OAPIP_TOIL_WES_URL=http://127.0.0.1:$proxy_port/ga4gh/wes/v1/
OAPIP_TOIL_WES_USER=$HPC_WES_USER
OAPIP_TOIL_WES_PASSWORD=$password
SLURM_CONF=$SLURM_CONF
HPC_WES_UPSTREAM=http://127.0.0.1:$toil_port/ga4gh/wes/v1/
EOF
}

# --- commands ----------------------------------------------------------------------

cmd_up() {
    local started=$SECONDS
    cmd_install
    mkdir -p "$RUN" "$LOG"
    alive wes-proxy && die "already up (see $HPC_HOME/wes.env); run \`$0 down\` first"
    # munged refuses a socket whose path is not searchable by everyone.
    chmod 755 "$HPC_HOME" "$RUN"
    # Whatever ends `up` early (a failed command, a timeout) stops what it started.
    trap 'say "start failed; stopping what started"; cmd_down' EXIT
    start_munge
    start_slurm
    start_toil
    trap - EXIT
    say "up in $((SECONDS - started)) s; settings in $HPC_HOME/wes.env"
}

cmd_down() {
    [[ -d "$RUN" ]] || return 0
    local started=$SECONDS
    stop wes-proxy
    stop toil-server group
    # Toil leaders run inside the Celery worker's session: end them with it.
    stop celery group
    if [[ -f "$SLURM_CONF" ]] && alive slurmctld; then
        local jobs=()
        mapfile -t jobs < <(squeue -h -o %i 2>/dev/null)
        ((${#jobs[@]} == 0)) || scancel --full "${jobs[@]}" 2>/dev/null || true
        local deadline=$((SECONDS + 15))
        while [[ -n "$(squeue -h -o %i 2>/dev/null)" ]] && ((SECONDS < deadline)); do
            sleep 0.2
        done
    fi
    stop slurmd
    stop slurmctld
    stop munged
    if [[ -f "$RUN/rabbitmq-vhost" ]]; then
        rabbitmqctl -q delete_vhost "$(<"$RUN/rabbitmq-vhost")" >/dev/null 2>&1 || true
        rm -f "$RUN/rabbitmq-vhost"
    fi
    rm -f "$HPC_HOME/wes.env"
    say "down in $((SECONDS - started)) s"
}

cmd_status() {
    local name rc=0
    for name in munged slurmctld slurmd celery toil-server wes-proxy; do
        if alive "$name"; then
            printf '%-12s running (pid %s)\n' "$name" "$(<"$RUN/$name.pid")"
        else
            printf '%-12s stopped\n' "$name"
            rc=1
        fi
    done
    return "$rc"
}

command="${1:-}"
shift || true
case "$command" in
    install | up | down | status) "cmd_$command" "$@" ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
