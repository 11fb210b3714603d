#!/usr/bin/env bash
# Local Apache Kafka (KRaft) for development, the demo and CI, built from the
# Maven Central artifacts (no Docker, no release tarball).
#
#   deploy/kafka/kafka.sh fetch                 resolve the broker jars into .cache/kafka/<version>/libs
#   deploy/kafka/kafka.sh start  [--port P]     single node on 127.0.0.1:P (default 9092)
#        [--sasl-ssl-port S]                    and a SASL_SSL listener on 127.0.0.1:S: SCRAM-SHA-512,
#                                               SCRAM-SHA-256 and PLAIN, TLS from a local CA
#                                               (<state>/kafka-single/tls/ca.pem), user KAFKA_SCRAM_USER /
#                                               KAFKA_SCRAM_PASSWORD (crisiswatch / crisiswatch-local);
#                                               and OAUTHBEARER: RS256 tokens signed with tls/oauth.key
#                                               (checked against tls/jwks.json; aud crisiswatch-kafka,
#                                               iss crisiswatch-local-idp, the principal is their sub)
#                                               With either secured listener ACLs are enforced: that user,
#                                               its certificate and PLAINTEXT are super users; the PLAIN
#                                               user "guest" (same password) may do what it is granted
#        [--ssl-port T]                         and an SSL listener on 127.0.0.1:T that requires a client
#                                               certificate signed by that CA (tls/client.pem, tls/client.key)
#   deploy/kafka/kafka.sh stop | status | logs
#   deploy/kafka/kafka.sh cluster-start [--port P]   three nodes on P, P+1, P+2 (default 19092)
#   deploy/kafka/kafka.sh cluster-stop | cluster-status
#   deploy/kafka/kafka.sh node-stop N | node-kill N | node-start N   one cluster node (1..3), for fault tests
#   deploy/kafka/kafka.sh reset                 stop everything and delete the data directories
#
# Environment: KAFKA_PORT, KAFKA_CLUSTER_PORT, KAFKA_HOME_DIR (data, logs and pid
# files, default <project>/.cache), KAFKA_LIBS_ROOT (jar cache, default <project>/.cache), KAFKA_HEAP (default 512m single / 384m per cluster node),
# KAFKA_JVM_OPTS (more JVM flags, appended: e.g. "-XX:+AlwaysPreTouch"), KAFKA_START_TIMEOUT (seconds, default 90),
# KAFKA_EXTRA_PROPERTIES (server.properties lines appended last, e.g. "connections.max.reauth.ms=60000").
# Every command is idempotent: start on a running broker says so and exits 0.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$(cd "$here/../.." && pwd)"
state="${KAFKA_HOME_DIR:-$project/.cache}"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
libs_root="${KAFKA_LIBS_ROOT:-$project/.cache}"
libs="$libs_root/kafka/$version/libs"
timeout_s="${KAFKA_START_TIMEOUT:-90}"

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*"; }

need_java() {
  command -v java >/dev/null || die "java not found; install OpenJDK 17 or newer (apt-get install openjdk-17-jre-headless)"
}

fetch() {
  if [[ -f "$libs/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found; install Maven (apt-get install maven) to fetch the broker jars"
  say "fetching Apache Kafka $version and its runtime dependencies from Maven Central into $libs"
  local tmp="$libs.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$libs_root/kafka/fetch.log" 2>&1; then
    rm -rf "$tmp"
    die "Maven could not resolve the broker artifacts; see $libs_root/kafka/fetch.log"
  fi
  # kafka_2.13 drags in slf4j-api 1.7 as well; keep only the 2.x the log4j binding needs.
  find "$tmp" -name 'slf4j-api-1.*.jar' -delete
  rm -rf "$libs"
  mv "$tmp" "$libs"
  touch "$libs/.complete"
  say "fetched $(ls "$libs"/*.jar | wc -l) jars"
}

classpath() { echo "$libs/*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# node_running NODE_DIR: its broker's process is alive.
node_running() { [[ -f "$1/pid" ]] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

# write_config NODE_DIR NODE_ID PORT CONTROLLER_PORT VOTERS REPLICATION
# [SASL_SSL_PORT [SSL_PORT]]: also a SASL_SSL listener there, and an SSL listener that
# requires a client certificate (secure_material must have run for either).
write_config() {
  local dir="$1" id="$2" port="$3" cport="$4" voters="$5" rf="$6" sport="${7:-}" tport="${8:-}" minisr
  local listeners="PLAINTEXT://127.0.0.1:$port" map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  minisr=$(( rf > 1 ? 2 : 1 ))
  if [[ -n "$sport" ]]; then
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
    map="$map,SASL_SSL:SASL_SSL"
  fi
  if [[ -n "$tport" ]]; then
    listeners="$listeners,SSL://127.0.0.1:$tport"
    map="$map,SSL:SSL"
  fi
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<EOF
# Written by deploy/kafka/kafka.sh; regenerated on every start.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$map
log.dirs=$dir/data
num.partitions=4
default.replication.factor=$rf
min.insync.replicas=$minisr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$minisr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
log.segment.bytes=67108864
message.max.bytes=4194304
replica.fetch.max.bytes=4194304
EOF
  if [[ -n "$sport" ]]; then
    # PLAIN's users are in the listener's JAAS line (this file is for a local broker only);
    # the SCRAM users are written into the metadata log when the storage is formatted.
    # OAUTHBEARER: Kafka 4.1's default validator (DefaultJwtValidator, built without a key
    # resolver) checks no signature at all, only the claims; BrokerJwtValidator checks the
    # signature against the key set, and the audience and issuer.
    cat >>"$dir/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN,OAUTHBEARER
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$scram_user="$scram_password" user_guest="$scram_password";
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
sasl.oauthbearer.jwks.endpoint.url=file://$dir/tls/jwks.json
sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator
sasl.oauthbearer.expected.audience=$oauth_audience
sasl.oauthbearer.expected.issuer=$oauth_issuer
EOF
  fi
  if [[ -n "$sport" || -n "$tport" ]]; then
    # ACLs are enforced for everyone but the super users: the PLAINTEXT listener's
    # ANONYMOUS, the SCRAM/PLAIN user and its client certificate. "guest" (PLAIN, the
    # same password) may do only what it is granted.
    cat >>"$dir/server.properties" <<EOF
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:$scram_user;User:CN=$scram_user
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/tls/server.p12
ssl.keystore.password=$(cat "$dir/tls/keystore.password")
EOF
  fi
  if [[ -n "$tport" ]]; then
    cat >>"$dir/server.properties" <<EOF
listener.name.ssl.ssl.client.auth=required
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$dir/tls/ca.pem
EOF
  fi
  if [[ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]]; then
    # Last, so that they override: e.g. connections.max.reauth.ms for a fault test.
    printf '%s\n' "# KAFKA_EXTRA_PROPERTIES" "$KAFKA_EXTRA_PROPERTIES" >>"$dir/server.properties"
  fi
}

# secure_material NODE_DIR: a local CA, a server certificate for 127.0.0.1 and
# localhost signed by it (a PKCS12 keystore for the broker) and a client certificate
# (CN = the SCRAM user), once per state folder.
secure_material() {
  local tls="$1/tls" pw
  [[ -f "$tls/server.p12" && -f "$tls/client.pem" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found; install it (apt-get install openssl) for --sasl-ssl-port/--ssl-port"
  mkdir -p "$tls"
  pw="$(openssl rand -hex 16)"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=crisiswatch local CA" \
      -keyout "$tls/ca.key" -out "$tls/ca.pem" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$tls/server.key" -out "$tls/server.csr" &&
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$tls/server.ext" &&
    openssl x509 -req -days 3650 -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
      -CAcreateserial -extfile "$tls/server.ext" -out "$tls/server.pem" &&
    openssl pkcs12 -export -in "$tls/server.pem" -inkey "$tls/server.key" -certfile "$tls/ca.pem" \
      -name broker -out "$tls/server.p12.tmp" -passout "pass:$pw" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$scram_user" \
      -keyout "$tls/client.key" -out "$tls/client.csr" &&
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >"$tls/client.ext" &&
    openssl x509 -req -days 3650 -in "$tls/client.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
      -CAcreateserial -extfile "$tls/client.ext" -out "$tls/client.pem"
  } >"$tls/openssl.log" 2>&1 || die "making the TLS material failed; see $tls/openssl.log"
  echo "$pw" >"$tls/keystore.password"
  mv "$tls/server.p12.tmp" "$tls/server.p12"
}

# oauth_material NODE_DIR: the signing key of a local OAuth identity provider
# (tls/oauth.key, RS256) and the key set the broker checks tokens against
# (tls/jwks.json). Whoever holds the key may issue tokens: for local use only.
oauth_material() {
  local tls="$1/tls" n
  [[ -f "$tls/jwks.json" && -f "$tls/oauth.key" ]] && return 0
  mkdir -p "$tls"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tls/oauth.key.tmp" \
    >>"$tls/openssl.log" 2>&1 || die "making the OAuth signing key failed; see $tls/openssl.log"
  # The modulus, big-endian bytes, base64url without padding (RFC 7518 6.3.1); e is 65537.
  n="$(openssl rsa -in "$tls/oauth.key.tmp" -noout -modulus | cut -d= -f2 | basenc --base16 -d \
    | basenc --base64url -w0 | tr -d '=')"
  [[ -n "$n" ]] || die "reading the OAuth signing key failed"
  printf '{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"%s","n":"%s","e":"AQAB"}]}\n' \
    "$oauth_kid" "$n" >"$tls/jwks.json"
  mv "$tls/oauth.key.tmp" "$tls/oauth.key"
}

# start_node NODE_DIR CLUSTER_ID PORT HEAP
start_node() {
  local dir="$1" cid="$2" port="$3" heap="$4"
  need_java
  if node_running "$dir"; then
    say "broker on 127.0.0.1:$port already running (pid $(cat "$dir/pid"))"
    return 0
  fi
  if port_open "$port"; then
    die "port $port is already in use by another process; choose another with --port"
  fi
  local scram=()
  if grep -q '^sasl.enabled.mechanisms=SCRAM' "$dir/server.properties"; then
    # SCRAM users live in the metadata log: they are written when the storage is formatted.
    scram=(--add-scram "SCRAM-SHA-512=[name=$scram_user,password=$scram_password]"
      --add-scram "SCRAM-SHA-256=[name=$scram_user,password=$scram_password]")
    if [[ -f "$dir/data/meta.properties" && "$(cat "$dir/scram.user" 2>/dev/null)" != "$scram_user" ]]; then
      die "the storage in $dir was formatted without the SCRAM user $scram_user; run 'kafka.sh reset' first"
    fi
  fi
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    java -cp "$(classpath)" -Dlog4j2.configurationFile="$here/log4j2.xml" -Dkafka.logs.dir="$dir/logs" \
      kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" --ignore-formatted "${scram[@]}" \
      >"$dir/logs/format.log" 2>&1 || die "formatting storage failed; see $dir/logs/format.log"
    if (( ${#scram[@]} )); then echo "$scram_user" >"$dir/scram.user"; fi
  fi
  # setsid: the broker must outlive the shell that started it (the demo, CI steps).
  # shellcheck disable=SC2086  # KAFKA_JVM_OPTS is a list of flags
  local allowed=()
  if [[ -f "$dir/tls/jwks.json" ]]; then
    # Kafka 4 reads OAuth key sets only from URLs named here.
    allowed=(-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls="file://$dir/tls/jwks.json")
  fi
  setsid nohup java -Xms128m -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true ${KAFKA_JVM_OPTS:-} "${allowed[@]}" \
    -Dlog4j2.configurationFile="$here/log4j2.xml" -Dkafka.logs.dir="$dir/logs" \
    -cp "$(classpath)" kafka.Kafka "$dir/server.properties" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}

wait_ready() {
  local dir="$1" port="$2" deadline=$((SECONDS + timeout_s))
  until port_open "$port"; do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      tail -20 "$dir/logs/stdout.log" >&2 || true
      die "broker on port $port exited during start; logs in $dir/logs"
    fi
    if (( SECONDS > deadline )); then
      die "broker on port $port did not accept connections within ${timeout_s}s; logs in $dir/logs"
    fi
    sleep 0.3
  done
}

signal_node() {
  local dir="$1" sig="$2"
  [[ -f "$dir/pid" ]] && kill "-$sig" "$(cat "$dir/pid")" 2>/dev/null || true
}

# wait_stopped GRACE DIR...: wait for the nodes to exit, SIGKILL any left after GRACE seconds.
wait_stopped() {
  local grace="$1"; shift
  local deadline=$((SECONDS + grace)) dir pid
  for dir in "$@"; do
    [[ -f "$dir/pid" ]] || continue
    pid="$(cat "$dir/pid")"
    while kill -0 "$pid" 2>/dev/null; do
      if (( SECONDS > deadline )); then kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.2
    done
    rm -f "$dir/pid"
  done
}

stop_node() {
  signal_node "$1" "${2:-TERM}"
  wait_stopped 30 "$1"
}

stop_cluster() {
  # All nodes at once: one by one, the last controllers wait for a quorum that
  # is already gone. 20 s covers a clean controlled shutdown here.
  local n
  for n in 1 2 3; do signal_node "$cluster_dir/node$n" TERM; done
  wait_stopped 20 "$cluster_dir/node1" "$cluster_dir/node2" "$cluster_dir/node3"
}

node_status() {
  local dir="$1" port="$2"
  if node_running "$dir"; then
    if port_open "$port"; then
      echo "running  127.0.0.1:$port  pid $(cat "$dir/pid")  logs $dir/logs"
      return 0
    fi
    echo "starting 127.0.0.1:$port  pid $(cat "$dir/pid")  logs $dir/logs"
    return 1
  fi
  echo "stopped  127.0.0.1:$port"
  return 1
}

cluster_id() {
  # A stable id per state folder, so restarts reuse the formatted storage.
  local f="$1/cluster.id"
  if [[ ! -s "$f" ]]; then
    need_java
    mkdir -p "$1"
    java -cp "$(classpath)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 >"$f"
  fi
  cat "$f"
}

parse_port() {
  port="$1"; shift
  sasl_ssl_port=""
  ssl_port=""
  while (( $# )); do
    case "$1" in
      --port) port="$2"; shift 2 ;;
      --port=*) port="${1#--port=}"; shift ;;
      --sasl-ssl-port) (( $# > 1 )) || die "--sasl-ssl-port needs a port"; sasl_ssl_port="$2"; shift 2 ;;
      --sasl-ssl-port=*) sasl_ssl_port="${1#--sasl-ssl-port=}"; shift ;;
      --ssl-port) (( $# > 1 )) || die "--ssl-port needs a port"; ssl_port="$2"; shift 2 ;;
      --ssl-port=*) ssl_port="${1#--ssl-port=}"; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ "$port" =~ ^[0-9]+$ ]] || die "port must be a number, got '$port'"
  [[ -z "$sasl_ssl_port" || "$sasl_ssl_port" =~ ^[0-9]+$ ]] || die "--sasl-ssl-port must be a number, got '$sasl_ssl_port'"
  [[ -z "$ssl_port" || "$ssl_port" =~ ^[0-9]+$ ]] || die "--ssl-port must be a number, got '$ssl_port'"
}

scram_user="${KAFKA_SCRAM_USER:-crisiswatch}"
scram_password="${KAFKA_SCRAM_PASSWORD:-crisiswatch-local}"
# The local OAuth identity provider's names (tokens: sub = the client id, these aud and iss).
oauth_audience="crisiswatch-kafka"
oauth_issuer="crisiswatch-local-idp"
oauth_kid="crisiswatch-local"

single_dir="$state/kafka-single"
cluster_dir="$state/kafka-cluster"

cmd="${1:-status}"; shift || true
case "$cmd" in
  fetch) fetch ;;
  start)
    parse_port "${KAFKA_PORT:-9092}" "$@"
    fetch
    if [[ -f "$single_dir/port" && "$(cat "$single_dir/port")" != "$port" ]] && node_running "$single_dir"; then
      die "a local broker is already running on port $(cat "$single_dir/port"); stop it first"
    fi
    if [[ -n "$sasl_ssl_port" ]]; then
      if port_open "$sasl_ssl_port" && ! port_open "$port"; then
        die "port $sasl_ssl_port is already in use by another process; choose another with --sasl-ssl-port"
      fi
      if node_running "$single_dir" && ! port_open "$sasl_ssl_port"; then
        die "the local broker runs without a SASL_SSL listener on $sasl_ssl_port; stop it first"
      fi
    fi
    if [[ -n "$ssl_port" ]]; then
      if port_open "$ssl_port" && ! port_open "$port"; then
        die "port $ssl_port is already in use by another process; choose another with --ssl-port"
      fi
      if node_running "$single_dir" && ! port_open "$ssl_port"; then
        die "the local broker runs without an SSL listener on $ssl_port; stop it first"
      fi
    fi
    # A broker already running keeps the configuration it was started with:
    # rewriting server.properties under it would describe listeners it does
    # not have (and the next start would silently change them).
    if ! node_running "$single_dir"; then
      if [[ -n "$sasl_ssl_port$ssl_port" ]]; then secure_material "$single_dir"; fi
      if [[ -n "$sasl_ssl_port" ]]; then oauth_material "$single_dir"; fi
      write_config "$single_dir" 1 "$port" $((port + 1000)) "1@127.0.0.1:$((port + 1000))" 1 "$sasl_ssl_port" "$ssl_port"
      echo "$port" >"$single_dir/port"
    fi
    start_node "$single_dir" "$(cluster_id "$single_dir")" "$port" "${KAFKA_HEAP:-512m}"
    wait_ready "$single_dir" "$port"
    say "broker ready on 127.0.0.1:$port (logs: $single_dir/logs/server.log)"
    if [[ -n "$sasl_ssl_port" ]]; then
      wait_ready "$single_dir" "$sasl_ssl_port"
      say "SASL_SSL listener on 127.0.0.1:$sasl_ssl_port (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN; user $scram_user, CA $single_dir/tls/ca.pem)"
      say "  and OAUTHBEARER: RS256 tokens signed with $single_dir/tls/oauth.key (aud $oauth_audience, iss $oauth_issuer)"
    fi
    if [[ -n "$ssl_port" ]]; then
      wait_ready "$single_dir" "$ssl_port"
      say "SSL listener on 127.0.0.1:$ssl_port (client certificate required: $single_dir/tls/client.pem, client.key; CA $single_dir/tls/ca.pem)"
    fi
    ;;
  stop) stop_node "$single_dir"; say "single-node broker stopped" ;;
  kill) stop_node "$single_dir" KILL; say "single-node broker killed" ;;
  status) node_status "$single_dir" "$(cat "$single_dir/port" 2>/dev/null || echo "${KAFKA_PORT:-9092}")" ;;
  logs) echo "$single_dir/logs/server.log" ;;
  cluster-start)
    parse_port "${KAFKA_CLUSTER_PORT:-19092}" "$@"
    fetch
    mkdir -p "$state"
    was="$(cat "$state/cluster.port" 2>/dev/null || true)"
    if [[ -n "$was" && "$was" != "$port" ]]; then
      for n in 1 2 3; do
        if node_running "$cluster_dir/node$n"; then
          die "a local cluster is already running on ports $was-$((was + 2)); stop it first (cluster-stop)"
        fi
      done
    fi
    echo "$port" >"$state/cluster.port"
    voters="1@127.0.0.1:$((port + 1000)),2@127.0.0.1:$((port + 1001)),3@127.0.0.1:$((port + 1002))"
    cid="$(cluster_id "$cluster_dir")"
    for n in 1 2 3; do
      d="$cluster_dir/node$n"
      if ! node_running "$d"; then
        write_config "$d" "$n" $((port + n - 1)) $((port + 999 + n)) "$voters" 3
      fi
      start_node "$d" "$cid" $((port + n - 1)) "${KAFKA_HEAP:-384m}"
    done
    for n in 1 2 3; do wait_ready "$cluster_dir/node$n" $((port + n - 1)); done
    say "cluster ready on 127.0.0.1:$port,127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2)) (logs: $cluster_dir/node*/logs)"
    ;;
  cluster-stop) stop_cluster; say "cluster stopped" ;;
  cluster-status)
    port="$(cat "$state/cluster.port" 2>/dev/null || echo "${KAFKA_CLUSTER_PORT:-19092}")"
    rc=0
    for n in 1 2 3; do printf 'node%s ' "$n"; node_status "$cluster_dir/node$n" $((port + n - 1)) || rc=1; done
    exit $rc
    ;;
  node-stop|node-kill|node-start)
    n="${1:-}"; [[ "$n" =~ ^[123]$ ]] || die "$cmd needs a node number 1, 2 or 3"
    port="$(cat "$state/cluster.port" 2>/dev/null || echo "${KAFKA_CLUSTER_PORT:-19092}")"
    case "$cmd" in
      node-stop) stop_node "$cluster_dir/node$n" ;;
      node-kill) stop_node "$cluster_dir/node$n" KILL ;;
      node-start)
        start_node "$cluster_dir/node$n" "$(cluster_id "$cluster_dir")" $((port + n - 1)) "${KAFKA_HEAP:-384m}"
        wait_ready "$cluster_dir/node$n" $((port + n - 1)) ;;
    esac
    say "node $n: $cmd done"
    ;;
  reset)
    stop_node "$single_dir"; stop_cluster
    rm -rf "$single_dir" "$cluster_dir" "$state/cluster.port"
    say "local broker state deleted"
    ;;
  *) die "unknown command '$cmd' (fetch, start, stop, kill, status, logs, cluster-start, cluster-stop, cluster-status, node-stop N, node-kill N, node-start N, reset)" ;;
esac
