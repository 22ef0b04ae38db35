"""Triggers: event- and time-based rules that act on customers, once per occasion, with a control group.

:mod:`.kinds` says when each kind is due, :mod:`.declaration` checks and stores a trigger,
:mod:`.firing` fires due triggers exactly once, consent permitting. The names below are the
package's public face (the scheduler, API, CLI and tests import them from here).
"""

from central.campaigns.triggers.declaration import (
    DEFAULT_CONTROL_PERCENT,
    NAME_RE,
    PURPOSES,
    Declared,
    TriggerError,
    check,
    check_params,
    declare,
    set_enabled,
    trigger_named,
)
from central.campaigns.triggers.firing import CHUNK, evaluate, evaluate_all, in_control_group, local_today
from central.campaigns.triggers.kinds import KINDS, MAX_DAYS_BEFORE, birthday_window, revealed

__all__ = [
    "CHUNK",
    "DEFAULT_CONTROL_PERCENT",
    "KINDS",
    "MAX_DAYS_BEFORE",
    "NAME_RE",
    "PURPOSES",
    "Declared",
    "TriggerError",
    "birthday_window",
    "check",
    "check_params",
    "declare",
    "evaluate",
    "evaluate_all",
    "in_control_group",
    "local_today",
    "revealed",
    "set_enabled",
    "trigger_named",
]
