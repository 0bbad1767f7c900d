"""Adapter files: the reference one loads, and every mistake is named by its key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos_model.adapter import (
    AnswerRule,
    LLMSpec,
    llm_spec_from_json,
    llm_spec_to_json,
    load_adapter,
    parse_adapter,
)
from chaos_model.errors import AdapterError
from chaos_model.invariants import applicable

REFERENCE_FILE = Path(__file__).parents[2] / "chaos-target.toml"
REFERENCE = load_adapter(REFERENCE_FILE)

MINIMAL = """
[target]
name = "mini"

[webhook]
service = "web"
path = "/hook"
secret = "s"

[services.web]
command = ["{python}", "-m", "web", "--port", "{port}"]
uses = ["postgres"]

[observe]
correlate = "chat_message"
messages = "SELECT pk, chat_id, msg_id, status FROM msgs"
"""


def _write(tmp_path: Path, text: str, name: str = "chaos-target.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_reference_adapter_describes_the_reference_pipeline() -> None:
    assert REFERENCE.name == "pipeline"
    assert set(REFERENCE.services) == {"api", "worker"}
    assert REFERENCE.links() == {
        "api->postgres": "postgres",
        "api->nats": "nats",
        "worker->postgres": "postgres",
        "worker->nats": "nats",
        "worker->llm": "llm",
        "telegram->api": "api",
        "dashboard->api": "api",
    }
    assert REFERENCE.services_with("pause") == ("postgres", "nats", "worker")
    assert REFERENCE.services_with("kill") == ("postgres", "nats", "api", "worker")
    assert REFERENCE.queue.kind == "jetstream"
    assert len(REFERENCE.failpoints) == 8
    assert REFERENCE.root == REFERENCE_FILE.parent


def test_the_reference_adapter_lists_the_pipelines_own_bugs_and_failpoints() -> None:
    from pipeline_app.bugs import KNOWN_BUGS
    from pipeline_app.failpoints import KNOWN_FAILPOINTS

    assert set(REFERENCE.bugs) == set(KNOWN_BUGS)
    assert set(REFERENCE.failpoints) == set(KNOWN_FAILPOINTS)


def test_a_minimal_adapter_takes_defaults(tmp_path: Path) -> None:
    spec = load_adapter(_write(tmp_path, MINIMAL))
    assert spec.queue.kind == "core"
    assert spec.dashboard is None and not spec.has_feed
    assert spec.links() == {"web->postgres": "postgres", "telegram->web": "web"}
    assert spec.services_with("kill") == ("postgres", "nats", "web")
    assert spec.observe.correlate == "chat_message"


def test_invariants_a_target_cannot_observe_are_left_out(tmp_path: Path) -> None:
    safety, liveness = applicable(load_adapter(_write(tmp_path, MINIMAL)))
    names = {invariant.name for invariant in safety + liveness}
    assert "feeds_saw_every_stage" not in names
    assert "attempts_within_bound" not in names
    assert "no_knowledge_without_score" not in names
    assert {"one_message_per_update", "accepted_updates_complete"} <= names
    all_safety, all_liveness = applicable(REFERENCE)
    assert len(all_safety) + len(all_liveness) == 16
    skipping = dataclasses.replace(REFERENCE, skip_invariants=("recovers_by_itself",))
    assert "recovers_by_itself" not in {i.name for i in applicable(skipping)[1]}


def test_the_reference_adapter_declares_its_stage_graph_and_how_its_llm_calls_are_read() -> None:
    graph, oracle = REFERENCE.stage_graph, REFERENCE.oracle
    assert graph.predecessors("extracted") == ("received", "scored")
    assert graph.predecessors("failed") == ()
    assert graph.terminal == {"extracted", "failed"}
    assert oracle is not None and graph.llm_stages(oracle.calls) == ("scored", "extracted")
    assert oracle.key_of(42) == "message-42" and oracle.message_of("message-42") == 42
    assert oracle.message_of("update-42") is None
    assert oracle.stage_of("reference-extract") == "extracted"
    assert REFERENCE.webhook.deadline == 2.5


def test_without_an_oracle_the_invariants_that_read_the_llm_records_are_left_out(
    tmp_path: Path,
) -> None:
    spec = load_adapter(_write(tmp_path, MINIMAL))
    assert spec.oracle is None and spec.webhook.deadline is None
    names = {invariant.name for invariant in sum(applicable(spec), ())}
    assert {"stage_rules_hold", "webhook_answers_in_time"} <= names
    assert not names & {"outcome_as_predicted", "content_as_sent_and_answered"}


def test_stage_names_map_onto_the_targets_values(tmp_path: Path) -> None:
    text = MINIMAL + '\n[stages]\nreceived = "new"\nscored = "rated"\nextracted = "done"\n'
    spec = load_adapter(_write(tmp_path, text))
    assert spec.to_model_stage("rated") == "scored"
    assert spec.to_model_stage("failed") == "failed"


def test_yaml_reads_like_toml(tmp_path: Path) -> None:
    data = tomllib.loads(MINIMAL)
    from_yaml = load_adapter(_write(tmp_path, yaml.safe_dump(data), "chaos-target.yaml"))
    from_toml = load_adapter(_write(tmp_path, MINIMAL))
    assert dataclasses.replace(from_yaml, source=from_toml.source) == from_toml


def _broken(change: dict[str, Any]) -> dict[str, Any]:
    data = tomllib.loads(MINIMAL)
    for dotted, value in change.items():
        *path, key = dotted.split(".")
        table = data
        for part in path:
            table = table.setdefault(part, {})
        if value is None:
            del table[key]
        else:
            table[key] = value
    return data


BROKEN = [
    ({"target.name": None}, "target.name: missing (required)"),
    (
        {"target.nmae": "x"},
        "target.nmae: unknown key (known here: description, driver, name, python)",
    ),
    ({"webhook.service": "nowhere"}, "webhook.service: no service 'nowhere' in [services]"),
    ({"webhook.path": "hook"}, "webhook.path: must start with '/'"),
    ({"services.web.uses": ["redis"]}, "services.web.uses: unknown value(s) redis"),
    ({"services.web.faults": ["explode"]}, "services.web.faults: unknown value(s) explode"),
    ({"services.web.command": "python -m web"}, "services.web.command: expected a list"),
    (
        {"services.web.env": {"DB": "{databse_url}"}},
        "services.web.env.DB: unknown placeholder {databse_url}",
    ),
    ({"services.postgres": {}}, "services.postgres: 'postgres' is a service chaos-model provides"),
    (
        {"services.web.ready": {"json": {}}},
        "services.web.ready: expected exactly one of url, log, tcp, nats_subscriber",
    ),
    ({"services.web.busy": "http://x/status"}, "services.web.busy: expected a table with url"),
    ({"observe.correlate": "guess"}, "observe.correlate: expected 'update_id' or 'chat_message'"),
    ({"queue.kind": "jetstream"}, "queue.stream: missing (required for jetstream)"),
    ({"limits.ready_timeout": -1}, "limits.ready_timeout: must be positive"),
    ({"limits.max_attempts": 0}, "limits.max_attempts: must be at least 1"),
    ({"limits.settle": "3s"}, "limits.settle: expected a number, got a string '3s'"),
    ({"invariants.skip": ["no_such_invariant"]}, "invariants.skip: unknown value(s)"),
    ({"stages.received": "x", "stages.scored": "x"}, "two model stages map to the same value"),
    ({"target.driver": "no_colon"}, "target.driver: expected 'module:Class'"),
    (
        {"services.web.ready": "http://127.0.0.1:{ports[status]}/ok"},
        "services.web.ready.url: {ports[status]}: the service declares no port 'status'",
    ),
    ({"attach.llm_url": "http://127.0.0.1:1"}, "attach.database_url: missing (required)"),
    ({"llm.key": "cookie"}, "llm.key: expected one of user, header, prompt, got 'cookie'"),
    ({"llm.key": "header"}, "llm.key_header: missing (required with key = 'header')"),
    (
        {"llm.key": "prompt", "llm.key_pattern": "(id"},
        "llm.key_pattern: not a valid regular expression",
    ),
    ({"llm.rules": "facts"}, "llm.rules: expected a list"),
    ({"llm.rules": [{"tool": "x"}]}, "llm.rules[0].name: missing (required)"),
    ({"llm.rules": [{"name": "a", "colour": "red"}]}, "llm.rules[0].colour: unknown key"),
    (
        {"llm.rules": [{"name": "a", "json": {"x": 1}, "text": "x"}]},
        "llm.rules[0].text: give one of answer, json or text, not json and text",
    ),
    (
        {"llm.rules": [{"name": "a", "answer": "poem"}]},
        "llm.rules[0].answer: expected one of schema, score, extract, text, got 'poem'",
    ),
    (
        {"llm.rules": [{"name": "a", "provider": "gemini"}]},
        "llm.rules[0].provider: expected one of openai, anthropic, ollama",
    ),
    ({"llm.rules": [{"name": "a", "prompt": "[x"}]}, "llm.rules[0].prompt: not a valid regular"),
    ({"llm.rules": [{"name": "a"}, {"name": "a"}]}, "llm.rules: two rules are named 'a'"),
    ({"webhook.deadline": -1}, "webhook.deadline: must be positive"),
    ({"oracle.message_key": "message"}, "oracle.message_key: expected one {id} in it"),
    ({"oracle.message_key": "m-{id}"}, "oracle.calls: missing (required)"),
    (
        {"oracle.message_key": "m-{id}", "oracle.calls": {"received": "x"}},
        "oracle.calls.received: not a stage whose move stores an LLM answer",
    ),
    (
        {"oracle.message_key": "m-{id}", "oracle.calls": {"scored": "s"}, "oracle.extra_calls": -1},
        "oracle.extra_calls: must be 0 or more",
    ),
    (
        {"stage_graph.requires": {"extracted": ["teleported"]}},
        "stage_graph.requires.extracted: unknown stage 'teleported'",
    ),
    (
        {"stage_graph.requires": {"scored": ["extracted"], "extracted": ["scored"]}},
        "stage_graph.requires.scored: the stages require each other in a circle",
    ),
    ({"stage_graph.terminal": ["done"]}, "stage_graph.terminal: unknown value(s) done"),
]


@pytest.mark.parametrize(("change", "message"), BROKEN, ids=[m.split(":")[0] for _, m in BROKEN])
def test_a_broken_adapter_names_the_key_and_the_problem(
    change: dict[str, Any], message: str, tmp_path: Path
) -> None:
    source = tmp_path / "chaos-target.toml"
    with pytest.raises(AdapterError) as raised:
        parse_adapter(_broken(change), source)
    assert str(raised.value).startswith(f"{source}: "), raised.value
    assert message in str(raised.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="cannot read the adapter file"):
        load_adapter(tmp_path / "missing.toml")
    with pytest.raises(AdapterError, match="not valid TOML"):
        load_adapter(_write(tmp_path, "[target\nname = 1"))
    with pytest.raises(AdapterError, match="target: expected a table"):
        load_adapter(_write(tmp_path, 'target = "pipeline"'))


LLM_SECTION = """
[llm]
key = "header"
key_header = "X-Message-Id"

[[llm.rules]]
name = "facts"
tool = "record_facts"

[[llm.rules]]
name = "sentiment"
model = "gpt-4o*"
prompt = "(?i)sentiment"
json = { label = "positive" }

[[llm.rules]]
name = "greeting"
provider = "anthropic"
system = "greet"
text = "Hello from the stub"
"""


def test_the_llm_section_names_the_message_key_and_the_answer_rules(tmp_path: Path) -> None:
    spec = load_adapter(_write(tmp_path, MINIMAL + LLM_SECTION)).llm
    assert (spec.key, spec.key_header) == ("header", "X-Message-Id")
    facts, sentiment, greeting = spec.rules
    assert facts == AnswerRule(name="facts", tool="record_facts")
    assert (sentiment.model, sentiment.json) == ("gpt-4o*", {"label": "positive"})
    assert (greeting.provider, greeting.system, greeting.text) == (
        "anthropic",
        "greet",
        "Hello from the stub",
    )
    assert llm_spec_from_json(llm_spec_to_json(spec), "stub.json") == spec


def test_without_an_llm_section_the_stub_keeps_its_built_in_rules(tmp_path: Path) -> None:
    assert load_adapter(_write(tmp_path, MINIMAL)).llm == LLMSpec()
    assert REFERENCE.llm == LLMSpec()


def test_the_stubs_json_config_is_checked_like_the_section() -> None:
    with pytest.raises(AdapterError, match=r"^stub\.json: llm\.rules\[0\]\.answer: expected"):
        llm_spec_from_json({"rules": [{"name": "a", "answer": "poem"}]}, "stub.json")
    with pytest.raises(AdapterError, match=r"^stub\.json: llm: expected a JSON object, got list"):
        llm_spec_from_json([], "stub.json")


def test_a_stage_the_adapter_does_not_map_is_named(tmp_path: Path) -> None:
    text = MINIMAL + '\n[stages]\nreceived = "new"\n'
    spec = load_adapter(_write(tmp_path, text))
    with pytest.raises(AdapterError, match="the target stored the stage 'archived'"):
        spec.to_model_stage("archived")


def test_a_database_section_names_a_postgresql_build_and_the_extensions_it_needs(
    tmp_path: Path,
) -> None:
    build = tmp_path / "pg" / "bin"
    build.mkdir(parents=True)
    for name in ("postgres", "initdb"):
        (build / name).write_text("")
    text = MINIMAL + '\n[database]\npostgres = "pg/bin"\nextensions = ["vector"]\n'
    spec = load_adapter(_write(tmp_path, text))
    assert (spec.postgres_bin, spec.extensions) == (str(build.absolute()), ("vector",))
    (build / "initdb").unlink()
    with pytest.raises(AdapterError, match=r"database.postgres: .*pg/bin has no initdb"):
        load_adapter(_write(tmp_path, text))


TELEGRAM_USER = MINIMAL.replace('uses = ["postgres"]', 'uses = ["postgres", "telegram"]')


def test_a_service_that_calls_the_bot_api_gets_a_link_to_telegram(tmp_path: Path) -> None:
    target = load_adapter(_write(tmp_path, TELEGRAM_USER))
    assert target.telegram_users == ("web",)
    assert target.links()["web->telegram"] == "telegram"
    assert not load_adapter(_write(tmp_path, MINIMAL, "plain.toml")).telegram_users


def test_the_bot_api_url_renders_only_where_a_fake_runs(tmp_path: Path) -> None:
    from chaos_model.adapter._render import Placeholders

    empty = dict.fromkeys(("database_url", "nats_url", "llm_url", "webhook_secret"), "")
    common = {**empty, "failpoints_file": "", "bugs": "", "stream": "", "durable": ""}
    running = Placeholders(tmp_path, tmp_path, **common, bot_api_url="http://127.0.0.1:9")
    assert running.render("{bot_api_url}/bot{{token}}") == "http://127.0.0.1:9/bot{token}"
    with pytest.raises(AdapterError, match='declares uses = \\["telegram"\\]'):
        Placeholders(tmp_path, tmp_path, **common).render("{bot_api_url}")


def test_compose_and_attached_backends_refuse_a_service_that_uses_telegram(
    tmp_path: Path,
) -> None:
    from chaos_model.adapter._attach_section import check_attach
    from chaos_model.adapter._compose_section import ComposeSpec

    attached = TELEGRAM_USER + (
        '\n[attach]\ndatabase_url = "postgresql://127.0.0.1/x"\nllm_url = "http://127.0.0.1:1"\n'
        'urls = { web = "http://127.0.0.1:2" }\n'
    )
    target = load_adapter(_write(tmp_path, attached))
    with pytest.raises(AdapterError, match=r"services\.web\.uses: telegram: attached"):
        check_attach(target)
    with pytest.raises(AdapterError, match=r"services\.web\.uses: telegram: .*local stack only"):
        ComposeSpec(file="compose.yml").check(target)


def test_only_a_target_that_refuses_long_texts_is_sent_one(tmp_path: Path) -> None:
    assert REFERENCE.webhook.max_text == 4096
    assert load_adapter(_write(tmp_path, MINIMAL)).webhook.max_text == 0
