"""The credential guard: what it flags, where, and what it must leave alone.

Credential-shaped test values are assembled at run time so that this file
itself holds nothing a secret scanner would (rightly) complain about.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path

import pytest

from llmgen.catalog import guard

RANDOM = secrets.token_hex(20)  # 40 chars of key-like material
# Fixed key-like material in the standard base64 alphabet (random draws could
# contain '-' or '_' or no digit, and the tests must not depend on luck).
KEYLIKE = base64.b64encode(hashlib.sha256(b"llmgen guard test").digest()).decode()


def fake(prefix: str, body: str) -> str:
    return prefix + body


TOKENS = {
    "a private key block": "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEow...\n",
    "an AWS access key ID": fake("AK" + "IA", "Q3EGRIZRAXZ7ZK5Y"),
    "a GitHub token": fake("gh" + "p_", "a1B2" * 9),
    "a GitLab token": fake("gl" + "pat-", "x9Y8z7W6v5U4t3S2r1Q0"),
    "a Slack token": fake("xo" + "xb-", "1234567890-abcdefghij"),
    "a JWT": ".".join(["eyJ" + "hbGciOiJIUzI1NiJ9", "eyJ" + "zdWIiOiIxMjM0NTY3ODkwIn0", RANDOM]),
    # issue 17/21: the token formats an LLM platform's users actually hold
    "a Hugging Face token": fake("h" + "f_", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"),
    "a Hugging Face organization token": fake(
        "api" + "_org_", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
    ),
    "an OpenAI API key": fake("s" + "k-", "aB3dE5fG7hJ9kL1mN3pT3BlbkFJQ5rS7tU9vW1xY3z"),
    "an OpenAI project key": fake("s" + "k-proj-", "aB3dE5fG7hJ9kL1m_N3pQ5rS7tU9vW1xY3z-aB3dE5"),
    "a URL with a password (user:password@)": "https://deploy:"
    + "hunter2hunter2@git.example.com/x",
}


def deployment(env_yaml: str) -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: m\nspec:\n  template:\n"
        "    spec:\n      containers:\n        - name: vllm\n          env:\n" + env_yaml
    )


@pytest.mark.parametrize("what", sorted(TOKENS))
def test_known_formats_are_found_and_located_without_the_value(what: str) -> None:
    token = TOKENS[what]
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n# note: {token}\n"
    (found,) = [d for d in guard.scan({"gen/a.yaml": text.encode()}) if d.path == ""]
    assert (found.location.file, found.location.line, found.location.col) == ("gen/a.yaml", 5, 9)
    assert found.message == f"looks like {what}; credentials must never be rendered"
    assert token.strip() not in str(found)


@pytest.mark.parametrize(
    "text",
    [
        "url: ssh://git@github.com/org/repo.git",  # a user name alone is not a credential
        "url: https://vault.example.com:8200/v1/secret",
        "image: vllm/vllm-openai:v0.11.0@sha256:" + "ab" * 32,
        "name: task-scheduler-worker-pool-abcdefghij",
        "name: disk-sk-1234567890abcdefghijkl",  # sk- inside a word
        "args: [--hf_overrides, '{}']",
    ],
)
def test_lookalikes_of_the_new_formats_are_left_alone(text: str) -> None:
    assert guard.scan({"gen/a.yaml": text.encode()}) == []


def test_aws_secret_access_key_assignment() -> None:
    text = f"aws_secret_access_key = {KEYLIKE[:40]}\n"
    assert [d.message for d in guard.scan({"x": text.encode()})] == [
        "looks like an AWS secret access key; credentials must never be rendered"
    ]


def test_secret_with_literal_data_is_refused() -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  token: aGVsbG8=\n"
    (found,) = guard.scan({"s.yaml": text.encode()})
    assert (found.location.line, found.path) == (5, "data")
    assert "never Secrets" in found.message


def test_credential_named_configmap_key_in_a_bundled_file_is_located() -> None:
    first = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: llm-x\ndata: {}\n"
    second = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: llmgen-environment\n"
        "data:\n  LOG_LEVEL: INFO\n  DB_PASSWORD: hunter2hunter2\n"
    )
    text = first + "---\n" + second
    (found,) = guard.scan({"models/x.yaml": text.encode()})
    assert (found.location.line, found.location.col) == (13, 3)
    assert found.path == "data.DB_PASSWORD"
    assert found.message == (
        "DB_PASSWORD: a credential-named key with a literal value; "
        "credentials must come from a secret store"
    )
    assert "hunter2" not in found.message


def test_high_entropy_configmap_value_is_flagged() -> None:
    text = f"kind: ConfigMap\nmetadata:\n  name: c\ndata:\n  SIGNING: {KEYLIKE}\n"
    (found,) = guard.scan({"c.yaml": text.encode()})
    assert found.path == "data.SIGNING"
    assert "high entropy" in found.message


def test_ordinary_configuration_is_left_alone() -> None:
    text = (
        "kind: ConfigMap\nmetadata:\n  name: c\ndata:\n"
        "  VLLM_LOGGING_LEVEL: DEBUG\n"
        "  OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector.observability:4317\n"
        "  FEATURE_TOKENIZER_POOL: 'true'\n"
        "  MAX_TOKENS: '4096'\n"
        "  HF_TOKEN_PATH: /var/run/secrets/hf/token\n"
        "  SERVED_MODEL: meta-llama_Llama-3_1-8B-Instruct\n"
        f"  WEIGHTS_SHA256: {secrets.token_hex(32)}\n"
        f"  MODEL_REVISION: {secrets.token_hex(20)}\n"
    )
    assert guard.scan({"c.yaml": text.encode()}) == []


def test_literal_credential_env_var_is_flagged_but_secret_refs_are_not() -> None:
    env = (
        "            - name: HF_TOKEN\n"
        "              valueFrom:\n"
        "                secretKeyRef:\n"
        "                  name: m-hf-token\n"
        "                  key: token\n"
        "            - name: LOG_LEVEL\n"
        "              value: INFO\n"
        "            - name: OPENAI_API_KEY\n"
        "              value: sk-abc\n"
    )
    (found,) = guard.scan({"d.yaml": deployment(env).encode()})
    assert (found.location.line, found.path) == (18, "env.OPENAI_API_KEY")
    assert "use valueFrom.secretKeyRef" in found.message
    assert "sk-abc" not in found.message


def test_seeded_values_are_found_verbatim_and_base64_encoded() -> None:
    seeded = "hf_" + secrets.token_urlsafe(20)
    plain = f"kind: X\nmetadata:\n  note: x{seeded}\n"
    encoded = f"kind: X\nmetadata:\n  note: {base64.b64encode(seeded.encode()).decode()}\n"
    found = guard.scan({"a": plain.encode(), "b": encoded.encode()}, seeded=[seeded])
    seeds = [(d.location.file, d.location.line, d.message) for d in found if "seeded" in d.message]
    assert seeds == [
        ("a", 3, "contains seeded test value #0"),
        ("b", 3, "contains seeded test value #0 (base64)"),
    ]
    assert all(seeded not in str(d) for d in found)
    assert guard.scan({"a": b"kind: X\n"}, seeded=[seeded]) == []


def test_too_short_seeds_are_refused() -> None:
    with pytest.raises(ValueError, match="shorter than 6"):
        guard.scan({}, seeded=["abc"])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("HF_TOKEN", True),
        ("dbPassword", True),
        ("OPENAI_API_KEY", True),
        ("client-secret", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("HF_TOKEN_PATH", False),
        ("MAX_TOKENS", False),
        ("SECRET_NAME", False),
        ("TOKENIZER", False),
        ("LOG_LEVEL", False),
    ],
)
def test_credential_key_reads_the_last_words(key: str, expected: bool) -> None:
    assert guard.credential_key(key) is expected


def test_scan_tree_reads_generated_only(tmp_path: Path) -> None:
    (tmp_path / "generated" / "clusters").mkdir(parents=True)
    (tmp_path / "generated" / "clusters" / "a.yaml").write_text(f"x: {TOKENS['a GitHub token']}\n")
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "b.yaml").write_text(f"x: {TOKENS['a GitHub token']}\n")
    found = guard.scan_tree(tmp_path)
    assert [d.location.file for d in found] == ["generated/clusters/a.yaml"]
