#!/usr/bin/env bash
# Per-app routing into esptun's TUN device: nftables marks the packets of
# chosen applications (by user id, by cgroup v2 path, or by destination
# port) and a policy-routing rule sends marked packets to a routing table
# whose default route is the TUN device. Everything unmarked keeps its
# normal route. See docs/PER-APP.md.
#
#   scripts/per-app.sh up   --tun DEV [--table T] [--mark M] [--prio P]
#                           [--uid U]... [--cgroup PATH]... [--dport P[-Q]]...
#                           [--proto tcp|udp|both] [--masquerade]
#   scripts/per-app.sh down [--table T] [--mark M] [--prio P]
#   scripts/per-app.sh status [--table T]
#
# `up` is idempotent: it replaces this table's nftables rules in one
# transaction and re-creates the `ip rule`s and routes, so running it again
# with other options leaves exactly the new set. `down` removes all of it and
# succeeds when there is nothing to remove. Root (CAP_NET_ADMIN) needed; run
# it in another network namespace with `ip netns exec NS scripts/per-app.sh`.
set -euo pipefail

prog=per-app.sh

usage() {
  cat <<'EOF'
usage: per-app.sh up   --tun DEV [options] [selectors]
       per-app.sh down [--table T] [--mark M] [--prio P]
       per-app.sh status [--table T]

Marks the packets of chosen applications with an nftables rule and routes
marked packets into the TUN device DEV (esptun's) through routing table T;
unmarked traffic keeps its normal route.

selectors (at least one for `up`; any packet matching one is marked):
  --uid U          locally generated packets of user U (name or number)
  --cgroup PATH    packets of sockets in cgroup v2 PATH (relative to the
                   cgroup2 mount, e.g. system.slice/app.service; must exist)
  --dport P[-Q]    packets to destination port P (or range P-Q)
  --proto PROTO    protocol for --dport: tcp, udp or both (default both)

options:
  --tun DEV        the TUN device (must exist; `up` only)
  --table T        routing table number, 1..4294967295 except 253-255
                   (default 4500); also names the nftables table
                   `esptun_app_T`, so several sets can coexist
  --mark M         packet mark set on matched packets and matched by
                   `ip rule fwmark M` (decimal or 0x hex, non-zero;
                   default 0x4500)
  --prio P         `ip rule` priority (default 10000; lower runs first)
  --masquerade     rewrite the source of marked packets leaving through DEV
                   to DEV's address (needed when the source was chosen for
                   the normal route, e.g. to use esptun's virtual IP)
  -h, --help       this text

Never mark esptun's own IKE/ESP traffic (UDP 500 and 4500 to the gateway,
or esptun's own uid): it would loop into the tunnel.
EOF
}

die() {
  echo "$prog: $*" >&2
  exit 2
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found (install $2)"
}

# ---- arguments ----

cmd=${1:-}
[ -n "$cmd" ] || { usage >&2; exit 2; }
shift
case "$cmd" in
  up | down | status) ;;
  -h | --help | help) usage; exit 0 ;;
  *) echo "$prog: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac

tun="" table=4500 mark=0x4500 prio=10000 proto=both masq=0
uids=() cgroups=() dports=()
while [ $# -gt 0 ]; do
  opt=$1
  case "$opt" in
    -h | --help) usage; exit 0 ;;
    --masquerade) masq=1; shift; continue ;;
    --tun | --table | --mark | --prio | --uid | --cgroup | --dport | --proto)
      [ $# -ge 2 ] || die "$opt needs a value"
      val=$2
      shift 2
      ;;
    *) die "unknown option '$opt' (see --help)" ;;
  esac
  case "$opt" in
    --tun) tun=$val ;;
    --table) table=$val ;;
    --mark) mark=$val ;;
    --prio) prio=$val ;;
    --uid) uids+=("$val") ;;
    --cgroup) cgroups+=("$val") ;;
    --dport) dports+=("$val") ;;
    --proto) proto=$val ;;
  esac
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]] && [ "${#1}" -le 10 ] && [ "$1" -le 4294967295 ]; }

is_uint "$table" && [ "$table" -ge 1 ] || die "--table must be a number 1..4294967295 (got '$table')"
case "$table" in 253 | 254 | 255) die "--table $table is a kernel table (default/main/local); pick another" ;; esac
if [[ $mark =~ ^0[xX][0-9a-fA-F]{1,8}$ ]]; then
  mark_dec=$((mark))
elif is_uint "$mark"; then
  mark_dec=$mark
else
  die "--mark must be a number, decimal or 0x hex (got '$mark')"
fi
[ "$mark_dec" -ne 0 ] || die "--mark must not be 0 (0 is every unmarked packet)"
mark_hex=$(printf '0x%x' "$mark_dec")
is_uint "$prio" && [ "$prio" -ge 1 ] && [ "$prio" -lt 32766 ] || die "--prio must be 1..32765 (before the main table)"
nft_table="esptun_app_$table"

need ip iproute2
need nft nftables

# ---- down ----

# Deletes this table's `ip rule`s for one family; bounded, in case the same
# rule was added many times by hand.
del_rules() {
  local fam=$1 i
  for i in $(seq 1 64); do
    ip "$fam" rule del priority "$prio" fwmark "$mark_hex" table "$table" 2>/dev/null || return 0
  done
}

down() {
  if nft list table inet "$nft_table" >/dev/null 2>&1; then
    nft delete table inet "$nft_table"
  fi
  del_rules -4
  del_rules -6
  ip -4 route flush table "$table" 2>/dev/null || true
  ip -6 route flush table "$table" 2>/dev/null || true
}

if [ "$cmd" = down ]; then
  down
  echo "$prog: down: table $table, mark $mark_hex removed"
  exit 0
fi

if [ "$cmd" = status ]; then
  echo "# nft list table inet $nft_table"
  nft list table inet "$nft_table" 2>/dev/null || echo "(none)"
  echo "# ip rule (table $table)"
  { ip -4 rule show; ip -6 rule show; } | grep -w "lookup $table" || echo "(none)"
  echo "# ip route show table $table"
  routes=$({ ip -4 route show table "$table"; ip -6 route show table "$table"; } 2>/dev/null || true)
  echo "${routes:-(none)}"
  exit 0
fi

# ---- up ----

[ -n "$tun" ] || die "up needs --tun DEV"
ip link show dev "$tun" >/dev/null 2>&1 || die "no device '$tun' (start esptun first)"
[ ${#uids[@]} -gt 0 ] || [ ${#cgroups[@]} -gt 0 ] || [ ${#dports[@]} -gt 0 ] ||
  die "up needs at least one of --uid, --cgroup, --dport"
case "$proto" in
  tcp) l4="tcp" ;;
  udp) l4="udp" ;;
  both) l4="{ tcp, udp }" ;;
  *) die "--proto must be tcp, udp or both (got '$proto')" ;;
esac

rules=()
for u in "${uids[@]}"; do
  if is_uint "$u"; then
    rules+=("meta skuid $u meta mark set $mark_hex")
  elif [[ $u =~ ^[a-z_][a-z0-9_.-]*$ ]] && getent passwd "$u" >/dev/null; then
    rules+=("meta skuid \"$u\" meta mark set $mark_hex")
  else
    die "--uid '$u': no such user"
  fi
done

# nft resolves a cgroup path under /sys/fs/cgroup when it loads the rule
# (and stores the cgroup's id). Where that is not the cgroup2 hierarchy (a
# hybrid host, or inside `ip netns exec`, which remounts /sys), nft runs in
# a private mount namespace with cgroup2 mounted there.
private_cg=0
in_cg2() {
  if [ "$private_cg" = 1 ]; then
    unshare --mount --propagation private sh -c 'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"' sh "$@"
  else
    "$@"
  fi
}
if [ ${#cgroups[@]} -gt 0 ] && [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ]; then
  need unshare util-linux
  private_cg=1
  in_cg2 true 2>/dev/null || die "--cgroup: cannot mount the cgroup2 hierarchy (no cgroup v2 on this kernel?)"
fi
cg2_mnt=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
for c in "${cgroups[@]}"; do
  rel=$c
  [ -n "$cg2_mnt" ] && rel=${rel#"$cg2_mnt"}
  rel=${rel#/sys/fs/cgroup/unified} # the hybrid layout's cgroup2
  rel=${rel#/sys/fs/cgroup}
  rel=${rel#/}
  rel=${rel%/}
  [[ -n $rel && $rel =~ ^[A-Za-z0-9_.@:/-]+$ && $rel != *..* ]] || die "--cgroup '$c': bad path"
  in_cg2 test -d "/sys/fs/cgroup/$rel" || die "--cgroup '$c': no such cgroup v2 group ($rel)"
  level=$(awk -F/ '{ print NF }' <<<"$rel")
  rules+=("socket cgroupv2 level $level \"$rel\" meta mark set $mark_hex")
done

for p in "${dports[@]}"; do
  if [[ $p =~ ^([0-9]{1,5})(-([0-9]{1,5}))?$ ]]; then
    lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[3]:-${BASH_REMATCH[1]}}
    [ "$lo" -ge 1 ] && [ "$hi" -le 65535 ] && [ "$lo" -le "$hi" ] || die "--dport '$p': ports are 1..65535, low-high"
  else
    die "--dport '$p': a port or a range P-Q"
  fi
  if [ "$lo" = "$hi" ]; then range=$lo; else range="$lo-$hi"; fi
  rules+=("meta l4proto $l4 th dport $range meta mark set $mark_hex")
done

# One transaction: create-if-missing, delete, re-create. Either the whole
# new set is in place or (on error) the old one is untouched.
{
  echo "table inet $nft_table { }"
  echo "delete table inet $nft_table"
  echo "table inet $nft_table {"
  echo "  chain output {"
  # A `route` chain re-runs the routing decision when the mark changes.
  echo "    type route hook output priority mangle; policy accept;"
  echo "    meta mark $mark_hex return"
  for r in "${rules[@]}"; do
    echo "    $r"
  done
  echo "  }"
  if [ "$masq" = 1 ]; then
    echo "  chain postrouting {"
    echo "    type nat hook postrouting priority srcnat; policy accept;"
    echo "    oifname \"$tun\" meta mark $mark_hex masquerade"
    echo "  }"
  fi
  echo "}"
} | in_cg2 nft -f - || die "nft refused the rules (see above)"

for fam in -4 -6; do
  del_rules "$fam"
  ip "$fam" rule add priority "$prio" fwmark "$mark_hex" table "$table"
done
ip -4 route replace default dev "$tun" table "$table"
# IPv6 may be disabled on the device or host; IPv4 steering still works.
if ! ip -6 route replace default dev "$tun" table "$table" 2>/dev/null; then
  echo "$prog: note: no IPv6 default route via $tun (IPv6 off on it?); only IPv4 is steered" >&2
fi
# Replies to masqueraded or steered flows come back on the TUN with a source
# the main table routes elsewhere: strict reverse-path filtering would drop
# them, so make it loose on the TUN.
if [ -w "/proc/sys/net/ipv4/conf/$tun/rp_filter" ]; then
  echo 2 >"/proc/sys/net/ipv4/conf/$tun/rp_filter"
fi
echo "$prog: up: ${#rules[@]} selector(s) -> mark $mark_hex -> table $table -> dev $tun"
