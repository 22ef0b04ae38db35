"""Central and the agent judge a ``settings`` document by one rule: what central publishes, the agent applies."""

from __future__ import annotations

import pytest

from edge_agent.central_settings import effective_config
from shared.agent_settings import (
    IGNORED_REASONS,
    LOCAL_ONLY,
    MAX_IGNORED_REPORTED,
    ignored_settings_report,
    settings_document_problems,
)

DOCUMENTS = [
    {"sync.interval": 5, "sync.batch_size": 200},
    {"sync.interval": "5"},  # what an environment variable would say: the agent reads it as a number
    {"sync.intervall": 5},
    {"sync.interval": 0.001},
    {"sync.interval": float("nan")},
    {"sync.batch_size": 2.5, "agent.log_level": "loud", "pos.encoding": "base64", "scanner.grab": "maybe"},
    {"agent.data_dir": "/x", "pos.port": "/dev/null"},
    {"panel.host": "0.0.0.0", "sync.central_url": "http://evil.example"},  # noqa: S104
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_central_refuses_exactly_what_the_agent_would_not_apply(document):
    effective = effective_config(None, document, {"EDGE_POS_PORT": "loop://"})
    assert settings_document_problems(document) == effective.ignored
    assert set(effective.applied) == set(document) - set(effective.ignored)


def test_each_problem_says_what_is_wrong():
    problems = settings_document_problems(
        {"sync.intervall": 5, "sync.interval": 0.001, "agent.data_dir": "/x", "sync.batch_size": "many"}
    )
    assert problems == {
        "sync.intervall": "unknown setting (did you mean 'sync.interval'?)",
        "sync.interval": "must be from 0.05 to 3600; got 0.001",
        "agent.data_dir": "set on the store PC only; central may not change it",
        "sync.batch_size": "expected an integer, got 'many'",
    }


def test_what_stays_local_is_a_setting_of_the_agent():
    from shared.agent_settings import AgentConfig
    from shared.settings import specs

    assert {spec.name for spec in specs(AgentConfig)} >= LOCAL_ONLY


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_setting_the_agent_ignores_has_a_reason_code(document):
    effective = effective_config(None, document, {"EDGE_POS_PORT": "loop://", "EDGE_SYNC_BATCH_SIZE": "10"})
    assert set(effective.ignored_codes) == set(effective.ignored)
    assert set(effective.ignored_codes.values()) <= set(IGNORED_REASONS)
    if document.get("sync.batch_size") == 200:  # a value the agent would take, but for the PC's own
        assert effective.ignored_codes["sync.batch_size"] == "set_on_pc"


def test_the_report_of_ignored_settings_is_bounded_and_names_no_value():
    many = {f"sync.setting_{n:03}": "unknown_setting" for n in range(100)}
    assert len(ignored_settings_report(many)) == MAX_IGNORED_REPORTED
    report = ignored_settings_report(
        {"x" * 65 + ".y": "local_only", "sync.a": "got '13800138000'", "sync.b": "local_only"}
    )
    assert report == {"(not a setting name)": "local_only", "sync.a": "invalid_value", "sync.b": "local_only"}
