"""JSON request bodies that neither exhaust the stack nor carry numbers PostgreSQL refuses.

Python's `json` parses (and serialises) recursively, so nesting is measured on the raw bytes
before parsing, without recursion. `NaN`, `Infinity` and numbers too large for a double
(`1e400`) parse to non-finite floats, which `jsonb` refuses: `json_value_problem` finds them
(and values nested too deeply) with an explicit stack and names where they are, so a batch
can refuse one item and keep the others.
"""

import json
import math
import re
from array import array
from itertools import accumulate
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

# Far above any accepted shape (a batch envelope plus 16 levels of Segment `context`) and far
# below the depth at which `json.loads` / `json.dumps` would recurse out of stack.
MAX_BODY_DEPTH = 64

NON_FINITE_MESSAGE = "Must be a finite number (NaN, Infinity and numbers beyond ±1.8e308 cannot be stored)."

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_TOKEN = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")(\s*:)?|[\[\]{},]', re.DOTALL)

Path = tuple[str | int, ...]


class BodyTooDeep(ValueError):
    def __init__(self, path: str, limit: int):
        super().__init__(f"Nested deeper than {limit} levels.")
        self.path = path


def nesting_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    if brackets.count(b"[") + brackets.count(b"{") <= 1:
        return min(len(brackets), 1)
    return max(accumulate(array("b", brackets.translate(_STEP))))


def _path_to_depth(raw: bytes, limit: int) -> Path:
    """Where nesting first passes `limit`: the keys and indices leading there (a slow walk, for errors only)."""
    stack: list[list[Any]] = []  # [is_array, current key or index]
    for match in _TOKEN.finditer(raw):
        token = match.group(0)
        if token in (b"{", b"["):
            stack.append([token == b"[", 0 if token == b"[" else None])
            if len(stack) > limit:
                return tuple(frame[1] for frame in stack[:-1] if frame[1] is not None)
        elif token in (b"}", b"]"):
            if stack:
                stack.pop()
        elif token == b",":
            if stack and stack[-1][0]:
                stack[-1][1] += 1
        elif match.group(2) and stack and not stack[-1][0]:
            try:
                stack[-1][1] = json.loads(match.group(1))
            except ValueError:
                stack[-1][1] = "?"
    return ()


def field_of(path: Path) -> Path:
    """The field a deep path is in: `properties`, or `events[3].properties` within a list of items."""
    field: list[str | int] = []
    for index, part in enumerate(path):
        field.append(part)
        following = path[index + 1] if index + 1 < len(path) else None
        if (isinstance(part, str) and not isinstance(following, int)) or len(field) == 3:
            break
    return tuple(field)


def path_name(prefix: str, path: Path) -> str:
    """`properties` + ("a", 0) → `properties.a[0]`."""
    name = prefix
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def json_loads(raw: bytes | str, *, max_depth: int = MAX_BODY_DEPTH) -> Any:
    """Parse a JSON body after checking its nesting without recursion; BodyTooDeep names the field.

    NaN, Infinity and out-of-range numbers parse (to non-finite floats) so that the caller
    can name the field holding them: see `json_value_problem`.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if nesting_depth(data) > max_depth:
        field = field_of(_path_to_depth(data, max_depth))
        raise BodyTooDeep(path_name("", field) if any(isinstance(part, str) for part in field) else "body", max_depth)
    return json.loads(raw)


def json_value_problem(value: Any, *, max_depth: int | None = None, nul: bool = True) -> tuple[Path, str] | None:
    """The first thing PostgreSQL's `jsonb` (or our limits) would refuse in a parsed JSON value.

    Returns (path within the value, message): a non-finite number, a NUL character in a
    string or key (unless `nul` is false), or (path `()`) nesting deeper than `max_depth`
    (a flat object is 1). Walks with an explicit stack, so no nesting can exhaust Python's.
    """
    stack: list[tuple[Any, int, Path]] = [(value, 0, ())]
    while stack:
        item, level, path = stack.pop()
        if isinstance(item, dict):
            if max_depth is not None and level + 1 > max_depth:
                return (), f"Nested deeper than {max_depth} levels."
            if nul and any("\x00" in key for key in item):
                return path, "Must not contain NUL characters."
            # reversed, so problems are found in document order
            stack.extend((child, level + 1, (*path, key)) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            if max_depth is not None and level + 1 > max_depth:
                return (), f"Nested deeper than {max_depth} levels."
            stack.extend((child, level + 1, (*path, index)) for index, child in reversed(list(enumerate(item))))
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, NON_FINITE_MESSAGE
        elif nul and isinstance(item, str) and "\x00" in item:
            return path, "Must not contain NUL characters."
    return None


class JsonBodyParser(JSONParser):
    """DRF's JSON parser, refusing deep nesting before parsing and non-finite numbers after, naming the field."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding") or "utf-8"
        raw = stream.read() if stream is not None else b""
        try:
            data = json_loads(raw.decode(encoding))
        except BodyTooDeep as exc:
            raise ValidationError({exc.path: [str(exc)]}) from None
        except ValueError as exc:  # also UnicodeDecodeError
            raise ParseError(f"JSON parse error - {exc}") from None
        problem = json_value_problem(data, nul=False)  # NUL characters are each field's business
        if problem:
            raise ValidationError({path_name("", problem[0]) or "body": [problem[1]]})
        return data
