"""The agent side of hosts (no broker): what a heartbeat sends, the on-demand report, the loop."""

import threading

import pytest

from workers.agent import heartbeat, runtime, tasks


@pytest.fixture(autouse=True)
def close_driver(monkeypatch):
    """Each test gets a fresh process driver, closed after it (no libvirt connection left to GC)."""
    monkeypatch.setattr(runtime, "_driver", None)
    yield
    if runtime._driver is not None:
        runtime._driver.close()


class Sent(list):
    event: threading.Event


@pytest.fixture
def sent(monkeypatch):
    """Messages the agent would publish: (task name, kwargs, queue)."""
    messages = Sent()
    event = threading.Event()

    def send_task(name, kwargs=None, queue=None, **_options):
        messages.append((name, kwargs, queue))
        event.set()

    monkeypatch.setattr(heartbeat.current_app, "send_task", send_task)
    messages.event = event
    return messages


def test_report_sends_host_info_to_the_conductor_by_name(sent):
    info = heartbeat.report("sim-1", "test:///default")
    [(name, kwargs, queue)] = sent
    assert (name, queue) == ("workers.tasks.host_heartbeat", "conductor")
    assert kwargs["host"] == "sim-1"
    assert kwargs["info"]["roles"] == ["compute", "storage"]  # both roles by default
    [local] = kwargs["info"]["storage"]["backends"]
    assert (local["name"], local["type"], local["reaches"], local["simulated"]) == (
        "local",
        "dir",
        ["sim-1"],
        True,
    )
    assert kwargs["info"]["compute"]["vcpus"] == info.vcpus == 16
    assert kwargs["info"]["uri"] == "test:///default"
    assert runtime.driver("test:///default") is runtime.driver("test:///default")  # one per process


def test_report_host_task_reports_and_answers(sent, monkeypatch):
    monkeypatch.setenv(runtime.HOST_ENV, "sim-2")
    monkeypatch.setenv(runtime.URI_ENV, "test:///default")
    answer = tasks.report_host.run()
    assert answer["ok"] and answer["host"] == "sim-2" and answer["info"]["memory_mb"] > 0
    assert [(name, kwargs["host"]) for name, kwargs, _ in sent] == [("workers.tasks.host_heartbeat", "sim-2")]


def test_loop_reports_at_once_then_periodically_until_stopped(sent):
    thread = heartbeat.start("sim-3", "test:///default", every=0.05)
    try:
        assert thread.daemon
        assert sent.event.wait(5)
        deadline = threading.Event()
        for _ in range(100):
            if len(sent) >= 3:
                break
            deadline.wait(0.05)
        assert len(sent) >= 3
    finally:
        heartbeat.stop()
    assert not thread.is_alive()
    count = len(sent)
    threading.Event().wait(0.2)
    assert len(sent) == count


@pytest.mark.parametrize(
    "value, expected", [(None, 10.0), ("1", 1.0), ("0.5", 0.5), ("x", 10.0), ("-1", 10.0)]
)
def test_interval_from_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(heartbeat.INTERVAL_ENV, raising=False)
    else:
        monkeypatch.setenv(heartbeat.INTERVAL_ENV, value)
    assert heartbeat.interval() == expected
