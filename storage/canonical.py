"""Canonical JSON: the one byte form of a JSON value that hoidong hashes.

Every hash over structured data (audit events, package manifests) is taken over
``canonical_json(value)``:

- UTF-8, no byte-order mark; strings as they are (no escaping of non-ASCII: "Hội đồng"
  is its UTF-8 bytes), with JSON's mandatory escapes only (``"``, ``\\``, control
  characters as ``\\uXXXX`` or the short forms ``\\n`` ``\\t`` ...);
- object keys sorted by their code points, no duplicate keys;
- no whitespace at all: separators are ``,`` and ``:``;
- numbers as Python's ``json`` writes them: integers in decimal, floats in the shortest
  form that reads back as the same double (``0.1``, ``1e-07``); NaN and infinities are
  refused;
- ``true``, ``false``, ``null``; arrays keep their order.

This is RFC 8785 (JCS) for every value hoidong writes (strings, integers, floats of
ordinary size, objects keyed by strings); it differs from JCS only in how some floats are
spelled (JCS follows ECMAScript: ``1e-7``), which is why an independent verifier should
use this definition — Python's ``json.dumps(value, sort_keys=True,
separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` encoded as UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_json", "normalised"]


def canonical_json(value: Any) -> bytes:
    """``value`` (JSON types only) in canonical form.

    Raises:
        ValueError: NaN or an infinity in ``value``.
        TypeError: a value JSON cannot hold, or object keys that are not all strings.
    """
    _check_keys(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def normalised(value: Any) -> Any:
    """``value`` as it reads back from a JSON column (tuples become lists, keys must be
    strings), so that what is hashed before storing equals what is hashed after."""
    return json.loads(canonical_json(value))


def _check_keys(value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"object keys must be strings, got {k!r}")
            _check_keys(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_keys(v)
