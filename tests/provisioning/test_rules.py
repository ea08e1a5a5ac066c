"""The document's rules for assigned files: exact refusals, naming the rule."""

from __future__ import annotations

import pytest

from acs.provisioning.models import MODELS
from acs.provisioning.rules import AssignmentRefused, check_assignment


@pytest.mark.parametrize("model", ["i31S", "i30", "i23S", "i20S", "I32V", "I33V"])
def test_the_access_table_goes_to_the_access_control_models(model):
    check_assignment("alist", "accessList.csv", MODELS[model], model)


@pytest.mark.parametrize(
    ("purpose", "file_name", "model", "rule", "message"),
    [
        ("alist", "accessList.csv", "X6", "access table only on access-control models",
         "X6 (model X6) is not one of i20S, i30, i23S, i31S, I32V, I33V (section 4.4 item 7)"),
        ("alist", "accessList.csv", None, "access table only on access-control models",
         "001565113af8 (no model) is not one of i20S, i30, i23S, i31S, I32V, I33V "
         "(section 4.4 item 7)"),
        ("logo", "background.bmp", "F600", "no logo and no mmiset on Android models",
         "F600 is an Android model (F600), which ignores the logo file (section 2.5)"),
        ("mmiset", "mmiset6.z", "C400", "no logo and no mmiset on Android models",
         "C400 is an Android model (C400), which ignores the mmiset file (section 2.5)"),
        ("logo", "logo.bmp", "X6", "fixed name of the logo file",
         "phones fetch it as 'background.bmp' (section 4.4); upload it under that name, "
         "not 'logo.bmp'"),
        ("dpeer", "rules.csv", "X6", "fixed name of the dpeer file",
         "phones fetch it as 'dialPeer.csv' (section 4.4); upload it under that name, "
         "not 'rules.csv'"),
        ("alist", "access.csv", "i30", "fixed name of the alist file",
         "phones fetch it as 'accessList.csv' (section 4.4); upload it under that name, "
         "not 'access.csv'"),
    ],
)  # fmt: skip
def test_refusals_name_the_rule(purpose, file_name, model, rule, message):
    target = model or "001565113af8"
    with pytest.raises(AssignmentRefused) as refused:
        check_assignment(purpose, file_name, MODELS[model] if model else None, target)
    assert (refused.value.rule, str(refused.value)) == (rule, f"{rule}: {message}")


@pytest.mark.parametrize(
    ("purpose", "file_name", "model"),
    [
        ("logo", "background.bmp", "X6"),
        ("mmiset", "mmiset6.z", "X6"),
        ("image", "f600.z", "F600"),
        ("pbook", "500.csv", "C600"),
        ("dpeer", "dialPeer.csv", "F600"),
        ("logo", "background.bmp", None),  # a phone of no known model: only the names
    ],
)
def test_what_the_rules_let_through(purpose, file_name, model):
    check_assignment(purpose, file_name, MODELS[model] if model else None, "t")
