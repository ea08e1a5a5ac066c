"""The one error type of the provisioning core."""

from __future__ import annotations


class ProvisioningError(ValueError):
    """Something a phone asked for, an operator wrote or a file contains cannot be served.

    The message says what and where (a line number for file formats); it never contains key
    material. A ValueError, not ``acs.services.errors.Invalid``: this layer imports nothing
    of acs; the management API answers it with 422 as it does an Invalid.
    """


class MissingVariablesError(ProvisioningError):
    """Placeholders in a configuration name variables the device does not have."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        super().__init__(f"missing variables: {', '.join(names)}")
