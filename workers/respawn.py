"""Keep a process running: restart it when it dies, stop it (and only then) when told to.

``make run`` starts Zenith's processes with honcho, which stops every process as soon as one exits
(issue 16: killing one agent ended the whole cloud). Each Procfile command is therefore run under
``python -m workers.respawn run NAME -- COMMAND...``: a process that dies is logged and started again
after a short back-off (1 s, doubling up to 30 s, back to 1 s once it ran for a minute); SIGTERM or
SIGINT (honcho's Ctrl-C, systemd's stop) is passed on to the process, and the wrapper then exits with it.

``python -m workers.respawn procfile Procfile`` prints the Procfile with every command so wrapped (what
``make run`` hands to honcho). Standard library only: no Django is set up here.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
HEALTHY_AFTER = 60.0  # a process that ran this long restarts after FIRST_DELAY again


def wrap_procfile(text: str, python: str = ".venv/bin/python") -> str:
    """``text`` (a Procfile) with each ``name: command`` run under the restart wrapper."""
    lines = []
    for line in text.splitlines():
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or name.lstrip().startswith("#") or " " in name.strip():
            lines.append(line)
            continue
        name, command = name.strip(), command.strip()
        # sh -c: the command is expanded ($PWD, ${ZENITH_PORT:-8000}) at every start, as honcho would.
        lines.append(
            f"{name}: {python} -m workers.respawn run {name} -- sh -c {shlex.quote('exec ' + command)}"
        )
    return "\n".join(lines) + "\n"


def log(name: str, message: str) -> None:
    print(f"[respawn] {name}: {message}", file=sys.stderr, flush=True)


def run(name: str, argv: list[str], *, first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY) -> int:
    """Run ``argv`` until a stop signal; restart it whenever it exits. Returns the last exit code."""
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = first_delay
    restarts = 0
    code = 0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(argv)
        if restarts:
            log(name, f"restarted (pid {child.pid}, restart {restarts})")
        while True:
            try:
                code = child.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries wait() itself
                continue
        if stopping:
            break
        ran = time.monotonic() - started
        if ran >= HEALTHY_AFTER:
            delay = first_delay
        how = f"signal {-code}" if code < 0 else f"code {code}"
        log(name, f"exited with {how} after {ran:.1f} s; restarting in {delay:g} s")
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.05)
        delay = min(max_delay, delay * 2)
        restarts += 1
    log(name, f"stopped (exit {code})")
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def main(args: list[str]) -> int:
    if len(args) >= 2 and args[0] == "procfile":
        with open(args[1]) as procfile:
            sys.stdout.write(wrap_procfile(procfile.read(), *(args[2:3])))
        return 0
    if len(args) >= 4 and args[0] == "run" and args[2] == "--":
        return run(args[1], args[3:])
    print(
        "usage: python -m workers.respawn procfile PROCFILE [PYTHON]\n"
        "       python -m workers.respawn run NAME -- COMMAND [ARG...]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
