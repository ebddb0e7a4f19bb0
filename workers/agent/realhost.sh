#!/usr/bin/env bash
# A real libvirt/QEMU host on this (Debian) machine, for the tests of tests/realhost/.
#
#   workers/agent/realhost.sh setup     install what is missing, configure QEMU, start libvirtd, wait for it
#   workers/agent/realhost.sh status    exit 0 when qemu:///system answers, else say why (exit 1)
#   workers/agent/realhost.sh teardown [--all]
#                               remove the zenith-* domains left by the tests (with --all: every
#                               zenith-* domain) and the storage pools of the tests (their directory
#                               under the state directory), stop the libvirtd this script started
#
# Idempotent: every step checks before it acts. No systemd: libvirtd runs as a daemon with a
# pidfile under $ZENITH_VAR_DIR/realhost/ (default var/realhost/), and teardown only stops the
# libvirtd whose pid is in that file, never one this script did not start.
#
# QEMU runs as root with stdio_handler = "file" (no virtlogd): measured, a domain start took
# ~0.3 s that way against ~44 s with QEMU as the libvirt-qemu user.
#
# The libvirtd this script starts runs inside the network namespace $ZENITH_REALHOST_NETNS (default
# zenith-realhost, created here with only lo, up): the bridges, taps, dnsmasq and iptables rules of
# its networks live there, and real-host network traffic never leaves it (issue 11). Its unix socket
# is in the shared /run/libvirt, so qemu:///system works from outside as before; the agent runs the
# floating IPs' commands there (ZENITH_NETWORK_NETNS, workers/agent/network.py). Teardown deletes the
# namespace once the libvirtd it stopped and the dnsmasq of its networks are gone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR_DIR="${ZENITH_VAR_DIR:-var}"
case "$VAR_DIR" in /*) ;; *) VAR_DIR="$ROOT/$VAR_DIR" ;; esac
STATE_DIR="$VAR_DIR/realhost"
PIDFILE="$STATE_DIR/libvirtd.pid"
LOGFILE="$STATE_DIR/libvirtd.log"
URI="qemu:///system"
QEMU_CONF="${ZENITH_QEMU_CONF:-/etc/libvirt/qemu.conf}"
# libvirtd.conf also comes with libvirt-daemon-system; without it the built-in defaults serve
# (root-only unix socket under /run/libvirt), written out as an empty file we own.
LIBVIRTD_CONF="${ZENITH_LIBVIRTD_CONF:-$STATE_DIR/libvirtd.conf}"
# libvirt-clients gives virsh, used here and by whoever debugs a test.
PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
  iptables dnsmasq-base libvirt-daemon-config-nwfilter)
READY_TIMEOUT="${ZENITH_LIBVIRTD_TIMEOUT:-30}"
NETNS="${ZENITH_REALHOST_NETNS:-zenith-realhost}"

log() { echo "realhost: $*" >&2; }
die() {
  log "$*"
  exit 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 127
  fi
}

can_be_root() {
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }
}

virsh_ok() {
  command -v virsh >/dev/null && as_root virsh -c "$URI" version >/dev/null 2>&1
}

our_pid() {
  # The pid of the libvirtd this script started, if it still runs.
  [ -s "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [ -d "/proc/$pid" ] && grep -q libvirtd "/proc/$pid/comm" 2>/dev/null && echo "$pid"
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "cannot install ${missing[*]}: no apt-get on this machine"
  log "installing ${missing[*]}"
  # libvirt-daemon-system is never installed: it pulls systemd.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null ||
    {
      as_root apt-get update -qq >/dev/null &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          "${missing[@]}" >/dev/null
    } || die "apt-get install ${missing[*]} failed"
}

ensure_qemu_user() {
  # libvirtd refuses to start without them, even though QEMU runs as root below.
  getent group libvirt-qemu >/dev/null || as_root groupadd --system libvirt-qemu
  getent passwd libvirt-qemu >/dev/null ||
    as_root useradd --system --gid libvirt-qemu --no-create-home --home-dir /var/lib/libvirt \
      --shell /usr/sbin/nologin libvirt-qemu
}

# set_conf FILE KEY VALUE: one active "KEY = VALUE" line; returns 0 when the file changed.
# (Called in a condition, where bash ignores set -e: every failure is checked explicitly.)
set_conf() {
  local file="$1" key="$2" value="$3"
  local line="$key = $value"
  [ -r "$file" ] || die "cannot read $file"
  if grep -qxF "$line" "$file"; then
    return 1
  fi
  if grep -qE "^[[:space:]]*$key[[:space:]]*=" "$file"; then
    as_root sed -i -E "s|^[[:space:]]*$key[[:space:]]*=.*|$line|" "$file" || die "cannot edit $file"
  else
    printf '%s\n' "$line" | as_root tee -a "$file" >/dev/null || die "cannot write $file"
  fi
  return 0
}

configure_qemu() {
  # Debian ships qemu.conf in libvirt-daemon-system (not installed: it pulls systemd), so the
  # file is usually absent and libvirtd runs on built-in defaults plus the lines below.
  if [ ! -f "$QEMU_CONF" ]; then
    as_root mkdir -p "$(dirname "$QEMU_CONF")" || die "cannot create $(dirname "$QEMU_CONF")"
    echo "# written by zenith workers/agent/realhost.sh" | as_root tee "$QEMU_CONF" >/dev/null ||
      die "cannot write $QEMU_CONF"
  fi
  local changed=1
  set_conf "$QEMU_CONF" user '"root"' && changed=0
  set_conf "$QEMU_CONF" group '"root"' && changed=0
  set_conf "$QEMU_CONF" stdio_handler '"file"' && changed=0
  return $changed
}

netns_exists() {
  [ -e "/run/netns/$NETNS" ] && as_root ip netns exec "$NETNS" true 2>/dev/null
}

ensure_netns() {
  # The real host's own network namespace: lo up, nothing else (no route out of it).
  netns_exists || as_root ip netns add "$NETNS" || die "cannot create network namespace $NETNS"
  as_root ip netns exec "$NETNS" ip link set lo up || die "cannot bring lo up in $NETNS"
}

remove_netns() {
  # After our libvirtd stopped: the dnsmasq of its networks stay behind (their parent is gone);
  # then the namespace goes, if nothing else runs in it.
  netns_exists || return 0
  local pid
  for pid in $(as_root ip netns pids "$NETNS" 2>/dev/null); do
    if grep -qx dnsmasq "/proc/$pid/comm" 2>/dev/null; then as_root kill -TERM "$pid" 2>/dev/null || true; fi
  done
  sleep 0.2
  if [ -n "$(as_root ip netns pids "$NETNS" 2>/dev/null)" ]; then
    log "keeping network namespace $NETNS: processes still run in it"
    return 0
  fi
  log "removing network namespace $NETNS"
  as_root ip netns del "$NETNS" || true
}

start_libvirtd() {
  mkdir -p "$STATE_DIR"
  ensure_netns
  # Directories libvirt-daemon-system would have made (QEMU's per-domain logs go to the last).
  as_root mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt/qemu
  if [ ! -f "$LIBVIRTD_CONF" ]; then
    printf '# zenith workers/agent/realhost.sh: built-in defaults, log to our state directory\nlog_outputs = "3:file:%s"\n' \
      "$LOGFILE" >"$LIBVIRTD_CONF"
  fi
  # The daemon does not daemonize its log: stderr goes to our log file.
  as_root ip netns exec "$NETNS" libvirtd -d -f "$LIBVIRTD_CONF" -p "$PIDFILE" >>"$LOGFILE" 2>&1 ||
    die "libvirtd failed to start, see $LOGFILE"
}

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until virsh_ok; do
    [ $SECONDS -lt $deadline ] || die "libvirtd did not answer on $URI within ${READY_TIMEOUT}s (log: $LOGFILE)"
    sleep 0.1
  done
}

cmd_setup() {
  can_be_root || die "not root and no passwordless sudo: cannot install or start libvirtd"
  command -v dpkg >/dev/null || die "not a Debian machine (no dpkg)"
  install_packages
  ensure_qemu_user
  local conf_changed=0
  configure_qemu && conf_changed=1
  if virsh_ok; then
    if [ $conf_changed = 1 ]; then
      if pid="$(our_pid)"; then
        log "qemu.conf changed: restarting our libvirtd (pid $pid)"
        stop_ours
        start_libvirtd
      else
        log "qemu.conf changed but libvirtd was not started by this script: restart it yourself"
      fi
    fi
  else
    if [ -s /run/libvirtd.pid ] && [ -d "/proc/$(cat /run/libvirtd.pid)" ]; then
      die "a libvirtd (pid $(cat /run/libvirtd.pid)) runs but does not answer on $URI"
    fi
    start_libvirtd
  fi
  wait_ready
  log "ready: $URI ($(as_root virsh -c "$URI" version 2>/dev/null | grep -i 'running hypervisor' || true))"
}

cmd_status() {
  if ! command -v libvirtd >/dev/null; then
    echo "libvirtd is not installed (run: workers/agent/realhost.sh setup)"
    return 1
  fi
  if ! command -v virsh >/dev/null; then
    echo "virsh is not installed (package libvirt-clients; run: workers/agent/realhost.sh setup)"
    return 1
  fi
  if ! can_be_root; then
    echo "not root and no passwordless sudo: $URI is not reachable for this user"
    return 1
  fi
  if ! virsh_ok; then
    echo "libvirtd does not answer on $URI (run: workers/agent/realhost.sh setup)"
    return 1
  fi
  local started="not by this script"
  if pid="$(our_pid)"; then
    started="by this script, pid $pid, in network namespace $(as_root ip netns identify "$pid" || echo '?')"
  fi
  echo "ok: $URI answers; libvirtd started $started"
}

stop_ours() {
  local pid
  pid="$(our_pid)" || return 0
  as_root kill -TERM "$pid"
  for _ in $(seq 100); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then as_root kill -KILL "$pid"; fi
  rm -f "$PIDFILE"
}

cmd_teardown() {
  if virsh_ok; then
    local dom
    for dom in $(as_root virsh -c "$URI" list --all --name | grep '^zenith-' || true); do
      # Only the tests' domains (disk or console log under our state directory): on a host that
      # also runs a Zenith agent, its instances are zenith-* too and must survive. --all: every one.
      if [ "${1:-}" != --all ] && ! as_root virsh -c "$URI" dumpxml "$dom" 2>/dev/null | grep -qF "$STATE_DIR/"; then
        log "keeping domain $dom (not made by the tests of $STATE_DIR; teardown --all removes it)"
        continue
      fi
      log "removing domain $dom"
      as_root virsh -c "$URI" destroy "$dom" >/dev/null 2>&1 || true
      as_root virsh -c "$URI" undefine "$dom" --managed-save --snapshots-metadata >/dev/null 2>&1 || true
    done
    # The tests' pools are persistent in this libvirtd: left defined, they would point at a removed
    # folder once this checkout is gone (issue 9). Only undefined: their files stay in the var dir.
    local pool
    for pool in $(as_root virsh -c "$URI" pool-list --all --name | grep '^zenith' || true); do
      as_root virsh -c "$URI" pool-dumpxml "$pool" 2>/dev/null | grep -qF "<path>$STATE_DIR/" || continue
      log "removing storage pool $pool"
      as_root virsh -c "$URI" pool-destroy "$pool" >/dev/null 2>&1 || true
      as_root virsh -c "$URI" pool-undefine "$pool" >/dev/null 2>&1 || true
    done
  fi
  if pid="$(our_pid)"; then
    log "stopping libvirtd pid $pid"
    stop_ours
    remove_netns
  else
    log "no libvirtd started by this script is running: left alone"
  fi
}

case "${1:-}" in
setup) cmd_setup ;;
status) cmd_status ;;
teardown) cmd_teardown "${2:-}" ;;
*)
  echo "usage: $0 setup|status|teardown [--all]" >&2
  exit 2
  ;;
esac
