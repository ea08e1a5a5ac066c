"""Settings: secrets given as files (ACS_<NAME>_FILE), as Docker and Kubernetes mount them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from acs.config import SECRET_FILE_SETTINGS, Settings


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[tuple, str]]:
    return [(e["loc"], e["msg"]) for e in exc.value.errors(include_input=False)]


def test_each_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path, monkeypatch):
    files = {}
    for name in SECRET_FILE_SETTINGS:
        files[name] = tmp_path / name
        files[name].write_text(f"{name}-from-file\n")
        monkeypatch.setenv(f"ACS_{name.upper()}_FILE", str(files[name]))
    monkeypatch.setenv("ACS_XMPP_JID", "acs@xmpp.example")  # its password goes with it
    settings = Settings()
    assert settings.xmpp_password == "xmpp_password-from-file"
    assert settings.admin_password == "admin_password-from-file"
    assert settings.cwmp_password == "cwmp_password-from-file"
    assert settings.secret_key == "secret_key-from-file"
    assert settings.admin_password_file == files["admin_password"]
    # read once, at start: a later change of the file changes nothing
    files["admin_password"].write_text("changed-afterwards")
    assert settings.admin_password == "admin_password-from-file"


def test_inner_whitespace_and_a_crlf_ending_are_handled(tmp_path):
    path = tmp_path / "pw"
    path.write_bytes(b"  two words \r\n\r\n")
    assert Settings(cwmp_password_file=path).cwmp_password == "  two words "


def test_without_files_nothing_changes():
    settings = Settings(admin_password="direct-password")
    assert settings.admin_password == "direct-password"
    assert (settings.cwmp_password, settings.secret_key) == (None, None)
    assert settings.admin_password_file is None


def test_a_secret_and_its_file_together_are_refused(tmp_path):
    path = tmp_path / "pw"
    path.write_text("from-the-file")
    with pytest.raises(ValidationError) as exc:
        Settings(secret_key="direct", secret_key_file=path)
    assert _errors(exc) == [
        (("secret_key_file",), "set ACS_SECRET_KEY or ACS_SECRET_KEY_FILE, not both")
    ]


def test_missing_and_empty_files_are_named_without_their_content(tmp_path):
    missing = tmp_path / "missing"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValidationError) as exc:
        Settings(admin_password_file=missing, cwmp_password_file=empty)
    assert _errors(exc) == [
        (("admin_password_file",), f"cannot read {missing}: No such file or directory"),
        (("cwmp_password_file",), f"{empty} is empty"),
    ]


def test_a_file_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe\x00hunter2")
    with pytest.raises(ValidationError) as exc:
        Settings(secret_key_file=path)
    assert _errors(exc) == [(("secret_key_file",), f"{path} is not UTF-8 text")]
    assert "hunter2" not in str(exc.value)


def test_the_admin_password_from_a_file_meets_the_same_rule(tmp_path):
    path = tmp_path / "pw"
    path.write_text("short\n")
    with pytest.raises(ValidationError) as exc:
        Settings(admin_password_file=path)
    assert _errors(exc) == [(("admin_password",), "String should have at least 8 characters")]
