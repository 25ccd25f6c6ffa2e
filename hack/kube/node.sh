#!/usr/bin/env bash
# One Kubernetes node for the kubelet tier (test/e2e/kubelet.test.ts, driven by hack/kube/node.ts): containerd and
# the kubelet, started in the current network namespace (a testbed node's: hostNetwork pods get the network of
# containerd, so the agent pod sees that node's eth0) and in a mount namespace of their own, which this script
# expects to have been made for it (`nsenter --net=... unshare --mount --propagation private bash node.sh DIR`).
# In it, a tmpfs holds containerd's and the kubelet's state and others are /run/vipwarden (the agent's hostPath) and /var/log/pods,
# so that nodes on one machine share nothing, and all of it goes away with the namespace.
#
#   DIR/containerd.toml, DIR/kubelet.yaml, DIR/kubelet.kubeconfig, DIR/kubelet.args (argv, one a line, the binary
#   first), DIR/cgroup-root: written by node.ts
#   DIR/images/*.tar: OCI archives imported into containerd's k8s.io namespace before the kubelet starts
#   DIR/containerd.log, DIR/kubelet.log: the logs; DIR/ready once the images are in and the kubelet started
set -euo pipefail
dir="$1"
log() { printf '[kube/node] %s\n' "$*" >&2; }

# Into the node's cgroup (made by node.ts under the kubelet's cgroupRoot): containerd's shims land there too, so
# that node.ts finds and kills every process of the node, containers included, from the cgroup tree alone.
root="$(cat "${dir}/cgroup-root")"
for h in /sys/fs/cgroup/*/; do [[ -d "${h}${root#/}/node" ]] && echo $$ >"${h}${root#/}/node/cgroup.procs"; done
mkdir -p /run/vipwarden /run/containerd /var/log/pods /var/log/containers "${dir}/fs"
mount -t tmpfs -o mode=0750 tmpfs /run/vipwarden
mount -t tmpfs -o mode=0711 tmpfs /run/containerd
# The kubelet writes container logs here (no setting moves them in 1.37).
mount -t tmpfs -o mode=0755 tmpfs /var/log/pods
mount -t tmpfs -o mode=0755 tmpfs /var/log/containers
mount -t tmpfs -o mode=0755 tmpfs "${dir}/fs"
mkdir -p "${dir}/fs/containerd" "${dir}/fs/containerd-state" "${dir}/fs/kubelet"
sock="${dir}/fs/containerd-state/containerd.sock"

pids=()
stop() {
  trap - TERM INT EXIT
  ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null
  wait
  exit 0
}
trap stop TERM INT EXIT

# Children die with this script (setpriv --pdeathsig), even when it is SIGKILLed.
setpriv --pdeathsig SIGKILL -- containerd --config "${dir}/containerd.toml" >>"${dir}/containerd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  ctr --address "${sock}" version >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { log "containerd exited; ${dir}/containerd.log"; exit 1; }
  sleep 0.2
done
ctr --address "${sock}" version >/dev/null || { log "containerd did not answer in 30 s"; exit 1; }

start=${SECONDS}
for f in "${dir}"/images/*.tar; do
  timeout 300 ctr --address "${sock}" -n k8s.io images import --snapshotter overlayfs "${f}" >&2
done
log "images imported in $((SECONDS - start)) s"

mapfile -t args <"${dir}/kubelet.args"
setpriv --pdeathsig SIGKILL -- "${args[@]}" >>"${dir}/kubelet.log" 2>&1 &
pids+=($!)
touch "${dir}/ready"
wait -n
log "containerd or the kubelet exited"
exit 1
