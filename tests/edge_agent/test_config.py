"""The agent's settings table: every number has a sensible range, enforced at load."""

from __future__ import annotations

import pytest

from edge_agent.config import AgentConfig, load_config
from shared.settings import ConfigError, specs


def test_every_numeric_setting_has_a_range_that_holds_its_default():
    for spec in specs(AgentConfig):
        if spec.type in (int, float):
            assert spec.minimum is not None and spec.maximum is not None, f"{spec.name} has no range"
            assert spec.minimum <= spec.default <= spec.maximum, spec.name


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pos.baudrate", "99999999", "must be from 50 to 4000000; got 99999999"),
        ("sync.batch_size", "100000", "must be from 1 to 5000; got 100000"),
        ("sync.timeout", "0", "must be from 0.1 to 600; got 0.0"),
        ("agent.heartbeat_interval", "1e9", "must be from 1 to 86400"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_range(key, value, message):
    env = {"EDGE_POS_PORT": "loop://", "EDGE_" + key.upper().replace(".", "_"): value}
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        load_config(None, environ=env)
