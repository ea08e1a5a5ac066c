"""The three kinds of refusal a service raises: not found, conflict, invalid.

Every service exception derives from exactly one of them, so the management API answers
each kind with one exception handler (404, 409, 422) instead of a ``try/except`` per route.
The message is the answer's ``detail``: it says what was refused, for an operator to read.
"""

from __future__ import annotations


class NotFound(LookupError):
    """What the caller named does not exist: a device, task, file, operator...

    The message names it (``no task 7``). The management API answers 404.
    """


class Conflict(Exception):
    """The request is well-formed, but the current state of what it names refuses it: a task
    that has already finished cannot be cancelled, a device with no SIP lines known yet cannot
    take SIP accounts, the last enabled admin cannot be deleted.

    The same request may succeed later, once that state has changed. The management API
    answers 409.
    """


class Invalid(ValueError):
    """What the request gives cannot be served: a malformed name, an unknown role, a filter
    on a field that does not exist, a task that does not fit the device.

    The message says which value and why. The management API answers 422.
    """
