"""Image conversion on a storage host with ``qemu-img`` (Debian's qemu-utils): a qcow2 image becomes
a raw file before it is copied into a backend of raw volumes (logical, rbd, a raw dir pool), with
the conversion's progress as ``qemu-img convert -p`` prints it.

A failure (no qemu-img, a corrupt image, an image larger than its volume) is a ``ConversionError``
saying why; a half-written output file is removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

QEMU_IMG = "qemu-img"
PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


class ConversionError(Exception):
    """qemu-img could not read or convert the image."""


def _qemu_img() -> str:
    found = shutil.which(QEMU_IMG)
    if found is None:
        raise ConversionError(
            f"{QEMU_IMG} is not installed on this storage host: it converts qcow2 images for raw "
            "backends (Debian's qemu-utils; `make system-deps`)"
        )
    return found


def virtual_size(path: str, fmt: str) -> int:
    """The size in bytes of the disk the image ``path`` (of format ``fmt``) holds."""
    done = subprocess.run(
        [_qemu_img(), "info", "--output=json", "-f", fmt, path], capture_output=True, timeout=60
    )
    if done.returncode != 0:
        raise ConversionError(f"{QEMU_IMG} cannot read the {fmt} image: {_last_line(done.stderr)}")
    return int(json.loads(done.stdout)["virtual-size"])


def to_raw(
    source: str, fmt: str, target: Path, max_bytes: int, progress: Callable[[float], None] | None = None
) -> int:
    """Convert the image ``source`` of format ``fmt`` into the raw file ``target`` (written
    beside, then renamed: a killed conversion leaves no file that looks finished);
    ``progress(percent)`` as qemu-img reports it. An image whose disk is larger than ``max_bytes``
    (the volume) is refused before anything is written. The raw file's size."""
    size = virtual_size(source, fmt)
    if size > max_bytes:
        raise ConversionError(
            f"the image's disk is {size} bytes, larger than the volume's {max_bytes}: make the volume "
            "at least that large"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    command = [_qemu_img(), "convert", "-p", "-f", fmt, "-O", "raw", source, str(partial)]
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            _follow(proc, progress)
            errors = proc.stderr.read() if proc.stderr else b""
            if proc.wait() != 0:
                raise ConversionError(f"{QEMU_IMG} convert failed: {_last_line(errors)}")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target.stat().st_size


def _follow(proc: subprocess.Popen, progress: Callable[[float], None] | None) -> None:
    """Read qemu-img's ``(NN.NN/100%)`` progress lines (separated by carriage returns)."""
    assert proc.stdout is not None
    pending = b""
    while chunk := proc.stdout.read1(256):
        pending += chunk
        *done, pending = re.split(rb"[\r\n]", pending)
        for line in done:
            match = PERCENT.search(line)
            if match and progress is not None:
                progress(float(match.group(1)))


def _last_line(text: bytes) -> str:
    lines = text.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no message"
