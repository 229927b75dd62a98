"""The monitor's restart rules, with an injected check, restart and clock (milliseconds)."""
from __future__ import annotations

import logging

import pytest

from pypi_repo.alerts import Alert, AlertDispatcher
from pypi_repo.monitor import HOUR, CheckResult, CommandResult, Monitor, Policy, SupervisorWatch

OK, BAD = CheckResult(True, "HTTP 200"), CheckResult(False, "timed out")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)

    @property
    def events(self) -> list[str]:
        return [a.event for a in self.alerts]


def make(script, policy=Policy(threshold=3, cooldown=60, max_backoff=1000, max_restarts_per_hour=3),
         restart_ok=True, supervisor=None):
    """A monitor whose checks follow ``script`` ("o" ok, "x" failed); returns it and its records."""
    clock, recorder, restarts = Clock(), Recorder(), []
    results = iter(OK if c == "o" else BAD for c in script)

    def restart() -> CommandResult:
        restarts.append(clock.now)
        return CommandResult(restart_ok, "pypi_repo: started" if restart_ok else "exit status 7: refused")

    monitor = Monitor(policy, lambda: next(results), restart, AlertDispatcher([recorder]), clock, supervisor)
    return monitor, clock, recorder, restarts


def play(monitor, clock, steps: int, interval: float = 10.0) -> None:
    for _ in range(steps):
        monitor.step()
        clock.now += interval


@pytest.mark.parametrize("script", ["oxoxxoxxoxxo", "xxoxxoxxo", "oxxoxx"])
def test_a_flapping_check_never_restarts(script):
    monitor, clock, recorder, restarts = make(script)
    play(monitor, clock, len(script))
    assert restarts == [] and recorder.events == []


def test_restart_after_exactly_threshold_consecutive_failures():
    monitor, clock, recorder, restarts = make("oxxxo")
    play(monitor, clock, 2)
    assert monitor.failures == 1 and restarts == []
    play(monitor, clock, 1)
    assert restarts == []
    play(monitor, clock, 1)  # the third failure
    assert len(restarts) == 1 and monitor.failures == 0
    assert recorder.events == ["restart"]
    assert "3 consecutive failed health checks" in recorder.alerts[0].message
    play(monitor, clock, 1)
    assert recorder.events == ["restart", "recovered"]


def test_failures_while_starting_up_are_not_counted_until_the_first_ok():
    monitor, clock, recorder, restarts = make("xxxxxoxxx")
    play(monitor, clock, 5, interval=10)  # 50 s < one cooldown (60 s)
    assert restarts == [] and monitor.failures == 0
    play(monitor, clock, 4, interval=10)  # ok, then three counted failures
    assert len(restarts) == 1


def test_cooldown_after_restart_then_exponential_backoff_then_cap_and_one_gave_up_alert(caplog):
    monitor, clock, recorder, restarts = make("o" + "x" * 200)
    play(monitor, clock, 4, interval=1)
    assert len(restarts) == 1
    # Cooldown 60 s: failures inside it are logged but not counted.
    with caplog.at_level(logging.WARNING, logger="pypi_repo.monitor"):
        play(monitor, clock, 50, interval=1)
    assert len(restarts) == 1 and "cooldown after restart" in caplog.text
    clock.now = restarts[0] + 60
    play(monitor, clock, 3, interval=1)
    assert len(restarts) == 2 and restarts[1] - restarts[0] >= 60
    assert monitor.cooldown_until - restarts[1] == pytest.approx(120)  # doubled
    clock.now = monitor.cooldown_until
    play(monitor, clock, 3, interval=1)
    assert len(restarts) == 3
    assert monitor.cooldown_until - restarts[2] == pytest.approx(240)
    clock.now = monitor.cooldown_until
    play(monitor, clock, 30, interval=1)  # cap of 3 per hour reached
    assert len(restarts) == 3
    assert recorder.events == ["restart", "restart", "restart", "gave_up"]
    assert recorder.alerts[-1].severity == "critical"
    # Once the first restart is an hour old, one more restart is allowed.
    clock.now = restarts[0] + HOUR + 1
    play(monitor, clock, 3, interval=1)
    assert len(restarts) == 4


def test_backoff_is_capped_by_max_backoff():
    policy = Policy(threshold=1, cooldown=100, max_backoff=300, max_restarts_per_hour=10)
    monitor, clock, recorder, restarts = make("o" + "x" * 50, policy)
    play(monitor, clock, 1)
    cooldowns = []
    for _ in range(4):
        play(monitor, clock, 1)
        cooldowns.append(monitor.cooldown_until - restarts[-1])
        clock.now = monitor.cooldown_until
    assert cooldowns == [100, 200, 300, 300]


def test_a_failing_restart_command_alerts_critical():
    monitor, clock, recorder, restarts = make("oxxx", restart_ok=False)
    play(monitor, clock, 4)
    assert recorder.events == ["restart_failed"]
    assert "refused" in recorder.alerts[0].message


def test_supervisord_gone_is_reported_once_started_when_configured_and_back_reported():
    alive = [True, False, False, True]
    starts = []
    watch = SupervisorWatch(lambda: alive.pop(0), lambda: starts.append(1) or CommandResult(True, ""))
    monitor, clock, recorder, _ = make("oooo", supervisor=watch)
    play(monitor, clock, 4)
    assert recorder.events == ["supervisord_down", "supervisord_started", "supervisord_started",
                               "supervisord_back"]
    assert len(starts) == 2


def test_one_failing_channel_does_not_stop_the_others():
    class Broken:
        name = "broken"

        def send(self, alert: Alert) -> None:
            raise ConnectionRefusedError("no route")

    recorder = Recorder()
    outcome = AlertDispatcher([Broken(), recorder]).send(Alert("restart", "m"))
    assert outcome == {"broken": "ConnectionRefusedError: no route", "recorder": None}
    assert recorder.events == ["restart"]
