"""tts_render's decisions: which router answers are retried, refused or failed; exit codes; its environment."""

from pathlib import Path

import pytest
from tts_render.__main__ import Config, ConfigError, exit_code, first_leaf
from tts_render.speech import MAX_ATTEMPTS, MAX_DELAY_S, Refused, Transient, decide, retry_after

ENV = {
    "KUBETTS_URL": "http://router:8080/",
    "KUBETTS_API_KEY": "sk-user",
    "KUBETTS_JOB_PLAN": "/etc/kube-tts/plan/plan.json.gz",
    "KUBETTS_JOB_ROOT": "/var/lib/kube-tts/jobs/ns/j",
    "JOB_COMPLETION_INDEX": "1",
    "KUBETTS_JOB_SHARDS": "3",
}


@pytest.mark.parametrize("status", [429, 502, 503, 504, None])
def test_busy_and_unreachable_are_waited_out_with_backoff(status):
    delays = [decide(status, attempt).delay_s for attempt in range(MAX_ATTEMPTS - 1)]
    assert all(decide(status, a).action == "retry" for a in range(MAX_ATTEMPTS - 1))
    assert delays[:3] == [1.0, 2.0, 4.0] and max(delays) <= MAX_DELAY_S
    assert decide(status, MAX_ATTEMPTS - 1).action == "fail"


def test_retry_after_wins_over_backoff():
    assert decide(429, 0, 7.0).delay_s == 7.0
    assert decide(503, 5, 0.5).delay_s == 0.5
    assert decide(503, 0, 3600.0).delay_s == MAX_DELAY_S
    assert retry_after("3") == 3.0 and retry_after("soon") is None and retry_after(None) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_a_4xx_waiting_cannot_heal_is_a_refusal(status):
    assert decide(status, 0).action == "refuse"


@pytest.mark.parametrize("status", [408, 409, 500, 501])
def test_other_failures_end_the_pod_for_the_job_to_retry(status):
    assert decide(status, 0).action == "fail"


def test_exit_codes():
    assert exit_code(None) == 0
    assert exit_code(Refused("001-00001", 400, "unknown voice 'nobody'")) == 2
    assert exit_code(Transient("x")) == 1 and exit_code(OSError("disk full")) == 1
    nested = ExceptionGroup("g", [ExceptionGroup("h", [Refused("001-00002", 404, "no model")])])
    assert exit_code(first_leaf(nested)) == 2


def test_config_from_the_pods_environment():
    config = Config.from_env(ENV)
    assert config.url == "http://router:8080" and config.index == 1 and config.shards == 3
    assert config.concurrency == 2 and config.plan == Path("/etc/kube-tts/plan/plan.json.gz")
    assert config.termination_log == Path("/dev/termination-log")
    assert Config.from_env({**ENV, "KUBETTS_JOB_CONCURRENCY": "4"}).concurrency == 4


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"KUBETTS_URL": "router:8080"}, "KUBETTS_URL"),
        ({"KUBETTS_JOB_PLAN": ""}, "KUBETTS_JOB_PLAN is not set"),
        ({"JOB_COMPLETION_INDEX": "3"}, "not below KUBETTS_JOB_SHARDS 3"),
        ({"KUBETTS_JOB_SHARDS": "0"}, "at least 1"),
        ({"KUBETTS_JOB_CONCURRENCY": "two"}, "whole number"),
    ],
)
def test_a_bad_environment_names_the_variable(change, words):
    with pytest.raises(ConfigError, match=words):
        Config.from_env({**ENV, **change})
