#!/bin/sh
# A containerd of its own under DIR (root, state, socket DIR/containerd.sock), with the CRI
# plugin on runc, the settings this machine needs (restrict_oom_score_adj) and a loopback-only
# CNI network; the busybox image from busybox-image.sh serves as the sandbox image.
#   local-containerd.sh config DIR   writes DIR/config.toml and DIR/cni/ only
#   local-containerd.sh start DIR    also starts containerd in the background (log: DIR/containerd.log)
#                                    and imports the image; prints the endpoint
#   local-containerd.sh stop DIR     removes every pod, stops containerd and its shims, unmounts
set -eu
mode=$1
dir=$2
image=localhost/edged-busybox:1
here=$(cd "$(dirname "$0")" && pwd)
case "$mode" in
config|start)
  mkdir -p "$dir/cni"
  cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$image"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
TOML
  echo '{"cniVersion":"0.4.0","name":"edged-loopback","plugins":[{"type":"loopback"}]}' > "$dir/cni/10-loopback.conflist"
  [ "$mode" = config ] && exit 0
  nohup containerd --config "$dir/config.toml" > "$dir/containerd.log" 2>&1 &
  echo $! > "$dir/containerd.pid"
  for _ in $(seq 1 300); do [ -S "$dir/containerd.sock" ] && break; sleep 0.1; done
  "$here/busybox-image.sh" "$dir/busybox.tar" "$image"
  ctr --address "$dir/containerd.sock" -n k8s.io images import "$dir/busybox.tar" > /dev/null
  echo "unix://$dir/containerd.sock"
  ;;
stop)
  sock="$dir/containerd.sock"
  if [ -S "$sock" ]; then
    for c in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do ctr --address "$sock" -n k8s.io tasks kill -s KILL "$c" 2>/dev/null || true; done
  fi
  [ -f "$dir/containerd.pid" ] && kill -9 "$(cat "$dir/containerd.pid")" 2>/dev/null || true
  pkill -9 -f -- "-address $sock" 2>/dev/null || true
  grep -o " $dir[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$dir"
  ;;
*) echo "usage: $0 config|start|stop DIR" >&2; exit 2 ;;
esac
