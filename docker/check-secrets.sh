#!/bin/sh
# Start-up check of the production stack (the `preflight` service of docker-compose.yml; runs before
# Kafka and PostgreSQL start). Refuses, naming each problem, any required secret that is empty,
# shorter than its minimum, a placeholder ("change-me", ...) or a value an example file once shipped:
# such a stack would let in anyone who has read the example. Exit 0 when every secret is usable.
#
# Usable values come from, for example:
#   openssl rand -hex 32                                         (passwords and secret keys)
#   python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
#                                                                (AIRFLOW_FERNET_KEY)
# Run it by hand with the variables of .env:  set -a; . ./.env; set +a; sh docker/check-secrets.sh
set -u

problems=0

refuse() {
    echo "preflight: $1: $2" >&2
    problems=$((problems + 1))
}

lower() {
    printf '%s' "$1" | tr '[:upper:]' '[:lower:]'
}

# Values that were shipped as examples by earlier versions of .env.example, and common placeholders.
is_example() {
    case "$(lower "$1")" in
        *change-me* | *changeme* | *change_me* | *replace-me* | *replaceme* | *example* | *placeholder* \
            | *your-* | *xxxxxx* | password | password1 | passw0rd | secret | admin | airflow | postgres \
            | kafka | loyalty | test | 123456* | qwerty*)
            return 0 ;;
        qz5ja7mie6l8yllxwgos4lgkktygp7-sk8tzoosdoyk=)  # the Fernet key an earlier .env.example shipped
            return 0 ;;
    esac
    return 1
}

# check NAME MIN_LENGTH [optional]
check() {
    name=$1
    minimum=$2
    eval "value=\${$name-}"
    if [ -z "$value" ]; then
        if [ "${3-}" != optional ]; then
            refuse "$name" "is empty; set it in .env (see .env.example for how to generate one)"
        fi
        return
    fi
    if is_example "$value"; then
        refuse "$name" "is an example or placeholder value; set a real secret (to generate one: openssl rand -hex 32)"
    elif [ "${#value}" -lt "$minimum" ]; then
        refuse "$name" "is shorter than $minimum characters; generate a longer one (openssl rand -hex 32)"
    fi
}

check AIRFLOW_ADMIN_PASSWORD 12
check POSTGRES_PASSWORD 12
check AIRFLOW_API_SECRET_KEY 32
check AIRFLOW_JWT_SECRET 32
check KAFKA_CLIENT_PASSWORD 12
check LOYALTY_WEB_SIGNING_KEYS 32
check KAFKA_SSL_KEYSTORE_PASSWORD 12
check LOYALTY_SMTP_PASSWORD 8 optional
# The PostgreSQL warehouse (profile "scale"): its server does not even initialise without a password,
# and the pipeline logs in with it (LOYALTY_PG_PASSWORD), so it is required once the pipeline uses it.
if [ "$(lower "${LOYALTY_DBT_TARGET-}")" = postgres ]; then
    check WAREHOUSE_DB_PASSWORD 12
else
    check WAREHOUSE_DB_PASSWORD 12 optional
fi

# A Fernet key is 32 bytes in URL-safe base64: 43 characters and a final "=".
fernet=${AIRFLOW_FERNET_KEY-}
if [ -z "$fernet" ]; then
    refuse AIRFLOW_FERNET_KEY "is empty; generate one with: python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\""
elif is_example "$fernet"; then
    refuse AIRFLOW_FERNET_KEY "is the example key of an earlier .env.example; generate your own"
elif ! printf '%s' "$fernet" | grep -Eq '^[A-Za-z0-9_-]{43}=$'; then
    refuse AIRFLOW_FERNET_KEY "is not a Fernet key (32 bytes, URL-safe base64, 44 characters)"
fi

# The Kafka client password goes into kafka-configs' "SCRAM-SHA-512=[password=...]" syntax.
case "${KAFKA_CLIENT_PASSWORD-}" in
    *[,\[\]\"\'\ =]*) refuse KAFKA_CLIENT_PASSWORD "must not contain , [ ] = quotes or spaces (openssl rand -hex 32)" ;;
esac

if [ "$problems" -gt 0 ]; then
    echo "preflight: refusing to start the stack: $problems secret(s) above must be set in .env first" >&2
    exit 1
fi
echo "preflight: secrets set"
