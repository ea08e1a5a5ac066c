"""What the document says phones accept from the AUTOUPDATE module (Auto Provision
Description, sections 2.5 and 4.4), checked when a file is assigned: a file the phone would
ignore is refused then, naming the rule, instead of served to no effect.

- ``accessList.csv`` (``Auto AList Url``) only on the access-control models: i31S, i30,
  i23S, i20S, i32V, i33V (4.4 item 7).
- Android models (F600, C600, C400) take no logo and no mmiset (2.5).
- The background, dial-peer and access-list files have fixed names: ``background.bmp``,
  ``dialPeer.csv``, ``accessList.csv`` (4.4 items 4, 6, 7).
"""

from __future__ import annotations

from typing import Final

from acs.provisioning.errors import ProvisioningError
from acs.provisioning.models import MODELS, Family, Model

#: purpose -> the one name its file must have
FIXED_NAMES: Final = {
    "logo": "background.bmp",
    "dpeer": "dialPeer.csv",
    "alist": "accessList.csv",
}
#: purposes Android models do not take
NOT_ON_ANDROID: Final = frozenset({"logo", "mmiset"})
ACCESS_CONTROL_MODELS: Final = tuple(m.name for m in MODELS.values() if m.access_control)


class AssignmentRefused(ProvisioningError):
    """An assignment the document's phones would ignore; ``rule`` names the rule broken."""

    def __init__(self, rule: str, detail: str):
        super().__init__(f"{rule}: {detail}")
        self.rule = rule


def check_assignment(purpose: str, file_name: str, model: Model | None, target: str) -> None:
    """Refuse assigning ``file_name`` for ``purpose`` to ``target`` (a model, or a phone of
    ``model``; None: a phone of no known model).

    Raises:
        AssignmentRefused: see the module docstring.
    """
    fixed = FIXED_NAMES.get(purpose)
    if fixed is not None and file_name != fixed:
        raise AssignmentRefused(
            f"fixed name of the {purpose} file",
            f"phones fetch it as {fixed!r} (section 4.4); upload it under that name, "
            f"not {file_name!r}",
        )
    if purpose == "alist" and (model is None or not model.access_control):
        who = f"{target} (model {model.name})" if model is not None else f"{target} (no model)"
        raise AssignmentRefused(
            "access table only on access-control models",
            f"{who} is not one of {', '.join(ACCESS_CONTROL_MODELS)} (section 4.4 item 7)",
        )
    if purpose in NOT_ON_ANDROID and model is not None and model.family is Family.ANDROID:
        raise AssignmentRefused(
            "no logo and no mmiset on Android models",
            f"{target} is an Android model ({model.name}), which ignores the {purpose} "
            "file (section 2.5)",
        )
