"""CMS (PKCS #7) signatures: checking a SignedData's signer, offline.

Used for the RFC 3161 time-stamp tokens (:mod:`storage.timestamp`: the content is the
encapsulated TSTInfo) and for the parties' detached signatures of the locked minutes'
PDF (:func:`check_detached`: the content is the PDF; made e.g. with ``cryptography``'s
``PKCS7SignatureBuilder`` and the ``DetachedSignature`` option, or ``openssl cms -sign
-binary -outform DER``). Only signed-attribute signatures are taken (the digest of the
content is the ``messageDigest`` attribute, the signature covers the attributes), with
RSA (PKCS #1 v1.5) or ECDSA keys and SHA-256/384/512.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

__all__ = ["SignatureError", "SignerCheck", "check_detached", "check_signer"]

_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
MAX_SIGNATURE = 1 << 20


class SignatureError(Exception):
    """``code``: ``signature.unreadable`` or ``signature.invalid`` (catalogue keys)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SignerCheck:
    """Who signed: the certificate's subject and the SHA-256 of its DER."""

    subject: str
    cert_sha256: str
    certificate: x509.Certificate


def check_signer(signer: cms.SignerInfo, certs: list[x509.Certificate],
                 content: bytes) -> x509.Certificate:
    """The signer's certificate, once its signature over ``content`` checks; raises
    :class:`SignatureError` (``signature.invalid``) otherwise."""
    cert = _signer_cert(signer, certs)
    digest_name = signer["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise SignatureError("signature.invalid", f"digest {digest_name} not supported")
    attrs = signer["signed_attrs"]
    if not len(attrs):
        raise SignatureError("signature.invalid", "no signed attributes")
    wanted = hashlib.new(digest_name, content).digest()
    digests = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
    if digests != [wanted]:
        raise SignatureError("signature.invalid", "the signed digest is not the content's")
    signed_bytes = b"\x31" + attrs.dump()[1:]  # [0] IMPLICIT → SET OF, same content
    signature = bytes(signer["signature"].native)
    key = cert.public_key()
    algo = _HASHES[digest_name]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, padding.PKCS1v15(), algo)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(algo))
        else:
            raise SignatureError("signature.invalid", "unsupported key type")
    except InvalidSignature:
        raise SignatureError("signature.invalid", "the signature does not verify") from None
    return cert


def check_detached(signature_der: bytes, content: bytes) -> SignerCheck:
    """Check a detached CMS signature (DER ContentInfo of a SignedData without its
    content) of ``content``."""
    if len(signature_der) > MAX_SIGNATURE:
        raise SignatureError("signature.unreadable", "larger than 1 MiB")
    try:
        info = cms.ContentInfo.load(signature_der)
        if info["content_type"].native != "signed_data":
            raise ValueError("not a SignedData")
        signed = info["content"]
        certs = [x509.load_der_x509_certificate(c.chosen.dump())
                 for c in signed["certificates"]]
        signer = signed["signer_infos"][0]
        _ = signed["encap_content_info"]["content_type"].native
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise SignatureError("signature.unreadable", f"unreadable signature: {exc}") from None
    cert = check_signer(signer, certs, content)
    der = cert.public_bytes(serialization.Encoding.DER)
    return SignerCheck(cert.subject.rfc4514_string(), hashlib.sha256(der).hexdigest(), cert)


def _signer_cert(signer: cms.SignerInfo, certs: list[x509.Certificate]) -> x509.Certificate:
    sid = signer["sid"]
    if sid.name == "issuer_and_serial_number":
        serial = sid.chosen["serial_number"].native
        for cert in certs:
            if cert.serial_number == serial:
                return cert
    elif certs:
        return certs[0]
    raise SignatureError("signature.invalid", "the signature carries no signer certificate")
