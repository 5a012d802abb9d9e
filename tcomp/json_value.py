"""Checked reading of JSON values that came from a file (tuning records, the ``graph.json`` of an exported model).

Such files are data from anyone, so each reader states the type it expects and the bounds it accepts, and any
other value raises ``JSONValueError`` (a ``ValueError``) naming the field: never a ``TypeError`` or an ``IndexError``
from deep inside, never a huge allocation. ``bool`` is not an int here (JSON keeps them apart), integers are bounded
(a 4000-digit integer is no shape), and nesting is bounded (``parse_json(text, max_depth)``, ``as_nested``).
"""

from __future__ import annotations

import json
import math
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class JSONValueError(ValueError):
    """A JSON value that does not have the type or bounds its field requires."""


def _reject_constant(name: str) -> Any:
    raise JSONValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes, max_depth: int | None = None) -> Any:
    """``json.loads`` that refuses ``NaN``/``Infinity`` and reports huge integers and deep nesting as
    ``JSONValueError`` (Python raises ``ValueError`` for integers of over 4300 digits and ``RecursionError`` for
    nesting deeper than its stack); with ``max_depth``, lists and objects nested deeper are refused too."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise JSONValueError(f"not JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise JSONValueError("not JSON this tcomp reads (nested too deeply)") from None
    except ValueError as error:
        raise JSONValueError(f"not JSON this tcomp reads ({error})") from None
    if max_depth is not None and depth(value) > max_depth:
        raise JSONValueError(f"not JSON this tcomp reads (nested deeper than {max_depth})")
    return value


def depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar: 0), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
        else:
            continue
        deepest = max(deepest, level + 1)
    return deepest


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JSONValueError(f"{what}: expected a JSON object, got {_kind(value)}")
    return value


def as_list(value: Any, what: str, max_length: int) -> list[Any]:
    if not isinstance(value, list):
        raise JSONValueError(f"{what}: expected a JSON list, got {_kind(value)}")
    if len(value) > max_length:
        raise JSONValueError(f"{what}: a list of {len(value)} entries (at most {max_length})")
    return value


def as_str(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise JSONValueError(f"{what}: expected a string, got {_kind(value)}")
    if len(value) > max_length:
        raise JSONValueError(f"{what}: a string of {len(value)} characters (at most {max_length})")
    return value


def as_int(value: Any, what: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JSONValueError(f"{what}: expected an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise JSONValueError(f"{what}: {_short(value)} is outside [{low}, {high}]")
    return value


def as_float(value: Any, what: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JSONValueError(f"{what}: expected a number, got {_kind(value)}")
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise JSONValueError(f"{what}: {_short(value)} is too large")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise JSONValueError(f"{what}: {number!r} is outside [{low}, {high}]")
    return number


def as_scalar(value: Any, what: str, max_length: int = 200) -> int | float | str | bool:
    """A JSON scalar: a bool, an int64, a finite float or a short string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return as_int(value, what)
    if isinstance(value, float):
        return as_float(value, what)
    if isinstance(value, str):
        return as_str(value, what, max_length)
    raise JSONValueError(f"{what}: expected a number, string or bool, got {_kind(value)}")


def as_nested(value: Any, what: str, max_depth: int, max_length: int) -> Any:
    """Scalars and lists of them, lists nested at most ``max_depth`` deep, each at most ``max_length`` long."""
    if isinstance(value, list):
        if max_depth <= 0:
            raise JSONValueError(f"{what}: lists nested too deeply")
        return [as_nested(v, what, max_depth - 1, max_length) for v in as_list(value, what, max_length)]
    if value is None:
        return None
    return as_scalar(value, what)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, (int, float)):
        return f"the number {_short(value)}"
    if isinstance(value, str):
        return f"the string {_short(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any) -> str:
    if isinstance(value, int) and abs(value) > 2**100:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
