#!/usr/bin/env bash
# gen-test-certs.sh DIR - throw-away certificates for trying TLS out and for
# the tests (never for production: the keys are unencrypted and short-lived).
#
# Writes into DIR (created if missing):
#   ca.crt ca.key          a test CA ("ringmq test CA")
#   server.crt server.key  the server's certificate, signed by it, for
#                          localhost and 127.0.0.1 (serverAuth)
#   client.crt client.key  a client certificate signed by it (clientAuth),
#                          for --tls-auth-clients yes|optional
#   other-ca.crt           a second CA, which the server does not trust, and
#   other.crt other.key    a client certificate signed by that one
#
# Keys are ECDSA P-256 (quick to make); certificates last DAYS days
# (default 2). Needs the openssl command-line tool.
#
#   scripts/gen-test-certs.sh /tmp/ringmq-tls
#   ringmq-server --tls-port 6380 --tls-cert-file /tmp/ringmq-tls/server.crt \
#     --tls-key-file /tmp/ringmq-tls/server.key --tls-ca-cert-file /tmp/ringmq-tls/ca.crt
#   redis-cli -p 6380 --tls --cacert /tmp/ringmq-tls/ca.crt \
#     --cert /tmp/ringmq-tls/client.crt --key /tmp/ringmq-tls/client.key PING
set -euo pipefail
if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
	exit $(( $# < 1 ? 2 : 0 ))
fi
dir=$1
days=${DAYS:-2}
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME CN: a self-signed CA
ca() {
	key "$1.key"
	openssl req -x509 -new -key "$1.key" -days "$days" -subj "/CN=$2" -out "$1.crt" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf NAME CA CN EXTENSIONS: a certificate signed by CA
leaf() {
	key "$1.key"
	openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr" 2>/dev/null
	printf '%b' "$4" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
		-days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

ca ca "ringmq test CA"
leaf server ca localhost \
	"subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
leaf client ca ringmq-test-client \
	"extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
ca other-ca "ringmq other CA"
leaf other other-ca ringmq-other-client \
	"extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
rm -f ca.srl other-ca.srl other-ca.key
chmod 644 ./*.crt
