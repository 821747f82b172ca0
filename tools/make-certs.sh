#!/bin/sh
# Creates a throwaway CA and the certificates of a local TLS cluster with the
# openssl command: for trying TLS out and for the tests, not for production
# (the CA key lies next to the certificates, unencrypted).
#
#   tools/make-certs.sh [DIR] [--test]      (`make certs`: DIR = data/certs)
#
#   ca.crt                      the CA every node and client trusts (tls_ca)
#   node1..3.{crt,key}          nodes: CN=nodeN, SAN DNS:nodeN, DNS:peer.raftkit,
#                               IP:127.0.0.1 (tls_peer_names = peer.raftkit)
#   admin.{crt,key}             CN=admin.raftkit (tls_admin_names = admin.raftkit)
#   client.{crt,key}            CN=client.raftkit: application clients
#   cluster.key                 two random 32-byte keys, for cluster-key mode
#
# --test adds certificates that must be refused: other-ca.crt and
# stranger.{crt,key} (node names, signed by another CA), wrongname.{crt,key}
# (right CA, no node name), expired.{crt,key} and notyet.{crt,key} (node
# names, validity in the past / in the future).
set -eu
dir=${1:-data/certs}
extras=no
[ "${2:-}" = "--test" ] && extras=yes
command -v openssl >/dev/null || { echo "make-certs: needs the openssl command (Debian: openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

newkey() { # name subject
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
        -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    chmod 600 "$1.key"
}

mkca() { # name cn
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
        -out "$1.crt" -days 3650 -subj "/CN=$2" 2>/dev/null
    chmod 600 "$1.key"
}

ext() { # name san
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$2" >"$1.ext"
}

sign() { # name ca cn san
    newkey "$1" "$3"
    ext "$1" "$4"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 825 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

# Certificates with a chosen validity need `openssl ca` (x509 -req only
# counts days from now).
sign_dated() { # name cn san start end
    newkey "$1" "$2"
    ext "$1" "$3"
    : >index.txt
    echo 1000 >serial
    cat >ca.cnf <<CNF
[ca]
default_ca = tca
[tca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = pol
unique_subject = no
[pol]
commonName = supplied
CNF
    openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in "$1.csr" -out "$1.crt" \
        -startdate "$4" -enddate "$5" -extfile "$1.ext" -notext 2>/dev/null
    rm -f "$1.csr" "$1.ext" index.txt* serial* ca.cnf 1000.pem
}

mkca ca "raftkit throwaway CA"
for i in 1 2 3; do
    sign "node$i" ca "node$i" "DNS:node$i,DNS:peer.raftkit,IP:127.0.0.1"
done
sign admin ca admin.raftkit "DNS:admin.raftkit"
sign client ca client.raftkit "DNS:client.raftkit"
{
    echo "# cluster keys: nodes accept every key listed and use the first"
    openssl rand -hex 32
    openssl rand -hex 32
} >cluster.key
chmod 600 cluster.key

if [ "$extras" = yes ]; then
    mkca other-ca "another CA"
    sign stranger other-ca node9 "DNS:node9,DNS:peer.raftkit,IP:127.0.0.1"
    sign wrongname ca wrong.example "DNS:wrong.example"
    sign_dated expired node8 "DNS:node8,DNS:peer.raftkit,IP:127.0.0.1" 20200101000000Z 20200201000000Z
    sign_dated notyet node7 "DNS:node7,DNS:peer.raftkit,IP:127.0.0.1" 20990101000000Z 20991231000000Z
fi
rm -f ./*.srl
echo "make-certs: certificates in $dir"
