"""Fanvil-style VoIP phone auto provisioning, sans I/O: no database, no HTTP, no clock.

- ``models``: the phone models, their general configuration file names, and ``resolve``
  (what a phone's request path asks for).
- ``configfile``: configurations as data, merged and substituted, rendered to and parsed from
  the text (``.cfg``/``.txt``) and XML formats; content digests and versions.
- ``crypto``: AES-256 with the phones' 64-hex-digit keys, and which key a file needs.

The reference is Fanvil's "Auto Provision Description" v1.1 (2018-05-11).
"""

from acs.provisioning.errors import MissingVariablesError, ProvisioningError

__all__ = ["MissingVariablesError", "ProvisioningError"]
