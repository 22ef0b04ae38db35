"""Declared settings: one table per deployable, loaded from TOML then environment, validated at start-up.

A deployable declares its settings as a frozen dataclass whose fields carry a dotted name and a help
line (see :func:`setting`). :func:`load` reads a TOML file such as::

    [pos]
    port = "/dev/ttyUSB0"
    baudrate = 9600

then environment variables (``EDGE_POS_BAUDRATE=19200``), and returns the dataclass or raises
:class:`ConfigError`, one line per problem naming the key and where it came from.

Path settings (of type ``Path``, or declared with ``path=``) never depend on the working directory
(docs/decisions/0079-relative-paths.md): a relative path in a file is taken from that file's folder,
and one from the environment or overrides, which have no folder, is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")

PathKind = Literal["path", "path-or-url", "path-or-name"]
PATH: PathKind = "path"  # a file or directory; empty (for a text setting) means none
PATH_OR_URL: PathKind = "path-or-url"  # a device path, or a URL such as socket://host:port (has "://")
PATH_OR_NAME: PathKind = "path-or-name"  # a name (a network interface), or a path: a value with a "/"
_PATH_WORDS = {  # what a value from the environment must be
    PATH: "an absolute path",
    PATH_OR_URL: "an absolute path or a URL",
    PATH_OR_NAME: "a name or an absolute path",
}
_PATH_TYPE_WORDS = {PATH: "a path string", PATH_OR_URL: "a path or URL string", PATH_OR_NAME: "a name or path string"}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(Exception):
    """A configuration problem, reported as one line naming the key and its source.

    :func:`load` reports every problem it finds at once: the first is this error's own
    ``source``, ``key`` and ``problem``, the rest are in ``others``, one line each in the message.
    """

    def __init__(self, source: str, key: str | None, problem: str, others: Sequence[ConfigError] = ()) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.others = tuple(others)
        where = f"{source}: {key}" if key else source
        # One line whatever the problem's text holds (a TOML parser's message may span lines).
        self.line = f"config error in {where}: {' '.join(problem.splitlines())}"
        super().__init__("\n".join(self.lines))

    @property
    def lines(self) -> list[str]:
        """One line per problem, this one first."""
        return [self.line, *(other.line for other in self.others)]


@dataclasses.dataclass(frozen=True)
class Spec:
    """One declared setting: dotted name, Python type, default, help text and limits."""

    name: str
    attr: str
    type: type
    default: Any
    help: str
    required: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    env_aliases: tuple[str, ...] = ()
    secret: bool = False
    maximum: float | None = None
    check: Callable[[Any], None] | None = None
    path: PathKind | None = None

    def env_name(self, prefix: str) -> str:
        return prefix + self.name.upper().replace(".", "_")


def setting(
    name: str,
    default: Any,
    help: str,
    *,
    required: bool = False,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    env_aliases: tuple[str, ...] = (),
    secret: bool = False,
    maximum: float | None = None,
    check: Callable[[Any], None] | None = None,
    path: PathKind | None = None,
) -> Any:
    """Declare a dataclass field as a setting with a dotted ``name`` and a one-line ``help``.

    ``minimum`` and ``maximum`` bound a numeric setting (both inclusive); a value outside them is a
    configuration error naming the range. ``check`` is called with the value once it has its type
    and raises ValueError saying what is wrong with it (an encoding Python does not know, a time
    zone that does not exist): the setting's error, like a value out of range. ``path`` declares a
    text setting that names a file, directory or device (:data:`PATH`, :data:`PATH_OR_URL`,
    :data:`PATH_OR_NAME`; a ``Path`` setting is a :data:`PATH` without saying so): it is resolved
    as :func:`load` says, and ``check`` sees the absolute path.
    """
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"setting {name}: minimum {minimum} is above maximum {maximum}")
    declared_path = path is not None or isinstance(default, Path)
    # A default comes from no file, so it has no folder to be relative to.
    if declared_path and _is_path(path or PATH, str(default)) and not Path(default).is_absolute():
        raise ValueError(f"setting {name}: a path setting's default must be absolute or empty; got {default!r}")
    meta = {
        "setting": {
            "name": name,
            "help": help,
            "required": required,
            "choices": choices,
            "minimum": minimum,
            "env_aliases": env_aliases,
            "secret": secret,
            "maximum": maximum,
            "check": check,
            "path": path,
        }
    }
    return dataclasses.field(default=default, metadata=meta)


def specs(cls: type) -> list[Spec]:
    """The declared settings of a settings dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        kind = _base_type(hints[f.name])
        out.append(
            Spec(
                name=meta["name"],
                attr=f.name,
                type=kind,
                default=f.default,
                help=meta["help"],
                required=meta["required"],
                choices=meta["choices"],
                minimum=meta["minimum"],
                env_aliases=meta["env_aliases"],
                secret=meta["secret"],
                maximum=meta.get("maximum"),
                check=meta.get("check"),
                path=meta.get("path") or (PATH if kind is Path else None),
            )
        )
    return out


def _base_type(hint: Any) -> type:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    if hint not in (str, int, float, bool, Path):
        raise TypeError(f"unsupported setting type {hint!r}")
    return typing.cast(type, hint)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _coerce(spec: Spec, value: Any, source: str, key: str, *, from_env: bool = False, base: Path | None = None) -> Any:
    """Turn a TOML value (typed) or an environment string into the declared type, or raise ConfigError.

    A path setting's relative value is taken from ``base`` (the settings file's folder), and refused
    without one.
    """
    kind = spec.type
    try:
        if kind is bool:
            if isinstance(value, bool):
                result: Any = value
            elif from_env and value.strip().lower() in _TRUE:
                result = True
            elif from_env and value.strip().lower() in _FALSE:
                result = False
            else:
                raise ValueError
        elif kind is int:
            if isinstance(value, bool | float):
                raise ValueError
            result = int(value.strip()) if from_env else value
            if not isinstance(result, int):
                raise ValueError
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            result = float(value.strip()) if from_env else value
            if not isinstance(result, int | float):
                raise ValueError
            result = float(result)
            if not math.isfinite(result):
                # NaN passes every comparison with a bound; infinity is no interval or size either.
                raise ConfigError(source, key, f"must be a finite number; got {value!r}")
        elif kind is Path:
            if not isinstance(value, str):
                raise ValueError
            if not value.strip():  # Path("") is the working directory
                raise ConfigError(source, key, "must not be empty (give an absolute path)")
            result = Path(_placed(spec, value, base, source, key))
        else:
            if not isinstance(value, str):
                raise ValueError
            result = _placed(spec, value, base, source, key) if spec.path else value
    except ValueError:
        raise ConfigError(source, key, f"expected {_type_word(kind)}, got {value!r}") from None
    if spec.choices is not None and result not in spec.choices:
        raise ConfigError(source, key, f"must be one of {', '.join(spec.choices)}; got {result!r}")
    if spec.minimum is not None and result < spec.minimum:
        raise ConfigError(source, key, f"must be {_range_words(spec)}; got {result!r}")
    if spec.maximum is not None and result > spec.maximum:
        raise ConfigError(source, key, f"must be {_range_words(spec)}; got {result!r}")
    if spec.check is not None:
        try:
            spec.check(result)
        except ValueError as exc:
            raise ConfigError(source, key, str(exc)) from None
    return result


def _is_path(kind: PathKind, value: str) -> bool:
    """Whether ``value`` of a setting declared ``kind`` names a file (else it is empty, a URL or a name)."""
    if not value.strip():
        return False
    if kind == PATH_OR_URL:
        return "://" not in value
    if kind == PATH_OR_NAME:
        return "/" in value  # a network interface's name never holds one
    return True


def _placed(spec: Spec, value: str, base: Path | None, source: str, key: str) -> str:
    """A path setting's value as an absolute path: ``~`` expanded, a relative path joined to ``base``.

    Without ``base`` (the environment, overrides) a relative path is refused rather than taken from
    the working directory, which is / under systemd and wherever a technician stands otherwise.
    """
    if spec.path is None or not _is_path(spec.path, value):
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    if base is None:
        raise ConfigError(
            source,
            key,
            f"must be {_PATH_WORDS[spec.path]}, got {value!r}"
            " (only a settings file's relative paths are resolved, against the file's folder)",
        )
    return os.path.normpath(base / expanded)


def _range_words(spec: Spec) -> str:
    """The allowed range of a bounded setting, in words: "at least 50", "at most 9", "from 1 to 65535"."""
    if spec.minimum is not None and spec.maximum is not None:
        return f"from {_number(spec.minimum)} to {_number(spec.maximum)}"
    if spec.minimum is not None:
        return f"at least {_number(spec.minimum)}"
    return f"at most {_number(spec.maximum)}"


def _number(value: float | None) -> str:
    """A bound as a person writes it: 4000000, 0.1 (never 4e+06)."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _kind_words(spec: Spec) -> str:
    """What a setting's value is, for the reference: its type, or what a path setting may name."""
    if spec.type is str and spec.path is not None:
        return _PATH_TYPE_WORDS[spec.path]
    return _type_word(spec.type)


def _type_word(kind: type) -> str:
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        Path: "a path string",
        str: "a string",
    }[kind]


def load(
    cls: type[T],
    *,
    path: Path | None,
    env_prefix: str,
    environ: Mapping[str, str] | None = None,
    reserved_env: frozenset[str] = frozenset(),
    overrides: Mapping[str, Any] | None = None,
    check_required: bool = True,
    check: Callable[[T], Sequence[ConfigError]] | None = None,
) -> T:
    """Load ``cls`` from the TOML file at ``path`` (if given), then ``environ``, then ``overrides``.

    Unknown sections and keys, wrong types, values out of range and missing required values raise
    one ConfigError that names every one of them (a file that cannot be read, at once).
    ``reserved_env`` names variables under ``env_prefix`` that are not settings (the config path).
    ``check_required=False`` suits commands that need only part of the table (enrolling a device).
    ``check`` looks further at the loaded settings (what needs several settings or a file of its
    own); it is given them with any invalid value at its default, and its problems are reported
    with the others.

    A path setting's value comes out absolute: ``~`` is expanded, a relative path in the file is
    taken from the file's folder, and a relative path from ``environ`` or ``overrides`` is refused.
    """
    environ = os.environ if environ is None else environ
    table = specs(cls)
    by_name = {s.name: s for s in table}
    values: dict[str, Any] = {}
    problems: list[ConfigError] = []

    text: str | None = None
    if path is not None:
        source = str(path)
        folder = Path(os.path.abspath(path)).parent  # what the file's relative paths are relative to
        try:
            with open(path, "rb") as fh:
                text = fh.read().decode("utf-8")
            raw = tomllib.loads(text)
        except FileNotFoundError:
            raise ConfigError(source, None, "file not found") from None
        except PermissionError:
            raise ConfigError(source, None, "permission denied") from None
        except IsADirectoryError:
            raise ConfigError(source, None, "is a directory, not a settings file (give the TOML file's path)") from None
        except OSError as exc:
            raise ConfigError(source, None, f"cannot be read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, None, f"invalid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(source, None, "invalid TOML: the file is not UTF-8") from None
        sections = {name.split(".", 1)[0] for name in by_name if "." in name}
        for section, content in raw.items():
            if isinstance(content, dict) and section not in sections:
                # One line for the whole section (an empty one too), at its header, not one per key in it.
                line = section_line(text, section)
                where = f"{source}:{line}" if line else source
                problems.append(ConfigError(where, section, "unknown section" + suggest(section, sections)))
                continue
            for key, value in _flatten({section: content}).items():
                spec = by_name.get(key)
                line = key_line(text, key) or section_line(text, section)
                where = f"{source}:{line}" if line else source
                if spec is None:
                    problems.append(ConfigError(where, key, "unknown key" + suggest(key, by_name)))
                    continue
                with _collected(problems):
                    values[key] = _coerce(spec, value, where, key, base=folder)

    env_names = {}
    for spec in table:
        env_names[spec.env_name(env_prefix)] = spec
        for alias in spec.env_aliases:
            env_names[alias] = spec
    for var in sorted(environ):
        if var.startswith(env_prefix) and var not in env_names and var not in reserved_env:
            known = {n: s for n, s in env_names.items() if n.startswith(env_prefix)}
            problems.append(ConfigError("environment", var, "unknown variable" + suggest(var, known)))
    for spec in table:
        # The prefixed name wins over an alias such as DATABASE_URL.
        for var in (*spec.env_aliases, spec.env_name(env_prefix)):
            if var in environ:
                with _collected(problems):
                    values[spec.name] = _coerce(spec, environ[var], "environment", var, from_env=True)

    for key, value in (overrides or {}).items():
        spec = by_name.get(key)
        if spec is None:
            problems.append(ConfigError("overrides", key, "unknown key" + suggest(key, by_name)))
            continue
        with _collected(problems):
            values[key] = _coerce(spec, value, "overrides", key, from_env=isinstance(value, str))

    kwargs = {}
    for spec in table:
        blank = isinstance(values.get(spec.name), str) and not values[spec.name].strip()
        if spec.name in values and not (blank and spec.required and check_required):
            kwargs[spec.attr] = values[spec.name]
        elif spec.required and check_required and not any(p.key == spec.name for p in problems):
            where = str(path) if path is not None else "environment"
            if blank and spec.env_name(env_prefix) in environ:
                where = "environment"
            state = "empty" if blank else "missing"
            missing = f"required setting is {state} (or set {spec.env_name(env_prefix)})"
            problems.append(ConfigError(where, spec.name, missing))
    loaded = cls(**kwargs)
    if check is not None:
        for problem in check(loaded):
            # A problem with a setting the file holds is said at its line, like the file's own.
            line = key_line(text, problem.key) if text is not None and problem.key else None
            if line is not None and problem.source == str(path):
                problem = ConfigError(f"{problem.source}:{line}", problem.key, problem.problem, problem.others)
            problems.append(problem)
    if problems:
        first = problems[0]
        raise ConfigError(first.source, first.key, first.problem, problems[1:])
    return loaded


def section_line(text: str, section: str) -> int | None:
    """The line of the TOML table header (``[section]``, ``[section.sub]``, ``[[section]]``), dotted key
    (``section.key = ...``) or inline table (``section = {...}``) where ``section`` first appears in
    ``text``; None if it cannot be found."""
    name = re.escape(section)
    quoted = f"(?:{name}|\"{name}\"|'{name}')"
    pattern = re.compile(rf"^\s*(?:\[\[?\s*{quoted}\s*[.\]]|{quoted}\s*[.=])")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


_HEADER = re.compile(r"^\s*\[\[?([^\]]+)\]")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def key_line(text: str, key: str) -> int | None:
    """The line that sets the dotted ``key`` in ``text``, under its table header or as a dotted key
    (``[server]`` then ``port = 1``, or ``server.port = 1``); None if it cannot be found (an inline table)."""
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment and ".".join(p for p in (table, _dotted(assignment.group(1))) if p) == key:
            return number
    return None


def _dotted(name: str) -> str:
    """A TOML key or table name as one dotted string: ``"server" . port`` is ``server.port``."""
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


@contextlib.contextmanager
def _collected(problems: list[ConfigError]) -> Iterator[None]:
    """Note a setting's ConfigError and go on, so that one run reports every problem."""
    try:
        yield
    except ConfigError as exc:
        problems.append(exc)


def suggest(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``key``, or nothing."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def reference_rows(cls: type, env_prefix: str) -> list[str]:
    """Markdown table rows documenting every setting; the docs must contain each row verbatim."""
    rows = []
    for spec in specs(cls):
        default = "*(required)*" if spec.required else _show_default(spec.default)
        env = spec.env_name(env_prefix)
        kind = "one of " + ", ".join(f"`{c}`" for c in spec.choices) if spec.choices else _kind_words(spec)
        if spec.maximum is not None:
            kind += f", {_range_words(spec)}"
        rows.append(f"| `{spec.name}` | `{env}` | {kind} | {default} | {spec.help} |")
    return rows


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "*(empty)*"
    return f"`{value}`"
