"""AES-256 for encrypted configuration files (Auto Provision Description v1.1, section 4.1
"By encryption status").

The document: "If a downloaded configuration file is encrypted using AES, an AES key is
required to decrypt the configuration file. The key must contain 64 hexadecimal characters".
64 hex digits are 32 bytes: AES-256. The phone has two key fields (Maintenance > Auto
Provision, Figure 3): "Config Encryption Key" for the general configuration file and "Common
Config Encryption Key" for the other files (MAC-named and user-named); ``key_purpose`` says
which one a request needs. A phone with a key in a field treats every file of that kind as
encrypted, so the ACS must encrypt all of them or none.

That assignment is the document's text. Its screenshot pairs the fields with "Current Config
Version" and "Common Config Version", which reads as if "common" meant the file common to
all phones, the general one: if phones turn out to disagree with the text, ``key_purpose``
is the one place to swap.

Byte layouts (the padding is PKCS#7, which is also ``openssl enc``'s default):

``ecb``
    ``AES-256-ECB(key, plaintext || padding)``: no IV, no salt, no header; a multiple of 16
    bytes, at least 16 (an empty plaintext is one block of padding). What phones of this
    class commonly implement. Check a file by hand with::

        openssl enc -d -aes-256-ecb -K <64 hex digits> -nosalt -in file.cfg

``cbc``
    ``IV || AES-256-CBC(key, IV, plaintext || padding)``: the 16-byte random IV first, then
    the ciphertext; at least 32 bytes. Check by hand with::

        openssl enc -d -aes-256-cbc -K <64 hex digits> -nosalt \\
            -iv "$(head -c 16 file.cfg | od -An -tx1 | tr -d ' \\n')" \\
            -in <(tail -c +17 file.cfg)

Decryption checks the length and the padding strictly and raises ``ProvisioningError`` on
any mismatch, so a wrong key or a damaged file is refused rather than returned as garbage.
The padding check misses a wrong key about once in 256 tries (a final byte of 0x01 is valid
padding); the configuration parsers, which refuse anything that is not a configuration file,
are the second check. Error messages never contain key material.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum
from typing import Final, Literal, TypeAlias

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from acs.provisioning.errors import ProvisioningError
from acs.provisioning.models import GeneralFile, ProvisioningRequest

Mode: TypeAlias = Literal["ecb", "cbc"]

BLOCK_SIZE: Final = 16
_KEY_RE: Final = re.compile(r"[0-9A-Fa-f]{64}")


class KeyPurpose(StrEnum):
    """Which of the phone's two key fields decrypts a file."""

    #: "Config Encryption Key": the general configuration file (``f0X4hw1.100.cfg``...).
    CONFIG = "config"
    #: "Common Config Encryption Key": every other file (MAC-named, user-named, ``$input``).
    COMMON = "common"

    @property
    def label(self) -> str:
        """The field's name on the phone's web page (Figure 3)."""
        return _LABELS[self]


_LABELS: Final = {
    KeyPurpose.CONFIG: "Config Encryption Key",
    KeyPurpose.COMMON: "Common Config Encryption Key",
}


def key_purpose(request: ProvisioningRequest) -> KeyPurpose:
    """The key field that decrypts the requested file: CONFIG for the general file, else COMMON."""
    return KeyPurpose.CONFIG if isinstance(request, GeneralFile) else KeyPurpose.COMMON


def key_for(
    request: ProvisioningRequest, *, config_key: str | None, common_key: str | None
) -> str | None:
    """Pick the key (64 hex digits, or None for a plaintext file) for the requested file.

    >>> from acs.provisioning.models import GeneralFile, MacFile
    >>> key_for(GeneralFile("X4"), config_key="c" * 64, common_key=None) == "c" * 64
    True
    >>> key_for(MacFile("001565113af8", "text"), config_key="c" * 64, common_key=None) is None
    True
    """
    return config_key if key_purpose(request) is KeyPurpose.CONFIG else common_key


def parse_key(text: str) -> bytes:
    """The 32 bytes of a key written as exactly 64 hexadecimal digits (either case).

    Raises:
        ProvisioningError: anything else (no surrounding spaces either); the message gives
            the length found, never the key.
    """
    if not _KEY_RE.fullmatch(text):
        raise ProvisioningError(
            f"an AES key must be exactly 64 hexadecimal digits (0-9, A-F); got {len(text)} "
            "characters" + ("" if len(text) != 64 else ", not all hexadecimal")
        )
    return bytes.fromhex(text)


def encrypt(data: bytes, key_hex: str, mode: Mode = "ecb", *, iv: bytes | None = None) -> bytes:
    """Encrypt a configuration file with AES-256 in the byte layout of the module docstring.

    Args:
        data: the rendered file.
        key_hex: the key, 64 hexadecimal digits.
        mode: ``"ecb"`` (no IV) or ``"cbc"`` (IV prepended).
        iv: for ``"cbc"`` only, the 16-byte IV; random when omitted (tests pass one).

    Raises:
        ProvisioningError: a malformed key, an unknown mode, or an IV that does not fit.
    """
    key = parse_key(key_hex)
    padder = padding.PKCS7(BLOCK_SIZE * 8).padder()
    padded = padder.update(data) + padder.finalize()
    if mode == "ecb":
        if iv is not None:
            raise ProvisioningError("ECB takes no IV")
        return _ecb(key).encryptor().update(padded)
    if mode == "cbc":
        iv = secrets.token_bytes(BLOCK_SIZE) if iv is None else iv
        if len(iv) != BLOCK_SIZE:
            raise ProvisioningError(f"the CBC IV must be {BLOCK_SIZE} bytes, got {len(iv)}")
        return iv + Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(padded)
    raise ProvisioningError(f"unknown AES mode {mode!r}: choose ecb or cbc")


def decrypt(data: bytes, key_hex: str, mode: Mode = "ecb") -> bytes:
    """Decrypt a file written by ``encrypt`` (or by openssl, see the module docstring).

    Raises:
        ProvisioningError: a malformed key, an unknown mode, a length that is not whole
            blocks (plus the IV for CBC), or bad padding (a wrong key or a damaged file).
    """
    key = parse_key(key_hex)
    if mode == "ecb":
        body, decryptor = data, _ecb(key).decryptor()
    elif mode == "cbc":
        if len(data) < BLOCK_SIZE:
            raise ProvisioningError(f"too short for AES-256-CBC: {len(data)} bytes")
        iv, body = data[:BLOCK_SIZE], data[BLOCK_SIZE:]
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    else:
        raise ProvisioningError(f"unknown AES mode {mode!r}: choose ecb or cbc")
    if not body or len(body) % BLOCK_SIZE:
        raise ProvisioningError(
            f"not AES-256-{mode.upper()} data: {len(body)} bytes of ciphertext is not a "
            f"positive multiple of {BLOCK_SIZE}"
        )
    padded = decryptor.update(body) + decryptor.finalize()
    unpadder = padding.PKCS7(BLOCK_SIZE * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ProvisioningError("cannot decrypt: wrong key or damaged file (bad padding)") from None


def _ecb(key: bytes) -> Cipher[modes.ECB]:
    # ECB leaks repeated blocks; it is here because it is what the phones decrypt.
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305
