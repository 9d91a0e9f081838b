"""RFC 3161 time-stamps of a package's Merkle root.

Where a time-stamping authority (TSA) is configured, a package's root is stamped when
the package is made: the datum is the root as written in ``bag-info.txt`` (64 ASCII hex
digits), its SHA-256 the message imprint. The TSA's answer (a CMS SignedData holding
the TSTInfo) is kept in the bag as the tag file :data:`TOKEN_FILE` (DER), covered by the
tag manifest. :func:`check_token` is the offline check ``hoidong verify`` runs: the
imprint is this package's root, the signature verifies with the certificate the token
carries, and the signed digest is the TSTInfo's; with trust anchors given, that the
certificate is one of them or issued by one. Nothing here talks to the network:
:func:`request_der` and :func:`token_from_response` build and read the HTTP bodies (the
server posts them, ``application/timestamp-query``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from storage.signature import SignatureError, check_signer

__all__ = ["TOKEN_FILE", "TimestampCheck", "TimestampError", "check_token", "imprint",
           "request_der", "token_from_response"]

TOKEN_FILE = "timestamp.tsr"


class TimestampError(Exception):
    """The TSA's answer or a token cannot be used; ``code`` is a catalogue key."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class TimestampCheck:
    """What a token says and whether it holds: ``gen_time`` (the TSA's time, aware),
    ``tsa`` (the signer's subject), ``trusted`` (None: no trust anchors were given)."""

    gen_time: datetime
    tsa: str
    trusted: bool | None


def imprint(root: str) -> bytes:
    """The message imprint of a Merkle root (SHA-256 of its ASCII hex form)."""
    return hashlib.sha256(root.encode("ascii")).digest()


def request_der(root: str, nonce: int | None = None) -> bytes:
    """A TimeStampReq for ``root`` (asking for the TSA's certificate in the token)."""
    return bytes(tsp.TimeStampReq({
        "version": 1,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": imprint(root)},
        "nonce": nonce if nonce is not None else secrets.randbits(63),
        "cert_req": True,
    }).dump())


def token_from_response(body: bytes) -> bytes:
    """The token (ContentInfo, DER) of a TimeStampResp; ``TimestampError`` unless the
    TSA granted it."""
    try:
        resp = tsp.TimeStampResp.load(body)
        status = resp["status"]["status"].native
        token = resp["time_stamp_token"]
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError("timestamp.bad_response", f"unreadable answer: {exc}") from None
    if status not in ("granted", "granted_with_mods") or not isinstance(token, cms.ContentInfo):
        raise TimestampError("timestamp.refused", f"the TSA answered {status}")
    return bytes(token.dump())


def check_token(token_der: bytes, root: str,
                anchors: list[x509.Certificate] | None = None) -> TimestampCheck:
    """Check ``token_der`` against ``root`` offline; ``TimestampError`` names what fails
    (``timestamp.bad_token``, ``timestamp.wrong_imprint``, ``timestamp.bad_signature``,
    ``timestamp.untrusted``)."""
    try:
        info = cms.ContentInfo.load(token_der)
        signed = info["content"]
        encap = signed["encap_content_info"]
        tst_der = bytes(encap["content"].contents)
        tst = tsp.TSTInfo.load(tst_der)
        signer = signed["signer_infos"][0]
        certs = [x509.load_der_x509_certificate(c.chosen.dump())
                 for c in signed["certificates"]]
        given = tst["message_imprint"]
        algorithm = given["hash_algorithm"]["algorithm"].native
        hashed = bytes(given["hashed_message"].native)
        gen_time = tst["gen_time"].native
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise TimestampError("timestamp.bad_token", f"unreadable token: {exc}") from None
    if algorithm != "sha256" or hashed != imprint(root):
        raise TimestampError("timestamp.wrong_imprint",
                             "the token stamps another datum than this package's root")
    try:
        cert = check_signer(signer, certs, tst_der)
    except SignatureError as exc:
        raise TimestampError("timestamp.bad_signature", str(exc)) from None
    trusted = None
    if anchors is not None:
        trusted = any(cert == a or _issued_by(cert, a) for a in anchors)
        if not trusted:
            raise TimestampError("timestamp.untrusted",
                                 f"{cert.subject.rfc4514_string()} is not trusted")
    return TimestampCheck(gen_time, cert.subject.rfc4514_string(), trusted)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True

