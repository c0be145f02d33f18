# Sourced (POSIX sh) by end2end/lab/kafka-broker.sh and end2end/lab/apps/kafka_pod.sh: the lab's one
# Kafka node, broker and controller at once (KRaft), its controller's listener on its own loopback.
# No topic is made unless asked.

# Prints server.properties for a broker listening on LISTEN (IP:PORT), telling clients to come to
# ADVERTISED (IP:PORT), its data in DATA.
kafka_properties() {  # LISTEN ADVERTISED DATA
  cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://$1,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$2
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
}
