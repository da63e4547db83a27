"""Secured Kafka (issue #8): the HELIOS_KAFKA_SECURITY_* / _SASL_* / _SSL_* settings, the one
builder that turns them into librdkafka properties (``security_config``), that every client
config carries it, that librdkafka itself accepts what is built (constructing a client
checks every property name and value and loads the PEM files, without connecting), and that
wrong values stop the CLI with one line naming the variable — never showing the password."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from ingest_services.common.kafka import (
    admin_config,
    consumer_config,
    producer_config,
    reader_config,
    security_config,
)
from ingest_services.settings import KafkaSettings, SettingsError, load_settings
from tests.conftest import REPO
from tests.unit.test_settings_errors import run

PASSWORD = "hunter2-not-in-any-output"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA and a client certificate signed by it, as PEM files (what a Strimzi cluster CA
    Secret and a KafkaUser's TLS Secret hold)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer: str, signer, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=1))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        return b.sign(signer, hashes.SHA256())

    ca_key, user_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    files = {"ca": d / "ca.crt", "cert": d / "user.crt", "key": d / "user.key"}
    files["ca"].write_bytes(cert("helios-test-ca", ca_key, "helios-test-ca", ca_key, True)
                            .public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert("helios", user_key, "helios-test-ca", ca_key, False)
                              .public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(user_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return files


def sasl_ssl(pki: dict[str, Path], **extra: object) -> KafkaSettings:
    return load_settings(KafkaSettings, kafka_bootstrap="127.0.0.1:1",
                         kafka_security_protocol="SASL_SSL",
                         kafka_sasl_mechanism="scram-sha-512", kafka_sasl_username="helios",
                         kafka_sasl_password=PASSWORD, kafka_ssl_ca_location=str(pki["ca"]),
                         **extra)


def test_plaintext_by_default_adds_only_the_protocol():
    assert security_config(load_settings(KafkaSettings)) == {"security.protocol": "PLAINTEXT"}


def test_sasl_scram_over_tls(pki):
    assert security_config(sasl_ssl(pki)) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "helios", "sasl.password": PASSWORD,
        "ssl.ca.location": str(pki["ca"]), "ssl.endpoint.identification.algorithm": "https"}


def test_mutual_tls_without_sasl(pki):
    s = load_settings(KafkaSettings, kafka_security_protocol="SSL",
                      kafka_ssl_ca_location=str(pki["ca"]),
                      kafka_ssl_certificate_location=str(pki["cert"]),
                      kafka_ssl_key_location=str(pki["key"]), kafka_ssl_key_password="kp",
                      kafka_ssl_check_hostname=False)
    assert security_config(s) == {
        "security.protocol": "SSL", "ssl.ca.location": str(pki["ca"]),
        "ssl.certificate.location": str(pki["cert"]), "ssl.key.location": str(pki["key"]),
        "ssl.key.password": "kp", "ssl.endpoint.identification.algorithm": "none"}


def test_sasl_plaintext_has_no_tls_properties():
    s = load_settings(KafkaSettings, kafka_security_protocol="SASL_PLAINTEXT",
                      kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
                      kafka_sasl_password="p")
    assert not [k for k in security_config(s) if k.startswith("ssl.")]


def test_empty_values_are_unset_as_the_chart_renders_them():
    s = load_settings(KafkaSettings, kafka_security_protocol="SSL", kafka_sasl_mechanism="",
                      kafka_sasl_username="", kafka_ssl_ca_location="",
                      kafka_ssl_certificate_location="", kafka_ssl_key_location="")
    assert security_config(s) == {"security.protocol": "SSL",
                                  "ssl.endpoint.identification.algorithm": "https"}


def test_every_client_config_carries_the_security(pki):
    s = sasl_ssl(pki)
    want = security_config(s)
    for conf in (producer_config(s, "p"), producer_config(s, "t", transactional_id="x"),
                 consumer_config(s, "g", "c"), reader_config(s, "r"), admin_config(s)):
        assert conf.items() >= want.items(), conf


def test_librdkafka_accepts_every_built_config(pki):
    """Constructing a client validates every property and loads the CA, certificate and
    key, without reaching the (unreachable) bootstrap address."""
    for s in (sasl_ssl(pki), sasl_ssl(pki, kafka_ssl_certificate_location=str(pki["cert"]),
                                      kafka_ssl_key_location=str(pki["key"]))):
        Producer(producer_config(s, "helios-test")).flush(0)
        Producer(producer_config(s, "helios-test", transactional_id="helios-test-1"))
        Consumer(consumer_config(s, "helios-test", "helios-test")).close()
        Consumer(reader_config(s, "helios-test")).close()
        AdminClient(admin_config(s))


def test_librdkafka_refuses_what_settings_refuse(pki, tmp_path):
    """What settings.py refuses early, librdkafka would refuse too (at construction, before
    any connection), with a message that does not name the HELIOS_* variable: an unknown
    mechanism, GSSAPI (not compiled into the confluent-kafka wheel), a CA that is not PEM."""
    conf = {**producer_config(sasl_ssl(pki), "helios-test")}
    with pytest.raises(KafkaException, match="Unsupported SASL mechanism: FOO"):
        Producer({**conf, "sasl.mechanism": "FOO"})
    with pytest.raises(KafkaException, match="No provider for SASL mechanism GSSAPI"):
        Producer({**conf, "sasl.mechanism": "GSSAPI"})
    bad = tmp_path / "not-a-ca.crt"
    bad.write_text("not a certificate\n")
    with pytest.raises(KafkaException, match=r"ssl\.ca\.location failed"):
        Producer({**conf, "ssl.ca.location": str(bad)})


@pytest.mark.parametrize(("env", "var", "says"), [
    ({"HELIOS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "HELIOS_KAFKA_SASL_MECHANISM": "GSSAPI",
      "HELIOS_KAFKA_SASL_USERNAME": "u", "HELIOS_KAFKA_SASL_PASSWORD": PASSWORD},
     "HELIOS_KAFKA_SASL_MECHANISM", "'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'"),
    ({"HELIOS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "HELIOS_KAFKA_SASL_MECHANISM": "PLAIN",
      "HELIOS_KAFKA_SASL_PASSWORD": PASSWORD},
     "HELIOS_KAFKA_SASL_USERNAME", "required with HELIOS_KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
    ({"HELIOS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "HELIOS_KAFKA_SASL_MECHANISM": "PLAIN",
      "HELIOS_KAFKA_SASL_USERNAME": "u"},
     "HELIOS_KAFKA_SASL_PASSWORD", "required with"),
    ({"HELIOS_KAFKA_SASL_PASSWORD": PASSWORD},
     "HELIOS_KAFKA_SASL_PASSWORD", "only used with HELIOS_KAFKA_SECURITY_PROTOCOL=SASL_"),
    ({"HELIOS_KAFKA_SECURITY_PROTOCOL": "SSL", "HELIOS_KAFKA_SSL_CA_LOCATION": "/no/ca.crt"},
     "HELIOS_KAFKA_SSL_CA_LOCATION", "no readable file at /no/ca.crt"),
    ({"HELIOS_KAFKA_SECURITY_PROTOCOL": "TLS"}, "HELIOS_KAFKA_SECURITY_PROTOCOL",
     "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'"),
])
def test_wrong_security_settings_are_one_line_exit_2_without_the_password(
        monkeypatch, capsys, tmp_path, env, var, says):
    for args in (["audit"], ["serve", "bidder"], ["serve", "gateway"]):
        code, output = run(monkeypatch, capsys, tmp_path, env, args)
        lines = [ln for ln in output.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1, (args, output)
        assert var in lines[0] and says in lines[0], lines[0]
        assert PASSWORD not in output and "Traceback" not in output


def test_a_certificate_without_its_key_is_refused(pki):
    with pytest.raises(SettingsError, match=r"HELIOS_KAFKA_SSL_KEY_LOCATION.*set both"):
        load_settings(KafkaSettings, kafka_security_protocol="SSL",
                      kafka_ssl_certificate_location=str(pki["cert"]))


def test_the_password_is_hidden_in_reprs(pki):
    s = sasl_ssl(pki)
    assert PASSWORD not in repr(s) and PASSWORD not in str(s.model_dump())


def test_no_kafka_client_is_configured_anywhere_else():
    """Every client Helios creates gets its properties from common/kafka.py: no other module
    (services, Dagster code, CLI, the chart's topic Job) writes a ``bootstrap.servers``."""
    roots = ["ingest_services", "helios_pipeline", "assets", "sensors", "helm/helios/files"]
    offenders = []
    for root in roots:
        for path in (REPO / root).rglob("*.py"):
            if path.name == "kafka.py" and path.parent.name == "common":
                continue
            tree = ast.parse(path.read_text())
            if any(isinstance(n, ast.Constant) and n.value == "bootstrap.servers"
                   for n in ast.walk(tree)):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
