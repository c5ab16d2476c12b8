#!/usr/bin/env bash
# `make run`: a cloud and one edge on this machine, on their embedded defaults. Starts a
# mosquitto broker (unless one listens on 1883), cloudcore with the embedded API server
# (`keadm init`), and one edgecore joined with a bootstrap token (`keadm join`); prints the
# kubectl commands to try, and on Ctrl-C stops everything (`keadm reset`). State lives in
# .run/ (kept between runs: objects, CA, node certificate; `rm -rf .run` starts afresh).
set -euo pipefail
bin=${1:?usage: demo.sh BIN-DIRECTORY}
here=$(pwd)
state=$here/.run
cloud=$state/cloud
edge=$state/edge
node=${NODE_NAME:-edge-demo}
mkdir -p "$state"

broker_pid=""
cleanup() {
  echo
  echo "Stopping…"
  "$bin/keadm" reset --edge --data-dir "$edge" --keep-data || true
  "$bin/keadm" reset --data-dir "$cloud" --keep-data || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "mosquitto: using the broker already on 127.0.0.1:1883"
else
  mosquitto -p 1883 > "$state/mosquitto.log" 2>&1 &
  broker_pid=$!
  echo "mosquitto: started on 127.0.0.1:1883 (pid $broker_pid)"
fi

"$bin/keadm" init --data-dir "$cloud"
token=$("$bin/keadm" gettoken --data-dir "$cloud")
"$bin/keadm" join --data-dir "$edge" --cloudcore-ipport 127.0.0.1:10000 --token "$token" --edgenode-name "$node"

kubeconfig=$cloud/apiserver/admin.kubeconfig
cat <<TEXT

The cloud and the edge are up. In another terminal:

export KUBECONFIG=$kubeconfig
kubectl get nodes                       # $node, Ready, role edge
kubectl create configmap greeting --from-literal=message='hello edge'
kubectl apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "while true; do echo \$MESSAGE; sleep 5; done"]
        env: [{name: MESSAGE, valueFrom: {configMapKeyRef: {name: greeting, key: message}}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      nodeSelector: {node-role.kubernetes.io/edge: ""}
      containers: [{name: agent, image: busybox, command: ["sleep", "infinity"]}]
YAML
kubectl rollout status deployment/hello   # scheduled, run and reported by the edge
kubectl get deploy,rs,ds,pods -o wide     # Running on $node; one node-agent per edge node
kubectl set env deployment/hello MESSAGE=hi && kubectl rollout status deployment/hello
kubectl rollout undo deployment/hello
curl -s 127.0.0.1:10550/api/v1/namespaces/default/pods   # the edge's own store (MetaServer)

Logs: $cloud/cloudcore.log and $edge/edgecore.log. Ctrl-C stops everything.
TEXT
# wait returns as soon as a trapped signal arrives (a foreground sleep would delay the trap).
while true; do sleep 3600 & wait $!; done
