#!/usr/bin/env bash
# Makes a development PKI in DIR: a CA, a server certificate for localhost/127.0.0.1/::1, a client
# certificate for node edge-1, and a client certificate from an unrelated "rogue" CA (for tests).
# ECDSA P-256, valid 2 days. Used by tests, channel-bench and `make run`.
set -euo pipefail
dir=${1:?usage: dev-certs.sh DIR}
mkdir -p "$dir" && cd "$dir"
cat > ext.cnf <<'CNF'
[server]
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth
[client]
extendedKeyUsage=clientAuth
CNF
ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" 2>/dev/null; }
leaf() { # name subject ca extension
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" -days 2 -extfile ext.cnf -extensions "$4" 2>/dev/null
}
ca ca
ca rogue-ca
leaf server /CN=cloudcore ca server
leaf client "/CN=system:node:edge-1/O=system:nodes" ca client
leaf rogue "/CN=system:node:edge-1/O=system:nodes" rogue-ca client
