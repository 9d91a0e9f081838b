"""A time-stamping authority for the tests (RFC 3161 over HTTP), on a real port.

Named as what it is: a stand-in for a public TSA, which cannot be reached from here. It
is a real one in every other respect — it parses the TimeStampReq, signs a TSTInfo with
its own RSA key in a CMS SignedData carrying its certificate — so hoidong's client and
``hoidong verify`` meet exactly what a public TSA sends.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class TestTsa:
    url: str
    certificate: x509.Certificate
    requests: int = 0
    refuse: bool = False

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def make_certificate(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def sign(request: bytes, key: rsa.RSAPrivateKey, cert: x509.Certificate, serial: int) -> bytes:
    """The TimeStampResp (DER) for a TimeStampReq."""
    req = tsp.TimeStampReq.load(request)
    now = datetime.now(UTC).replace(microsecond=0)
    tst = tsp.TSTInfo({
        "version": 1, "policy": "1.3.6.1.4.1.99999.1", "serial_number": serial,
        "message_imprint": req["message_imprint"], "gen_time": now,
        "nonce": req["nonce"], "accuracy": {"seconds": 1},
    })
    tst_der = tst.dump()
    attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
        cms.CMSAttribute({"type": "message_digest",
                          "values": [hashlib.sha256(tst_der).digest()]}),
    ])
    signature = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber({
            "issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number})}),
        "digest_algorithm": {"algorithm": "sha256"},
        "signed_attrs": attrs,
        "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
        "signature": signature,
    })
    signed = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "tst_info",
                               "content": cms.ParsableOctetString(tst_der)},
        "certificates": [asn1_cert],
        "signer_infos": [signer],
    })
    token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
    return bytes(tsp.TimeStampResp({"status": {"status": "granted"},
                                    "time_stamp_token": token}).dump())


@asynccontextmanager
async def running_tsa(name: str = "Test TSA hoidong") -> AsyncIterator[TestTsa]:
    key, cert = make_certificate(name)
    serials = itertools.count(1)
    state: dict[str, TestTsa] = {}

    async def handle(request: web.Request) -> web.Response:
        tsa = state["tsa"]
        tsa.requests += 1
        if tsa.refuse or request.content_type != "application/timestamp-query":
            return web.Response(status=400, text="refused")
        body = sign(await request.read(), key, cert, next(serials))
        return web.Response(body=body, content_type="application/timestamp-reply")

    app = web.Application()
    app.router.add_post("/tsa", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state["tsa"] = TestTsa(f"http://127.0.0.1:{port}/tsa", cert)
    try:
        yield state["tsa"]
    finally:
        await runner.cleanup()
