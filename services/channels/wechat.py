"""The WeChat official account (微信公众号) server protocol, as WeChat documents it: the
URL check, message signatures, plain and safe mode (EncodingAESKey: AES-256-CBC with the
key's first 16 bytes as IV and PKCS#7 padding to 32 bytes), and the XML both ways. Pure:
no I/O, no framework."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import time
from dataclasses import dataclass
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16
MAX_BODY = 64 * 1024


class WeChatError(Exception):
    """A request that did not come from WeChat, or that we cannot read."""


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """SHA-1 of the sorted strings joined: ``signature`` (token, timestamp, nonce) and, with
    the ciphertext as ``extra``, ``msg_signature``."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, *extra))).encode()).hexdigest()


def check_signature(given: str | None, token: str, timestamp: str, nonce: str, *extra: str) -> None:
    if not given or not hmac.compare_digest(given, signature(token, timestamp, nonce, *extra)):
        raise WeChatError("signature does not verify")


class Crypto:
    """Safe mode (安全模式) for one official account."""

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        self.key = base64.b64decode(encoding_aes_key + "=")
        self.app_id = app_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, text: str, *, random16: bytes | None = None) -> str:
        body = text.encode()
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body
        plain += self.app_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def decrypt(self, encrypted: str) -> str:
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except ValueError as exc:
            raise WeChatError("Encrypt is not base64") from exc
        if not raw or len(raw) % 16:
            raise WeChatError("Encrypt has a bad length")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK:
            raise WeChatError("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise WeChatError("message too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, app_id = plain[20 : 20 + length], plain[20 + length :]
        if app_id.decode(errors="replace") != self.app_id:
            raise WeChatError("the message is for another AppID")
        return message.decode()


def parse_xml(raw: bytes | str) -> dict[str, str]:
    """The child elements of ``<xml>`` as a dict; DTDs (entity tricks) are refused."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_BODY:
        raise WeChatError("message too large")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise WeChatError("DTDs are not accepted")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise WeChatError(f"not XML: {exc}") from exc
    return {child.tag: (child.text or "") for child in root}


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass(frozen=True)
class Incoming:
    to_user: str  # the official account's original id (gh_…)
    from_user: str  # the follower's OpenID
    create_time: int
    msg_type: str
    content: str | None
    msg_id: str | None
    event: str | None

    @property
    def dedupe_key(self) -> str:
        # WeChat: deduplicate messages by MsgId, events by FromUserName + CreateTime
        return self.msg_id or f"{self.from_user}:{self.create_time}"


def incoming(fields: dict[str, str]) -> Incoming:
    try:
        return Incoming(
            to_user=fields["ToUserName"],
            from_user=fields["FromUserName"],
            create_time=int(fields["CreateTime"]),
            msg_type=fields["MsgType"],
            content=fields.get("Content"),
            msg_id=fields.get("MsgId") or None,
            event=fields.get("Event") or None,
        )
    except (KeyError, ValueError) as exc:
        raise WeChatError(f"not a WeChat message: {exc}") from exc


def text_reply(to_user: str, from_user: str, content: str, now: int | None = None) -> str:
    """A passive reply (被动回复) carrying text."""
    created = int(time.time()) if now is None else now
    return (
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
        f"<Content>{_cdata(content)}</Content></xml>"
    )


def encrypted_reply(crypto: Crypto, token: str, reply_xml: str, timestamp: str, nonce: str) -> str:
    encrypted = crypto.encrypt(reply_xml)
    msg_signature = signature(token, timestamp, nonce, encrypted)
    return (
        f"<xml><Encrypt>{_cdata(encrypted)}</Encrypt>"
        f"<MsgSignature>{_cdata(msg_signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>"
    )
