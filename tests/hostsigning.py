"""Messages as an enrolled host's agent signs them (``workers.agent.signing`` does it in a real agent)."""

from __future__ import annotations

from workers import hostauth, hostkeys, services, tasknames


def enroll(host: str, **options) -> bytes:
    """Enroll ``host`` in the test database (no key file) and return its key."""
    done = services.enroll_host(host, **options)
    hostkeys.forget()
    return hostauth.decode_key(done.key)


def signed(task: str, signer: str, key: bytes, /, *args, **kwargs) -> dict:
    """``kwargs`` plus the ``auth`` of host ``signer`` over this message (``args``: its positional ones)."""
    return {**kwargs, "auth": hostauth.sign(key, signer, task, args, kwargs)}


def answer(signer: str, key: bytes, result: dict, /, **step) -> dict:
    """The keyword arguments of a signed ``transition_done`` (as Celery's link publishes it)."""
    return signed(tasknames.TRANSITION_DONE, signer, key, result, **step)
