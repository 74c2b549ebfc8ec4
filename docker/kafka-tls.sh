#!/bin/sh
# The TLS certificate of the Kafka broker's EXTERNAL listener (SASL_SSL, docker-compose.yml), signed
# by a private CA made here. Run once before `docker compose up`, and again when the host name
# changes or the certificate nears its end (825 days):
#
#   set -a; . ./.env; set +a          # KAFKA_SSL_KEYSTORE_PASSWORD, KAFKA_EXTERNAL_HOST
#   sh docker/kafka-tls.sh [HOST_OR_IP ...]   (default: KAFKA_EXTERNAL_HOST, else localhost)
#
# Writes into docker/kafka-tls/ (KAFKA_TLS_DIR), which git and the image build ignore:
#   ca.pem      the CA certificate: give it to producers (LOYALTY_SSL_CAFILE, ssl.ca.location)
#   ca.key      the CA's private key (mode 0600; stays here, never mounted into a container)
#   broker.p12  the broker's key and certificate chain, PKCS#12 encrypted with
#               KAFKA_SSL_KEYSTORE_PASSWORD (mode 0644: the broker runs as another user)
# An existing CA is reused, so producers keep trusting the new certificate.
set -eu

: "${KAFKA_SSL_KEYSTORE_PASSWORD:?set KAFKA_SSL_KEYSTORE_PASSWORD (the keystore password, as in .env)}"
dir=${KAFKA_TLS_DIR:-$(dirname "$0")/kafka-tls}
if [ "$#" -eq 0 ]; then
    set -- "${KAFKA_EXTERNAL_HOST:-localhost}"
fi

san=""
for host in "$@"; do
    if printf '%s' "$host" | grep -Eq '^[0-9.]+$|:'; then
        entry="IP:$host"
    else
        entry="DNS:$host"
    fi
    san="${san:+$san,}$entry"
done

umask 077
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -s "$dir/ca.key" ] || [ ! -s "$dir/ca.pem" ]; then
    openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 -subj "/CN=Loyalty Monitor Kafka CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi
openssl req -newkey rsa:3072 -nodes -sha256 -subj "/CN=$1" -keyout "$work/broker.key" \
    -out "$work/broker.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
    "$san" > "$work/ext.cnf"
openssl x509 -req -sha256 -days 825 -in "$work/broker.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$work/ca.srl" -extfile "$work/ext.cnf" -out "$work/broker.pem" 2>/dev/null
openssl pkcs12 -export -name kafka -in "$work/broker.pem" -inkey "$work/broker.key" -certfile "$dir/ca.pem" \
    -passout env:KAFKA_SSL_KEYSTORE_PASSWORD -out "$dir/broker.p12"
chmod 0644 "$dir/ca.pem" "$dir/broker.p12"
chmod 0600 "$dir/ca.key"
echo "kafka-tls: $dir/broker.p12 for $san; producers trust $dir/ca.pem"
