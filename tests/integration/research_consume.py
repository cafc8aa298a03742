#!/usr/bin/python3
"""Reads the research topics the way an analyst would: Debian's
python3-confluent-kafka, its Avro message deserializer resolving every schema
id through the gateway's schema registry API (docs/ANALYSTS.md). Keys are
plain strings (the pseudonym), so the values alone are Avro: the legacy
AvroConsumer would try to decode the keys too. test_research runs it and
checks what it prints: one JSON object per record, in each partition's order.

usage: research_consume.py BROKERS REGISTRY_URL USER_INFO GROUP EXPECTED
Stops once EXPECTED records arrived (0: when the topics stay idle for 5 s),
or after 120 s."""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError
from confluent_kafka.avro import CachedSchemaRegistryClient
from confluent_kafka.avro.serializer.message_serializer import MessageSerializer

TOPICS = ["trialog.research.participants.v1", "trialog.research.visits.v1",
          "trialog.research.forms.v1", "trialog.research.observations.v1"]


def main():
    brokers, registry, user_info, group, expected = sys.argv[1:6]
    expected = int(expected)
    registry_client = CachedSchemaRegistryClient({
        "url": registry,
        "basic.auth.credentials.source": "USER_INFO",
        "basic.auth.user.info": user_info,
    })
    avro = MessageSerializer(registry_client)
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe(TOPICS)
    got, idle_since, deadline = 0, time.time(), time.time() + 120
    while time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            if expected == 0 and got and time.time() - idle_since > 5:
                break
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            print(json.dumps({"error": str(msg.error())}), flush=True)
            return 1
        idle_since = time.time()
        print(json.dumps({"topic": msg.topic(), "partition": msg.partition(),
                          "offset": msg.offset(), "key": msg.key().decode(),
                          "value": avro.decode_message(msg.value())}, sort_keys=True), flush=True)
        got += 1
        if expected and got >= expected:
            break
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
