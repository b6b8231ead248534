#!/usr/bin/env bash
# A real SLURM cluster (accounting on) and an OpenSSH server on loopback, for the cluster tests and
# benchmarks.  Follows shared/facts/slurm-testbed.md; every pitfall named there is handled here.
#
#   slurm_testbed.sh up DIR     bring it up under DIR (idempotent: a healthy testbed is reused)
#   slurm_testbed.sh down DIR   stop every daemon it started (by pid file) and wait until gone
#
# Needs root and the Debian packages slurmctld slurmd slurm-client munge openssh-server slurmdbd
# mariadb-server.  All state (configs, spool, logs, database, keys, workspace) lives under DIR.
# On success `up` writes DIR/testbed.json describing how to reach it.
set -euo pipefail

ACTION="${1:?usage: slurm_testbed.sh up|down DIR}"
DIR="$(realpath -m "${2:?usage: slurm_testbed.sh up|down DIR}")"
TEST_USER="${MSQUANT_TESTBED_USER:-msqtest}"
BASE_PORT="${MSQUANT_TESTBED_PORT:-17810}"
CTLD_PORT=$((BASE_PORT + 7))
NODE1_PORT=$((BASE_PORT + 8))
NODE2_PORT=$((BASE_PORT + 9))
DBD_PORT=$((BASE_PORT + 10))
SQL_PORT=$((BASE_PORT + 11))
SSH_PORT=$((BASE_PORT + 12))
JUMP_PORT=$((BASE_PORT + 13)) # a second sshd that allows TCP forwarding: the jump host of the SSH tests
MUNGE_SOCKET="$DIR/munge/munge.socket"
export SLURM_CONF="$DIR/etc/slurm.conf"

log() { echo "testbed: $*" >&2; }
die() {
  echo "testbed: FAILED: $*" >&2
  for f in "$DIR"/log/*.log; do
    [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

pid_alive() {
  # A stopped daemon stays a zombie for seconds here (PID 1 reaps slowly): Z counts as gone.
  local pid="$1" state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [ "$state" != "Z" ] && [ "$state" != "X" ]
}

pidfile_alive() { [ -f "$1" ] && pid_alive "$(cat "$1" 2>/dev/null)"; }

wait_for() {
  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit="$1" what="$2" i
  shift 2
  for ((i = 0; i < limit * 20; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "$what did not come up within ${limit}s"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_pidfile() {
  local file="$1" pid i
  [ -f "$file" ] || return 0
  pid="$(cat "$file" 2>/dev/null || true)"
  if pid_alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
      pid_alive "$pid" || break
      sleep 0.05
    done
    pid_alive "$pid" && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  local f
  for f in sshd-jump sshd slurmd-node1 slurmd-node2 slurmctld slurmdbd mariadb munged; do
    stop_pidfile "$DIR/run/$f.pid"
  done
  rm -f "$DIR/testbed.json"
}

healthy() {
  [ -f "$DIR/testbed.json" ] || return 1
  local f
  for f in munged mariadb slurmdbd slurmctld slurmd-node1 slurmd-node2 sshd sshd-jump; do
    pidfile_alive "$DIR/run/$f.pid" || return 1
  done
  [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u | grep -c ' idle\| mix\| alloc')" -ge 2 ]
}

write_configs() {
  local host
  host="$(hostname -s)"
  mkdir -p "$DIR"/{etc,run,log,state,spool/node1,spool/node2,munge,dev,mysql,ssh,workspace}
  chmod 755 "$DIR"
  # Fake GPUs: character devices (regular files are rejected, no File= drains the node).
  local dev
  for dev in node1-gpu0 node1-gpu1 node2-gpu0 node2-gpu1 node2-gpu2; do
    [ -c "$DIR/dev/$dev" ] || mknod "$DIR/dev/$dev" c 1 3
    chmod 666 "$DIR/dev/$dev"
  done
  # Node features (node1: a100,ib; node2: a100,h100) so --constraint can be satisfied or refused.
  # Memory is enforced the way Slurm does without cgroups (there are none here): jobacct_gather/linux
  # polls every second and OverMemoryKill kills a step over its --mem (DefMemPerCPU=1000 otherwise),
  # printing "StepId=N.batch exceeded memory limit (…), being killed"; memory must be a consumable
  # resource (CR_Core_Memory) for a job to have a limit at all.
  cat >"$DIR/etc/slurm.conf" <<EOF
ClusterName=testbed
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,batch_sched_delay=0
ReturnToService=2
MinJobAge=5
KillWait=2
InactiveLimit=0
MpiDefault=none
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu,gres/gpu:a100,gres/gpu:h100
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
NodeName=node1 NodeAddr=127.0.0.1 NodeHostname=localhost Port=$NODE1_PORT CPUs=4 RealMemory=4000 Gres=gpu:a100:2 Features=a100,ib State=UNKNOWN
NodeName=node2 NodeAddr=127.0.0.1 NodeHostname=localhost Port=$NODE2_PORT CPUs=4 RealMemory=8000 Gres=gpu:a100:1,gpu:h100:2 Features=a100,h100 State=UNKNOWN
PartitionName=debug Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP
PartitionName=big Nodes=node2 MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=node1 Name=gpu Type=a100 File=$DIR/dev/node1-gpu[0-1]
NodeName=node2 Name=gpu Type=a100 File=$DIR/dev/node2-gpu0
NodeName=node2 Name=gpu Type=h100 File=$DIR/dev/node2-gpu[1-2]
EOF
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$SQL_PORT
StorageUser=root
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf"
  cat >"$DIR/ssh/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $DIR/ssh/host_ed25519
PidFile $DIR/run/sshd.pid
AuthorizedKeysFile $DIR/ssh/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers $TEST_USER
Subsystem sftp internal-sftp
SetEnv SLURM_CONF=$SLURM_CONF
LogLevel ERROR
AllowTcpForwarding no
EOF
  # The jump host: the cluster's sshd refuses forwarding, so a route that skips this one (or uses
  # the cluster as a jump host) fails; VERBOSE logs each login, which the tests count per hop.
  sed -e "s/^Port .*/Port $JUMP_PORT/" -e "s|^PidFile .*|PidFile $DIR/run/sshd-jump.pid|" \
    -e "s|^HostKey .*|HostKey $DIR/ssh/jump_host_ed25519|" -e "s/^LogLevel .*/LogLevel VERBOSE/" \
    -e "s/^AllowTcpForwarding .*/AllowTcpForwarding yes/" "$DIR/ssh/sshd_config" >"$DIR/ssh/sshd_jump_config"
}

start_munge() {
  pidfile_alive "$DIR/run/munged.pid" && return 0
  chown munge: "$DIR/munge"
  chmod 755 "$DIR/munge"
  [ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null
  chown munge: "$DIR/munge/munge.key"
  chmod 600 "$DIR/munge/munge.key"
  touch "$DIR/log/munged.log" "$DIR/run/munged.pid"
  chown munge: "$DIR/log/munged.log" "$DIR/run/munged.pid"
  chmod 777 "$DIR/run" # munged writes its pid file as user munge
  runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munge.seed" --force
  wait_for 10 munged test -S "$MUNGE_SOCKET"
}

start_mariadb() {
  pidfile_alive "$DIR/run/mariadb.pid" && return 0
  if [ ! -d "$DIR/mysql/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --skip-test-db \
      --auth-root-authentication-method=normal >"$DIR/log/mariadb-install.log" 2>&1 ||
      die "mariadb-install-db failed (see $DIR/log/mariadb-install.log)"
  fi
  # A test-only database on loopback: no grants to manage.
  (mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --port="$SQL_PORT" \
    --bind-address=127.0.0.1 --socket="$DIR/mysql/mysqld.sock" --pid-file="$DIR/run/mariadb.pid" \
    --skip-grant-tables --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=32M \
    --skip-log-bin </dev/null >/dev/null 2>&1 &)
  wait_for 30 mariadb port_open "$SQL_PORT"
}

start_slurm() {
  if ! pidfile_alive "$DIR/run/slurmdbd.pid"; then
    slurmdbd # reads slurmdbd.conf next to $SLURM_CONF
    wait_for 30 slurmdbd port_open "$DBD_PORT"
  fi
  if ! pidfile_alive "$DIR/run/slurmctld.pid"; then
    slurmctld -i
    wait_for 20 slurmctld scontrol ping
  fi
  local node
  for node in node1 node2; do
    pidfile_alive "$DIR/run/slurmd-$node.pid" || slurmd -N "$node"
  done
  # WORKAROUND: now and then a fresh slurmctld misses the first registration of a slurmd (seen ~1 in
  # 3 cold starts here); `scontrol reconfigure` makes every slurmd register again.
  local attempt
  for attempt in 1 2 3 4; do
    nodes_idle_within 6 && return 0
    log "nodes not idle yet (attempt $attempt): asking them to register again"
    scontrol reconfigure >/dev/null 2>&1 || true
  done
  die "the nodes did not become idle: $(sinfo -h -N -o '%N=%t' | sort -u | tr '\n' ' ')"
}

nodes_idle_within() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u | grep -c ' idle$')" -ge 2 ] && return 0
    sleep 0.1
  done
  return 1
}

start_sshd() {
  pidfile_alive "$DIR/run/sshd.pid" && return 0
  id "$TEST_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$TEST_USER"
  usermod -p '*' "$TEST_USER" # a locked account ('!') is refused even with a key
  [ -f "$DIR/ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/host_ed25519"
  [ -f "$DIR/ssh/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/client_ed25519"
  cp "$DIR/ssh/client_ed25519.pub" "$DIR/ssh/authorized_keys"
  chmod 644 "$DIR/ssh/authorized_keys"
  chown "$TEST_USER": "$DIR/workspace"
  mkdir -p /run/sshd
  /usr/sbin/sshd -f "$DIR/ssh/sshd_config" -E "$DIR/log/sshd.log"
  wait_for 10 sshd port_open "$SSH_PORT"
}

start_sshd_jump() {
  pidfile_alive "$DIR/run/sshd-jump.pid" && return 0
  [ -f "$DIR/ssh/jump_host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/jump_host_ed25519"
  /usr/sbin/sshd -f "$DIR/ssh/sshd_jump_config" -E "$DIR/log/sshd-jump.log"
  wait_for 10 sshd-jump port_open "$JUMP_PORT"
}

up() {
  [ "$(id -u)" -eq 0 ] || die "needs root (it starts slurmctld, slurmd, munged and sshd)"
  local cmd
  for cmd in slurmctld slurmd slurmdbd munged mungekey mariadbd mariadb-install-db sshd sbatch; do
    command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || die "$cmd is not installed"
  done
  if healthy; then
    log "reusing the testbed in $DIR"
    return 0
  fi
  down
  write_configs
  start_munge
  start_mariadb
  start_slurm
  start_sshd
  start_sshd_jump
  local host_key jump_host_key
  host_key="$(cut -d' ' -f1,2 "$DIR/ssh/host_ed25519.pub")"
  jump_host_key="$(cut -d' ' -f1,2 "$DIR/ssh/jump_host_ed25519.pub")"
  cat >"$DIR/testbed.json" <<EOF
{
  "dir": "$DIR",
  "host": "127.0.0.1",
  "port": $SSH_PORT,
  "user": "$TEST_USER",
  "key": "$DIR/ssh/client_ed25519",
  "host_key": "$host_key",
  "jump_port": $JUMP_PORT,
  "jump_host_key": "$jump_host_key",
  "jump_log": "$DIR/log/sshd-jump.log",
  "slurm_conf": "$SLURM_CONF",
  "workspace": "$DIR/workspace",
  "partitions": ["debug", "big"],
  "gpu_types": ["a100", "h100"]
}
EOF
  log "up in $DIR (ssh ${TEST_USER}@127.0.0.1:$SSH_PORT)"
}

case "$ACTION" in
  up) up ;;
  down) down ;;
  *) die "unknown action $ACTION (up|down)" ;;
esac
