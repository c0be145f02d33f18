# Sourced by kafka.sh and bench-db.sh: Apache Kafka from Maven Central (end2end/lab/kafka/pom.xml,
# nothing built) and one KRaft broker in a network namespace.

source "$(dirname "${BASH_SOURCE[0]}")/kafka/server-properties.sh"

# Sets KAFKA_JARS: the runtime jars, fetched once (about 50 MB, half a minute) into
# ${KAFKA_LIB:-~/.cache/podtap/kafka-VERSION/lib}, and again when the pom changes (the marker
# holds its digest).
kafka_jars() {  # LAB
  local pom=$1/kafka/pom.xml version digest
  version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
  KAFKA_JARS=${KAFKA_LIB:-${XDG_CACHE_HOME:-$HOME/.cache}/podtap/kafka-$version/lib}
  digest=$(sha256sum "$pom" | cut -c1-16)
  if [[ "$(cat "$KAFKA_JARS/.complete" 2>/dev/null)" != "$digest" ]]; then
    echo "kafka: fetching Apache Kafka $version's jars from Maven Central into $KAFKA_JARS"
    rm -rf "$KAFKA_JARS"
    mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$KAFKA_JARS" -DincludeScope=runtime
    echo "$digest" >"$KAFKA_JARS/.complete"
  fi
}

# The JDK in namespace NS with Kafka's jars and the lab's log4j2 configuration, logs in LOGS
# (the request log too, unless KAFKA_REQUESTS=off).
kafka_java() {  # NS LOGS ARGS…
  local ns=$1 logs=$2
  shift 2
  ip netns exec "$ns" java -Xmx512m -Dlog4j2.configurationFile="$LAB/kafka/log4j2.xml" -Dlab.logs="$logs" \
    -Dlab.requests="${KAFKA_REQUESTS:-trace}" -cp "$KAFKA_JARS/*" "$@"
}

# The lab's broker (`kafka_properties`) in NS listening on ADDR (IP:PORT), its data in DIR, its
# logs in LOGS; the controller's listener on the namespace's loopback is not captured. Returns
# once the broker says it started.
kafka_broker() {  # NS ADDR DIR LOGS
  local ns=$1 addr=$2 dir=$3 logs=$4
  kafka_properties "$addr" "$addr" "$dir/data" >"$dir/server.properties"
  kafka_java "$ns" "$logs" kafka.tools.StorageTool format -t "$(kafka_java "$ns" "$logs" kafka.tools.StorageTool random-uuid)" \
    -c "$dir/server.properties" >"$logs/kafka-format.log" 2>&1
  kafka_java "$ns" "$logs" kafka.Kafka "$dir/server.properties" >"$logs/kafka-stdout.log" 2>&1 &
  disown $!  # ended with its namespace
  for _ in $(seq 600); do grep -q "Kafka Server started" "$logs/kafka-server.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "Kafka Server started" "$logs/kafka-server.log" || {
    echo "kafka: the broker did not start" >&2
    tail -20 "$logs/kafka-server.log" >&2
    return 1
  }
}
