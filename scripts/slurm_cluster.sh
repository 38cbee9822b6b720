#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for the cluster tests (CI runs it before the tests):
# Debian's slurm-wlm and munge, a munge key, a slurm.conf naming this host with its CPUs and
# memory, slurmctld and slurmd started as root. Accounting (sacct) is off: job states come from
# squeue/scontrol. Idempotent: a running cluster is left as it is.
#   bash scripts/slurm_cluster.sh          (start; installs the packages when missing)
#   bash scripts/slurm_cluster.sh stop
set -euo pipefail

if [ "${1:-}" = "stop" ]; then
  pkill -x slurmd || true
  pkill -x slurmctld || true
  exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

if squeue >/dev/null 2>&1 && sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then
  echo "slurm: already running"
  exit 0
fi

host="$(hostname -s)"
cpus="$(nproc)"
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
chown -R munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=freecg
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=${host} CPUs=${cpus} RealMemory=${memory_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then
    scontrol update nodename="${host}" state=resume >/dev/null 2>&1 || true
    echo "slurm: one node (${host}, ${cpus} CPUs, ${memory_mb} MB) up"
    exit 0
  fi
  sleep 1
done
echo "slurm: the node did not come up; see /var/log/slurm/" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
