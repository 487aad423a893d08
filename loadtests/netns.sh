#!/usr/bin/env bash
# Real traffic shaping for the phone load test: Locust workers in a network namespace, edge on the host.
#
#   sudo loadtests/netns.sh [-u USERS] [-t DURATION] [-w WORKERS] [--profiles LIST]
#
# Creates namespace edgelt<PID> and a veth pair on 10.200.0.0/24 (host end 10.200.0.1, namespace end
# 10.200.0.2 plus one address 10.200.0.1X per profile). On each end an htb root sends each profile's
# address to its own class with a tbf leaf: host egress = the profile's downlink, namespace egress =
# its uplink. The congested profile's tbf rate is re-set every 2 s from profiles.py. Storefront, edge
# and the Locust master listen on 10.200.0.1 only; workers run under `ip netns exec` and bind their
# profile's source address (--source-map) with --kernel-shaping (the client no longer paces reads).
# RTT: netem is used when the kernel has it; otherwise (this machine) the client adds it, and we say so.
# Everything created is removed on exit, success or failure (trap).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
USERS=30; DURATION=60s; WORKERS=2; PROFILES=all
while [ $# -gt 0 ]; do
  case "$1" in
    -u) USERS="$2"; shift 2;; -t) DURATION="$2"; shift 2;; -w) WORKERS="$2"; shift 2;;
    --profiles) PROFILES="$2"; shift 2;;
    *) echo "netns.sh: unknown argument $1" >&2; exit 2;;
  esac
done

die() { echo "netns.sh: cannot run: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces and tc)"
command -v ip >/dev/null || die "no 'ip' command (iproute2)"
command -v tc >/dev/null || die "no 'tc' command (iproute2)"
ip netns list >/dev/null 2>&1 || die "'ip netns' is not supported here"

NS="edgelt$$"; VH="elth$$"; VN="eltn$$"; PIDS=()
cleanup() {
  set +e
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  ip link del "$VH" 2>/dev/null         # deletes both ends and their qdiscs
  ip netns del "$NS" 2>/dev/null
  ip netns list | grep -q "^$NS\b" && echo "netns.sh: WARNING: $NS still present" >&2
  echo "netns.sh: removed namespace $NS and veth $VH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS" || die "cannot create a network namespace"
ip link add "$VH" type veth peer name "$VN" || die "cannot create a veth pair"
ip link set "$VN" netns "$NS"
ip addr add 10.200.0.1/24 dev "$VH"; ip link set "$VH" up
ip -n "$NS" link set lo up
ip -n "$NS" addr add 10.200.0.2/24 dev "$VN"; ip -n "$NS" link set "$VN" up

# name down up for every profile, from profiles.py (one source of truth)
mapfile -t ROWS < <(cd "$HERE" && "$PY" -c '
from profiles import PROFILES
for i, p in enumerate(PROFILES.values()): print(p.name, 10 + i, int(p.downlink_kbps), int(p.uplink_kbps))')
NETEM=no
if tc qdisc add dev "$VH" root netem delay 1ms 2>/dev/null; then NETEM=yes; tc qdisc del dev "$VH" root; fi

shape() {  # dev ns-prefix match-dir
  local dev="$1" nsx="$2" dir="$3" col="$4"
  $nsx tc qdisc add dev "$dev" root handle 1: htb default 99 r2q 1000
  $nsx tc class add dev "$dev" parent 1: classid 1:99 htb rate 10gbit
  for row in "${ROWS[@]}"; do
    set -- $row; local name=$1 id=$2 rate=${!col}
    $nsx tc class add dev "$dev" parent 1: classid "1:$id" htb rate 10gbit
    $nsx tc qdisc add dev "$dev" parent "1:$id" handle "$id:" tbf rate "${rate}kbit" burst 4kb latency 5s
    $nsx tc filter add dev "$dev" parent 1: protocol ip prio 1 u32 match ip "$dir" "10.200.0.$id/32" flowid "1:$id"
  done
}
SOURCES=""
for row in "${ROWS[@]}"; do set -- $row; ip -n "$NS" addr add "10.200.0.$2/24" dev "$VN"; SOURCES="${SOURCES:+$SOURCES,}$1=10.200.0.$2"; done
shape "$VH" "" dst 3                       # host → phones: downlink
shape "$VN" "ip netns exec $NS" src 4      # phones → host: uplink
echo "netns.sh: namespace $NS, veth $VH/$VN 10.200.0.0/24, tbf per profile: ${ROWS[*]}"
if [ "$NETEM" = yes ]; then
  echo "netns.sh: netem is available, but RTT stays in the client (one model of delay for every run)"
else
  echo "netns.sh: this kernel has no netem: RTT is emulated in the client (per request and per handshake)"
fi

# The congested cell: follow profiles.Profile.downlink_at(t) with tc qdisc change every 2 s.
CID=$(for row in "${ROWS[@]}"; do set -- $row; [ "$1" = congested ] && echo "$2"; done)
if [ -n "$CID" ]; then
  (
    start=$(date +%s)
    while sleep 2; do
      read -r down up < <(cd "$HERE" && "$PY" -c "
from profiles import PROFILES; p = PROFILES['congested']; t = $(date +%s) - $start
print(int(p.downlink_at(t)), int(p.uplink_at(t)))")
      tc qdisc change dev "$VH" parent "1:$CID" handle "$CID:" tbf rate "${down}kbit" burst 4kb latency 5s 2>/dev/null || exit 0
      ip netns exec "$NS" tc qdisc change dev "$VN" parent "1:$CID" handle "$CID:" tbf rate "${up}kbit" burst 4kb latency 5s 2>/dev/null || exit 0
    done
  ) &
  PIDS+=($!)
fi

"$PY" "$HERE/report.py" -u "$USERS" -t "$DURATION" --workers "$WORKERS" --profiles "$PROFILES" \
  --bind-host 10.200.0.1 --worker-netns "$NS" --kernel-shaping --source-map "$SOURCES" --name "netns-$(date +%Y%m%d-%H%M%S)"
echo "netns.sh: tc statistics (host side, downlink):"
tc -s qdisc show dev "$VH" | grep -A1 '^qdisc tbf' | grep -E 'qdisc|Sent' || true
