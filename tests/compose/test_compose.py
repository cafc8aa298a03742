#!/usr/bin/env python3
"""docker-compose.yml cannot run here (no Docker engine), so this reads it:
its Kafka image is the version tools/kafka/pom.xml pins, its broker runs with
the settings of tools/kafka/broker.properties (the ones `make demo`, the tests
and the benchmark use), topics are made by `trialog topics ensure` before any
Trialog service starts, and nothing relies on auto-creation.

Usage: test_compose.py SOURCE_DIR   (ctest runs it; label "unit")."""
import re
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ET

import yaml

ROOT = sys.argv.pop(1) if len(sys.argv) > 1 else "."


def pom_kafka_version():
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(f"{ROOT}/tools/kafka/pom.xml").getroot()
    return root.find("m:properties/m:kafka.version", ns).text.strip()


def broker_properties():
    props = {}
    with open(f"{ROOT}/tools/kafka/broker.properties") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                props[key.strip()] = value.strip()
    return props


def version_tuple(text):
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def env_to_property(name):
    # the apache/kafka image's rule: KAFKA_ dropped, "___" -> "-", "__" -> "_", "_" -> "."
    rest = name[len("KAFKA_"):].lower()
    rest = rest.replace("___", "\0dash\0").replace("__", "\0us\0").replace("_", ".")
    return rest.replace("\0dash\0", "-").replace("\0us\0", "_")


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(f"{ROOT}/docker-compose.yml") as f:
            cls.compose = yaml.safe_load(f)
        cls.services = cls.compose["services"]

    def test_kafka_image_is_the_pinned_version(self):
        image = self.services["kafka"]["image"]
        self.assertRegex(image, r"^apache/kafka:")
        self.assertEqual(image.split(":", 1)[1], pom_kafka_version())

    def test_pinned_version_works_with_this_librdkafka(self):
        kafka = version_tuple(pom_kafka_version())
        rdkafka = version_tuple(subprocess.run(["pkg-config", "--modversion", "rdkafka"],
                                               capture_output=True, text=True,
                                               check=True).stdout.strip())
        self.assertNotEqual(kafka, (4, 0, 0),
                            "4.0.0 dropped JoinGroup v0, which librdkafka up to 2.10 asks for")
        if rdkafka < (2, 6, 1):
            self.assertLess(kafka, (4, 0, 0),
                            "librdkafka before 2.6.1 fails SASL/SCRAM against Kafka 4.x"
                            " (docs/KAFKA.md)")

    def test_broker_settings_are_the_tests(self):
        env = {env_to_property(k): str(v) for k, v in
               self.services["kafka"]["environment"].items() if k.startswith("KAFKA_")}
        for key, value in broker_properties().items():
            self.assertIn(key, env, f"docker-compose.yml lacks KAFKA_ for {key}")
            self.assertEqual(env[key], value, f"{key} differs from tools/kafka/broker.properties")
        self.assertEqual(env["auto.create.topics.enable"], "false")
        self.assertEqual(env["unclean.leader.election.enable"], "false")

    def test_kafka_keeps_its_data(self):
        volumes = self.services["kafka"].get("volumes", [])
        self.assertTrue(any(v.startswith("kafka:") for v in volumes), "broker data on a volume")

    def test_topics_are_ensured_before_any_service(self):
        topics = self.services["topics"]
        self.assertEqual(topics["command"], ["trialog", "topics", "ensure"])
        self.assertEqual(topics["depends_on"]["kafka"]["condition"], "service_healthy")
        trialog = [name for name, s in self.services.items()
                   if s.get("build") and name != "topics"]
        self.assertGreaterEqual(len(trialog), 9)
        for name in trialog:
            dep = self.services[name].get("depends_on", {})
            self.assertEqual(dep.get("topics", {}).get("condition"),
                             "service_completed_successfully", name)
            self.assertNotIn("kafka", dep, f"{name} must wait for the topics, not the broker")

    def test_archive_is_secured_before_any_service(self):
        secure = self.services["db-secure"]
        self.assertIn("trialog db secure", " ".join(secure["command"]))
        self.assertIn("user=postgres", " ".join(secure["command"]))
        for name, s in self.services.items():
            if not s.get("build") or name in ("topics", "db-secure"):
                continue
            dep = s.get("depends_on", {})
            self.assertEqual(dep.get("db-secure", {}).get("condition"),
                             "service_completed_successfully", name)
            dsn = s["environment"]["TRIALOG_PG_DSN"]
            self.assertIn("user=trialog", dsn, f"{name} connects as the application role")
            self.assertNotIn("password=", dsn, f"{name}: the password in a file, not the DSN")
        self.assertNotEqual(self.services["postgres"]["environment"]["POSTGRES_USER"], "trialog")
        audit = self.services["projector-audit"]
        self.assertIn("audit_signing_key", audit["secrets"])
        self.assertTrue(audit["environment"]["TRIALOG_AUDIT_SIGNING_KEY"].startswith("/run/secrets/"))

    def test_ingest_sources_have_topics(self):
        ensured = set(self.services["topics"]["environment"]["TRIALOG_INGEST_SOURCES"].split(","))
        for name, s in self.services.items():
            src = (s.get("environment") or {}).get("TRIALOG_INGEST_SOURCES")
            if src and name != "topics":
                self.assertTrue(set(src.split(",")) <= ensured, name)

    def test_no_mock_broker(self):
        with open(f"{ROOT}/Dockerfile") as f:
            self.assertNotIn("trialog-broker", f.read())
        for name, s in self.services.items():
            self.assertFalse(re.search(r"trialog-broker", str(s.get("command", ""))), name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
