"""AES-256 with the phones' 64-hex-digit keys: vectors, round trips, refusals, openssl."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from acs.provisioning import ProvisioningError, configfile, crypto
from acs.provisioning.crypto import KeyPurpose
from acs.provisioning.models import GeneralFile, MacFile, NamedFile

# FIPS-197 Appendix C.3 (AES-256).
FIPS_KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
FIPS_PLAIN = bytes.fromhex("00112233445566778899aabbccddeeff")
FIPS_CIPHER = bytes.fromhex("8ea2b7ca516745bfeafc49904b496089")

KEY = "6B" * 16 + "a1" * 16
OTHER_KEY = "6b" * 16 + "a2" * 16
IV = bytes(range(16))
NOT_BLOCKS = "bytes of ciphertext is not a positive multiple of 16"
BAD_PADDING = "cannot decrypt: wrong key or damaged file (bad padding)"
CONFIG = (
    b"<<VOIP CONFIG FILE>>Version:2.0002\r\n\r\n<GLOBAL CONFIG MODULE>\r\nTime Zone :32\r\n"
    b"\r\n<<END OF FILE>>\r\n"
)


def test_parse_key():
    assert crypto.parse_key(FIPS_KEY) == bytes(range(32))
    assert crypto.parse_key(FIPS_KEY.upper()) == bytes(range(32))
    assert crypto.parse_key(KEY) == b"\x6b" * 16 + b"\xa1" * 16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "got 0 characters"),
        ("0" * 63, "got 63 characters"),
        ("0" * 65, "got 65 characters"),
        ("0" * 32, "got 32 characters"),
        ("g" + "0" * 63, "got 64 characters, not all hexadecimal"),
        (" " + "0" * 63, "got 64 characters, not all hexadecimal"),
        ("0" * 64 + "\n", "got 65 characters"),
        ("0x" + "0" * 64, "got 66 characters"),
        ("00 " * 21 + "0", "got 64 characters, not all hexadecimal"),
    ],
)
def test_parse_key_refuses(text, message):
    with pytest.raises(ProvisioningError) as caught:
        crypto.parse_key(text)
    assert str(caught.value) == (
        f"an AES key must be exactly 64 hexadecimal digits (0-9, A-F); {message}"
    )


def test_ecb_known_answer():
    encrypted = crypto.encrypt(FIPS_PLAIN, FIPS_KEY)
    # One block of data, then one whole block of PKCS#7 padding.
    assert len(encrypted) == 32
    assert encrypted[:16] == FIPS_CIPHER
    assert crypto.decrypt(encrypted, FIPS_KEY) == FIPS_PLAIN
    assert crypto.encrypt(FIPS_PLAIN + FIPS_PLAIN, FIPS_KEY, "ecb")[16:32] == FIPS_CIPHER


def test_cbc_layout_is_iv_then_ciphertext():
    # With an all-zero IV the first CBC block is the ECB block.
    encrypted = crypto.encrypt(FIPS_PLAIN, FIPS_KEY, "cbc", iv=bytes(16))
    assert len(encrypted) == 48
    assert encrypted[:16] == bytes(16)
    assert encrypted[16:32] == FIPS_CIPHER
    assert crypto.encrypt(CONFIG, KEY, "cbc", iv=IV)[:16] == IV


def test_cbc_iv_is_random_by_default():
    first, second = crypto.encrypt(CONFIG, KEY, "cbc"), crypto.encrypt(CONFIG, KEY, "cbc")
    assert first[:16] != second[:16]
    assert crypto.decrypt(first, KEY, "cbc") == crypto.decrypt(second, KEY, "cbc") == CONFIG


@pytest.mark.parametrize("mode", ["ecb", "cbc"])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 31, 32, 1000])
def test_round_trip(mode, size):
    data = bytes(i % 251 for i in range(size))
    encrypted = crypto.encrypt(data, KEY, mode)
    overhead = 16 if mode == "cbc" else 0
    assert len(encrypted) == overhead + (size // 16 + 1) * 16
    assert crypto.decrypt(encrypted, KEY, mode) == data
    assert crypto.decrypt(encrypted, KEY.lower(), mode) == data


@pytest.mark.parametrize("mode", ["ecb", "cbc"])
def test_wrong_key_is_refused(mode):
    iv = {"ecb": None, "cbc": IV}[mode]
    encrypted = crypto.encrypt(CONFIG, KEY, mode, iv=iv)
    with pytest.raises(ProvisioningError) as caught:
        crypto.decrypt(encrypted, OTHER_KEY, mode)
    assert str(caught.value) == BAD_PADDING


def test_wrong_mode_is_refused():
    encrypted = crypto.encrypt(CONFIG, KEY, "ecb")
    with pytest.raises(ProvisioningError) as caught:
        crypto.decrypt(encrypted, KEY, "cbc")
    assert str(caught.value) == BAD_PADDING


def _flip_last_bit(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


@pytest.mark.parametrize(
    ("mode", "damage", "message"),
    [
        ("ecb", lambda d: d[:-1], f"not AES-256-ECB data: 111 {NOT_BLOCKS}"),
        ("ecb", lambda d: b"", f"not AES-256-ECB data: 0 {NOT_BLOCKS}"),
        ("ecb", _flip_last_bit, BAD_PADDING),
        ("cbc", lambda d: d[:-1], f"not AES-256-CBC data: 111 {NOT_BLOCKS}"),
        ("cbc", lambda d: d[:16], f"not AES-256-CBC data: 0 {NOT_BLOCKS}"),
        ("cbc", lambda d: d[:15], "too short for AES-256-CBC: 15 bytes"),
        ("cbc", _flip_last_bit, BAD_PADDING),
    ],
)
def test_damaged_data_is_refused(mode, damage, message):
    iv = {"ecb": None, "cbc": IV}[mode]
    encrypted = crypto.encrypt(CONFIG, KEY, mode, iv=iv)
    assert len(encrypted) == {"ecb": 112, "cbc": 128}[mode]
    with pytest.raises(ProvisioningError) as caught:
        crypto.decrypt(damage(encrypted), KEY, mode)
    assert str(caught.value) == message


def test_a_cbc_file_without_its_iv_is_caught_by_the_parser():
    # CBC blocks only depend on the previous one: padding cannot see a lost first block, the
    # configuration parser (which needs the header) can.
    encrypted = crypto.encrypt(CONFIG, KEY, "cbc", iv=IV)
    assert crypto.decrypt(encrypted[16:], KEY, "cbc") == CONFIG[16:]
    with pytest.raises(ProvisioningError) as caught:
        configfile.parse_text(crypto.decrypt(encrypted[16:], KEY, "cbc"))
    assert str(caught.value) == "line 1: expected the <<VOIP CONFIG FILE>> header"


def test_bad_arguments():
    with pytest.raises(ProvisioningError, match=r"^unknown AES mode 'gcm': choose ecb or cbc$"):
        crypto.encrypt(CONFIG, KEY, "gcm")  # type: ignore[arg-type]
    with pytest.raises(ProvisioningError, match=r"^unknown AES mode 'gcm': choose ecb or cbc$"):
        crypto.decrypt(CONFIG, KEY, "gcm")  # type: ignore[arg-type]
    with pytest.raises(ProvisioningError, match=r"^ECB takes no IV$"):
        crypto.encrypt(CONFIG, KEY, "ecb", iv=IV)
    with pytest.raises(ProvisioningError, match=r"^the CBC IV must be 16 bytes, got 8$"):
        crypto.encrypt(CONFIG, KEY, "cbc", iv=bytes(8))
    with pytest.raises(ProvisioningError, match=r"; got 3 characters$"):
        crypto.encrypt(CONFIG, "abc")
    with pytest.raises(ProvisioningError, match=r"; got 3 characters$"):
        crypto.decrypt(CONFIG, "abc")


def test_key_purpose():
    assert crypto.key_purpose(GeneralFile("X4")) is KeyPurpose.CONFIG
    assert crypto.key_purpose(MacFile("001565113af8", "text")) is KeyPurpose.COMMON
    assert crypto.key_purpose(NamedFile("room-101", "xml")) is KeyPurpose.COMMON
    assert KeyPurpose.CONFIG.label == "Config Encryption Key"
    assert KeyPurpose.COMMON.label == "Common Config Encryption Key"
    keys = {"config_key": "c" * 64, "common_key": "d" * 64}
    assert crypto.key_for(GeneralFile("C600"), **keys) == "c" * 64
    assert crypto.key_for(MacFile("001565113af8", "xml"), **keys) == "d" * 64
    assert crypto.key_for(NamedFile("a", "text"), **keys) == "d" * 64
    assert crypto.key_for(NamedFile("a", "text"), config_key="c" * 64, common_key=None) is None


# --- interoperability with the openssl command line (the documented byte layout) ---------------

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


def _openssl(*args: str, data: bytes) -> bytes:
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, "enc", *args], input=data, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@needs_openssl
def test_openssl_decrypts_our_ecb_file(tmp_path):
    path = tmp_path / "001565113af8.cfg"
    path.write_bytes(crypto.encrypt(CONFIG, KEY, "ecb"))
    # The command of the module docstring, verbatim but for the file.
    plain = _openssl("-d", "-aes-256-ecb", "-K", KEY, "-nosalt", "-in", str(path), data=b"")
    assert plain == CONFIG


@needs_openssl
def test_openssl_decrypts_our_cbc_file(tmp_path):
    encrypted = crypto.encrypt(CONFIG, KEY, "cbc")
    path = tmp_path / "body"
    path.write_bytes(encrypted[16:])  # what `tail -c +17 file` gives
    plain = _openssl(
        "-d", "-aes-256-cbc", "-K", KEY, "-nosalt", "-iv", encrypted[:16].hex(), "-in", str(path),
        data=b"",
    )  # fmt: skip
    assert plain == CONFIG


@needs_openssl
@pytest.mark.parametrize("mode", ["ecb", "cbc"])
def test_we_decrypt_openssl_files(mode):
    args = ["-aes-256-ecb"] if mode == "ecb" else ["-aes-256-cbc", "-iv", IV.hex()]
    body = _openssl("-e", *args, "-K", KEY, "-nosalt", data=CONFIG)
    encrypted = body if mode == "ecb" else IV + body
    assert encrypted == crypto.encrypt(CONFIG, KEY, mode, iv=None if mode == "ecb" else IV)
    assert crypto.decrypt(encrypted, KEY, mode) == CONFIG
