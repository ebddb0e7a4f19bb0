#!/usr/bin/env bash
# Build the tiny test guest of the real-host tests, cached in var/guest/ (ZENITH_GUEST_DIR).
#
#   vmlinuz     Debian's cloud kernel (linux-image-*-cloud-amd64, downloaded, never installed)
#   initrd.img  busybox-static + the virtio/ACPI modules of that kernel: the whole OS
#   root.qcow2  an empty 64 MiB qcow2 disk, the "root disk image" Zenith clones per instance
#   cmdline     the kernel command line to boot with (see GUEST_CMDLINE below)
#
# The guest boots from the kernel and initrd directly (<os><kernel>/<initrd>/<cmdline>), loads
# the modules, starts busybox acpid (ACPI power button -> "poweroff -f", which libvirt turns into
# a reboot when it asked for one), reports block devices and NICs as they appear (block devices
# also as they go or change size; on a non-root disk it reads, or writes, a marker: disk_marker
# below), and prints the line "ZENITH GUEST READY" on the serial console (ttyS0) at the
# end of every boot; with "zenith.dhcp" each NIC asks DHCP for its address, and "zenith.ping=<address>"
# reports whether that address answers (see rc.boot below). Kernel
# command line: "console=ttyS0 quiet panic=0" (file cmdline); add "zenith.noacpid" for a guest
# that ignores the ACPI power button.
#
# Idempotent: does nothing when the three files exist. Needs apt-get (to download two .deb files),
# dpkg-deb, gzip and qemu-img; not root. Zenith registers the pair as AKI/ARI images referenced by
# the root-disk image "zenith-guest" through its kernel_id/ramdisk_id properties.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${ZENITH_GUEST_DIR:-$ROOT/var/guest}"
# console=ttyS0: the serial console the driver logs to a file; quiet keeps kernel messages from
# interleaving with the marker line; panic=0 halts (no reboot loop) if /init ever dies.
GUEST_CMDLINE="console=ttyS0 quiet panic=0"
ROOT_DISK_SIZE="64M"
# Bump when the guest's content changes: a cache of another version is rebuilt.
GUEST_VERSION=6
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk
  failover net_failover virtio_net evdev button)

log() { echo "guest: $*" >&2; }
die() {
  log "$*"
  exit 1
}

built() {
  [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ] && [ -s "$OUT/root.qcow2" ] &&
    grep -qx "version=$GUEST_VERSION" "$OUT/manifest" 2>/dev/null
}

if built; then
  echo "$OUT"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb gzip qemu-img flock; do
  command -v "$tool" >/dev/null || die "cannot build the test guest: $tool is missing"
done

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
if built; then # another build finished while we waited for the lock
  echo "$OUT"
  exit 0
fi

START=$SECONDS
WORK="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

kernel_pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)"
if [ -z "$kernel_pkg" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  kernel_pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)"
fi
[ -n "$kernel_pkg" ] || die "no linux-image-*-cloud-amd64 package known to apt (apt-get update?)"

log "downloading $kernel_pkg and busybox-static"
(cd "$WORK" && apt-get download -q "$kernel_pkg" busybox-static >"$WORK/apt.log" 2>&1) ||
  die "apt-get download failed: $(tail -n3 "$WORK/apt.log")"
dpkg-deb -x "$WORK"/linux-image-*.deb "$WORK/kernel"
dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/busybox"

vmlinuz="$(ls "$WORK"/kernel/boot/vmlinuz-* | head -n1)"
moddir="$(ls -d "$WORK"/kernel/lib/modules/* | head -n1)"
busybox="$WORK/busybox/bin/busybox"
[ -f "$vmlinuz" ] && [ -d "$moddir" ] && [ -x "$busybox" ] || die "unexpected package contents"

# --- the initramfs tree -------------------------------------------------------------------
R="$WORK/initramfs"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/acpi/PWRF,proc,sys,dev,run,tmp,lib/modules}
cp "$busybox" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
ln -s bin/busybox "$R/init" # busybox init, driven by /etc/inittab

# Modules: uncompressed .ko (busybox insmod takes them as they are), loaded in dependency order
# as read from each module's own "depends=" field (the package ships no modules.dep).
declare -A seen=()
order=()
module_file() {
  find "$moddir" \( -name "$1.ko*" -o -name "${1//_/-}.ko*" \) -print -quit
}
add_module() {
  local m="$1" f dep deps
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  f="$(module_file "$m")"
  if [ -z "$f" ]; then
    grep -qE "/${m//_/[_-]}\.ko" "$moddir/modules.builtin" 2>/dev/null && return 0 # built in
    die "module $m is neither in $kernel_pkg nor built into it"
  fi
  case "$f" in
  *.ko.xz) xz -dc "$f" >"$R/lib/modules/$m.ko" ;;
  *.ko.zst) zstd -qdc "$f" >"$R/lib/modules/$m.ko" ;;
  *.ko.gz) gzip -dc "$f" >"$R/lib/modules/$m.ko" ;;
  *) cp "$f" "$R/lib/modules/$m.ko" ;;
  esac
  deps="$(grep -a -o 'depends=[A-Za-z0-9_,-]*' "$R/lib/modules/$m.ko" | head -n1 | cut -d= -f2)"
  for dep in ${deps//,/ }; do add_module "${dep//-/_}"; done
  order+=("$m")
}
for m in "${MODULES[@]}"; do add_module "$m"; done
printf '%s\n' "${order[@]}" >"$R/etc/modules"

cat >"$R/etc/inittab" <<'EOF'
::sysinit:/etc/rc.boot
::ctrlaltdel:/bin/busybox reboot -f
EOF

cat >"$R/etc/rc.boot" <<'EOF'
#!/bin/sh
# Boot of the Zenith test guest; everything it prints goes to the serial console.
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
hostname zenith-guest
for m in $(cat /etc/modules); do
  insmod "/lib/modules/$m.ko" || echo "zenith-guest: insmod $m failed"
done
# "zenith.noacpid" on the kernel command line makes a guest that ignores ACPI requests (to test
# the driver's fallbacks: reset after a soft reboot times out, destroy after a shutdown does).
case " $(cat /proc/cmdline) " in
*" zenith.noacpid "*) echo "zenith-guest: no acpid, ACPI requests are ignored" ;;
*) acpid -c /etc/acpi -l /tmp/acpid.log ;;
esac
ip link set lo up

# A disk other than the root disk carries a marker in its first sector: read it back
# ("ZENITH DISK DATA vdb <marker>"), or, on an empty disk, write the one "zenith.mark=<marker>" on
# the kernel command line names ("ZENITH DISK WROTE vdb <marker>"): the volume tests' data path.
# The root disk (vda, unused by this initramfs guest) does the same with "zenith.rootmark=<marker>":
# the snapshot tests' data path (a copy booted from a snapshot reads what its original wrote).
disk_marker() {
  data="$(dd if="/dev/$1" bs=512 count=1 2>/dev/null | tr -d '\000' | head -c 200)"
  case "$data" in
  ZENITH-MARK:*) echo "ZENITH DISK DATA $1 ${data#ZENITH-MARK:}" ;;
  *)
    mark="$(sed -n "s/.*zenith\.${2:-mark}=\([^ ]*\).*/\1/p" /proc/cmdline)"
    if [ -z "$mark" ]; then
      echo "ZENITH DISK EMPTY $1"
    elif printf 'ZENITH-MARK:%s\n' "$mark" | dd of="/dev/$1" bs=512 conv=sync,fsync 2>/dev/null; then
      sync
      echo "ZENITH DISK WROTE $1 $mark"
    else
      echo "ZENITH DISK WRITE FAILED $1"
    fi
    ;;
  esac
}

# "zenith.dhcp" on the kernel command line: each NIC asks DHCP for its address as it appears
# ("ZENITH DHCP eth0 10.0.0.5", or "ZENITH DHCP FAILED eth0"); "zenith.ping=<address>" pings that
# address every second and reports each change ("ZENITH PING <address> up" / "... down"): the
# real-host network tests read both on the console.
case " $(cat /proc/cmdline) " in
*" zenith.dhcp "*) dhcp=1 ;;
*) dhcp= ;;
esac
dhcp_nic() {
  ip link set "$1" up
  udhcpc -i "$1" -f -q -n -t 30 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1 || echo "ZENITH DHCP FAILED $1"
}
ping_loop() {
  state=
  while :; do
    if ping -c 1 -W 1 "$1" >/dev/null 2>&1; then now=up; else now=down; fi
    [ "$now" = "$state" ] || echo "ZENITH PING $1 $now"
    state=$now
    sleep 1
  done
}
target="$(sed -n 's/.*zenith\.ping=\([^ ]*\).*/\1/p' /proc/cmdline)"
if [ -n "$target" ]; then ping_loop "$target" & fi

# Report disks and NICs now and whenever one is added, disks also when they go or change size
# (attach/detach/extend tests read the console).
(
  known=" "
  while :; do
    for d in /sys/class/block/*; do
      [ -e "$d" ] || continue
      n="${d##*/}"
      size=$(( $(cat "$d/size") * 512 ))
      case "$known" in
      *" blk:$n "*)
        [ "$(cat "/tmp/size.$n")" = "$size" ] && continue
        echo "$size" >"/tmp/size.$n"
        echo "ZENITH DISK SIZE $n $size"
        continue
        ;;
      esac
      known="$known blk:$n "
      echo "$size" >"/tmp/size.$n"
      echo "ZENITH DISK $n $size"
      if [ "$n" = vda ]; then disk_marker vda rootmark; else disk_marker "$n"; fi
    done
    for entry in $known; do
      case "$entry" in blk:*) ;; *) continue ;; esac
      n="${entry#blk:}"
      [ -e "/sys/class/block/$n" ] && continue
      known="$(echo "$known" | sed "s/ blk:$n / /")"
      rm -f "/tmp/size.$n"
      echo "ZENITH DISK GONE $n"
    done
    for d in /sys/class/net/*; do
      n="${d##*/}"
      [ "$n" = lo ] && continue
      [ -e "$d" ] || continue
      case "$known" in *" net:$n "*) continue ;; esac
      known="$known net:$n "
      echo "ZENITH NIC $n $(cat "$d/address")"
      if [ -n "$dhcp" ]; then dhcp_nic "$n" & fi
    done
    sleep 0.5 # attach -> seen within the 2 s target; busybox sleeps in fractions
  done
) &
sleep 0.2
echo "ZENITH GUEST READY"
EOF
chmod +x "$R/etc/rc.boot"

# busybox acpid maps the power button (input event KEY_POWER) to PWRF and runs this file.
# busybox udhcpc's hook (zenith.dhcp): configure the address (and default route) it was given
# and say so.
cat >"$R/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
bound | renew)
  ip addr flush dev "$interface"
  ip addr add "$ip/$mask" dev "$interface"
  # The first NIC's router (its subnet's gateway) is the way to everything else: a floating IP's
  # outside callers are answered through it.
  if [ -n "${router:-}" ] && ! ip route show default | grep -q .; then
    ip route add default via "${router%% *}" dev "$interface"
  fi
  echo "ZENITH DHCP $interface $ip" >/dev/console
  ;;
esac
EOF
chmod +x "$R/etc/udhcpc.script"

cat >"$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "ZENITH GUEST POWEROFF" >/dev/console  # acpid runs us without a terminal
sync
poweroff -f
EOF
chmod +x "$R/etc/acpi/PWRF/00000080"

(cd "$R" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null | gzip -9 >"$WORK/initrd.img")

qemu-img create -q -f qcow2 "$WORK/root.qcow2" "$ROOT_DISK_SIZE"
cp "$vmlinuz" "$WORK/vmlinuz"
echo "$GUEST_CMDLINE" >"$WORK/cmdline"
{
  echo "version=$GUEST_VERSION"
  echo "kernel_package=$kernel_pkg"
  echo "modules=${order[*]}"
  echo "cmdline=$GUEST_CMDLINE"
} >"$WORK/manifest"

# The manifest last: "built" checks it, so a half-copied cache never counts as built.
for f in cmdline vmlinuz initrd.img root.qcow2 manifest; do mv -f "$WORK/$f" "$OUT/$f"; done
log "built in $((SECONDS - START))s: $OUT ($kernel_pkg)"
echo "$OUT"
