"""Merkle tree hash in the style of RFC 6962 (Certificate Transparency), SHA-256.

    leaf  = SHA-256(0x00 || data)
    node  = SHA-256(0x01 || left || right)
    MTH([])        = SHA-256("")
    MTH([d])       = leaf(d)
    MTH(d[0:n])    = node(MTH(d[0:k]), MTH(d[k:n])), k the largest power of 2 below n

The 0x00/0x01 prefixes keep a leaf from passing for a node (second-preimage attacks).
hoidong's package root is the tree over the payload manifest's lines (see
:func:`storage.archive.manifest_leaves`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["merkle_root"]


def merkle_root(leaves: Sequence[bytes]) -> str:
    """The tree hash of ``leaves`` (each leaf's data, in order), lowercase hex."""
    return _mth([hashlib.sha256(b"\x00" + d).digest() for d in leaves]).hex() if leaves \
        else hashlib.sha256(b"").hexdigest()


def _mth(hashes: list[bytes]) -> bytes:
    # Iterative over levels would be shorter, but RFC 6962 splits at powers of two,
    # which is what makes audit paths of other implementations agree.
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(hashes[:k]) + _mth(hashes[k:])).digest()
