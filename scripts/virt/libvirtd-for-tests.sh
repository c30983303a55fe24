#!/bin/bash
# libvirtd-for-tests.sh - make qemu:///system answer for the real-boot test (Tests/CustosVirtTests/RealBootTests.swift),
# starting a libvirt daemon only when none answers, and stop only a daemon this script started.
#
# usage: libvirtd-for-tests.sh start DIR   prints "existing" (a daemon already answers) or "started PID"
#        libvirtd-for-tests.sh stop DIR    stops the daemon that `start DIR` started (DIR/libvirtd.pid), if any
#
# DIR is a private directory (the test's temp dir) for the daemon's configuration, log and pid file.
# When the system's libvirt configuration is installed (libvirt-daemon-system: /etc/libvirt/qemu.conf and the
# libvirt-qemu user), the daemon runs with it. Otherwise (only libvirt-daemon + libvirt-daemon-driver-qemu, as
# `make test` installs them) the daemon runs in a private mount namespace where DIR/etc is /etc/libvirt, with a
# qemu.conf that runs QEMU as root without a security driver, and where /etc/passwd and /etc/group name the
# libvirt-qemu user the QEMU driver looks up at start; nothing on the host is changed. Needs root and util-linux.
# Exit status: 0 ok, 1 the daemon did not come up (its log is printed), 2 usage.
set -euo pipefail
# swift test ignores SIGTERM and children inherit that; re-exec with default dispositions so the daemon (and the
# QEMU it starts) can be stopped.
if [ -z "${CUSTOS_LIBVIRTD_SIGNALS_RESET:-}" ]; then exec env --default-signal CUSTOS_LIBVIRTD_SIGNALS_RESET=1 "$0" "$@"; fi
[ $# = 2 ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
ACTION=$1 DIR=$2
URI=qemu:///system
answers() { virsh -c "$URI" version >/dev/null 2>&1; }
# The daemon must not inherit the caller's descriptors: Foundation's Process waits until every copy of a socket it
# gives the child is closed, so a daemon holding one would keep the test waiting for it to exit.
close_fds() { local fd; for fd in $(ls "/proc/$BASHPID/fd"); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; return 0; }

case $ACTION in
  start)
    if answers; then echo existing; exit 0; fi
    mkdir -p "$DIR"
    LOG=$DIR/libvirtd.log PID=$DIR/libvirtd.pid
    : > "$LOG"
    rm -f "$PID"
    if [ -f /etc/libvirt/qemu.conf ] && getent passwd libvirt-qemu >/dev/null; then
      printf 'log_outputs = "3:file:%s"\n' "$LOG" > "$DIR/libvirtd.conf"
      (close_fds; exec libvirtd --daemon --config "$DIR/libvirtd.conf" --pid-file "$PID" </dev/null >/dev/null 2>&1)
    else
      mkdir -p "$DIR/etc"
      for f in /etc/libvirt/*.conf; do [ -f "$f" ] && cp "$f" "$DIR/etc/"; done
      printf 'log_outputs = "3:file:%s"\n' "$LOG" > "$DIR/etc/libvirtd.conf"
      cat > "$DIR/etc/qemu.conf" <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
namespaces = []
EOF
      cp /etc/passwd "$DIR/passwd"; cp /etc/group "$DIR/group"
      getent passwd libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >> "$DIR/passwd"
      getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >> "$DIR/group"
      (close_fds; D=$DIR exec unshare --mount --propagation private sh -c '
        mount --bind "$D/etc" /etc/libvirt && mount --bind "$D/passwd" /etc/passwd && mount --bind "$D/group" /etc/group &&
        exec libvirtd --daemon --config /etc/libvirt/libvirtd.conf --pid-file "$D/libvirtd.pid"' </dev/null >/dev/null 2>&1)
    fi
    for _ in $(seq 1 150); do
      if [ -s "$PID" ] && answers; then echo "started $(cat "$PID")"; exit 0; fi
      sleep 0.2
    done
    echo "libvirtd did not answer on $URI within 30 s; its log:" >&2
    cat "$LOG" >&2
    [ -s "$PID" ] && kill "$(cat "$PID")" 2>/dev/null
    exit 1
    ;;
  stop)
    PID=$DIR/libvirtd.pid
    [ -s "$PID" ] || exit 0
    pid=$(cat "$PID")
    kill "$pid" 2>/dev/null || exit 0
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
