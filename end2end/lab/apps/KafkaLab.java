// The Kafka lab's clients, with Apache Kafka's own Java client (run as a single source file):
// topics made with the Admin client; a producer (acks=all) that connects and sends before the
// capture starts, so podtap joins its connection mid-stream; after the go-ahead, a mark (one
// record to `audit`), twenty records to `orders` one request each, ten fire-and-forget records
// (acks=0: the broker sends no answer), a producer that asks for a topic that does not exist
// (Metadata answers UNKNOWN_TOPIC_OR_PARTITION), and a consumer in group `billing` that reads
// `orders` from the start and commits. Keys and values say `secret`: none may reach a record.
//
// usage: java -cp 'LIB/*' KafkaLab.java BOOTSTRAP READY_FILE GO_FILE

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

public class KafkaLab {
    static Properties base(String bootstrap, String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", clientId);
        return p;
    }

    static KafkaProducer<String, String> producer(String bootstrap, String clientId, String acks) {
        Properties p = base(bootstrap, clientId);
        p.put("acks", acks);
        p.put("linger.ms", "0");
        p.put("enable.idempotence", "false");
        p.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        p.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        return new KafkaProducer<>(p);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        Path ready = Path.of(args[1]), go = Path.of(args[2]);
        try (Admin admin = Admin.create(base(bootstrap, "lab-admin"))) {
            admin.createTopics(List.of(new NewTopic("orders", 3, (short) 1), new NewTopic("audit", 1, (short) 1)))
                .all().get();
        }
        KafkaProducer<String, String> orders = producer(bootstrap, "orders-producer", "all");
        // Before the capture: the connection is opened and both topics' metadata known.
        for (int i = 0; i < 3; i++) {
            orders.send(new ProducerRecord<>("orders", i, "key-" + i, "secret-early-" + i)).get();
        }
        orders.send(new ProducerRecord<>("audit", "early", "secret-early")).get();
        Files.createFile(ready);
        while (!Files.exists(go)) {
            Thread.sleep(50);
        }
        orders.send(new ProducerRecord<>("audit", "mark", "start")).get();
        for (int i = 0; i < 20; i++) {
            orders.send(new ProducerRecord<>("orders", i % 3, "key-" + i, "secret-value-" + i)).get();
        }
        try (KafkaProducer<String, String> fire = producer(bootstrap, "fire-and-forget", "0")) {
            for (int i = 0; i < 10; i++) {
                fire.send(new ProducerRecord<>("audit", 0, "k", "secret-audit-" + i)).get();
            }
        }
        Properties lost = base(bootstrap, "lost-producer");
        lost.put("max.block.ms", "1500");
        lost.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        lost.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        try (KafkaProducer<String, String> p = new KafkaProducer<>(lost)) {
            p.send(new ProducerRecord<>("no-such-topic", "k", "secret-lost")).get();
            throw new IllegalStateException("a topic that does not exist took a record");
        } catch (java.util.concurrent.ExecutionException | org.apache.kafka.common.errors.TimeoutException e) {
            // Expected: the topic is not there, and auto-creation is off.
        }
        Properties c = base(bootstrap, "billing-consumer");
        c.put("group.id", "billing");
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        c.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        c.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of("orders"));
            int seen = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen < 23 && System.currentTimeMillis() < deadline) {
                seen += consumer.poll(Duration.ofMillis(500)).count();
            }
            if (seen < 23) {
                throw new IllegalStateException("the consumer read " + seen + " of 23 records");
            }
            consumer.commitSync();
        }
        orders.close();
        System.out.println("kafka lab: done");
    }
}
