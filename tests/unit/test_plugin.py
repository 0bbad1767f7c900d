"""The pytest plugin, as installed: options, marker and Hypothesis profiles via its entry point.

No test here requests ``chaos_stack`` or ``chaos_machine`` (they start real services).
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

OPTIONS = (
    "--chaos-backend",
    "--chaos-examples",
    "--chaos-steps",
    "--chaos-seed",
    "--chaos-profile",
)


def test_entry_point_is_declared() -> None:
    found = [ep for ep in entry_points(group="pytest11") if ep.name == "chaos_model"]
    assert len(found) == 1
    assert found[0].value == "chaos_model.pytest_plugin"


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    out = result.stdout.str()
    assert "chaos-model: stateful chaos testing" in out
    for option in OPTIONS:
        assert option in out


def test_options_come_from_the_entry_point(pytester: pytest.Pytester) -> None:
    """Blocking the entry point by name removes the options: they come from the plugin."""
    result = pytester.runpytest("-p", "no:chaos_model", "--help")
    assert result.ret == pytest.ExitCode.OK
    assert "--chaos-examples" not in result.stdout.str()


MARKED = """
import pytest

@pytest.mark.chaos
def test_marked():
    pass
"""


def test_chaos_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(MARKED)
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=1)
    assert "not found in `markers`" not in result.stdout.str()
    markers = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.chaos: a chaos test against a real stack" in markers


OPTION_VALUES = """
def test_options(pytestconfig):
    assert pytestconfig.getoption("--chaos-profile") == {profile!r}
    assert pytestconfig.getoption("--chaos-examples") == {examples!r}
    assert pytestconfig.getoption("--chaos-backend") == "local"
"""


def test_nightly_profile_is_accepted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(OPTION_VALUES.format(profile="nightly", examples=7))
    result = pytester.runpytest("--chaos-profile=nightly", "--chaos-examples=7")
    result.assert_outcomes(passed=1)


def test_defaults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(OPTION_VALUES.format(profile="dev", examples=None))
    pytester.runpytest().assert_outcomes(passed=1)


def test_bogus_profile_is_rejected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(OPTION_VALUES.format(profile="bogus", examples=None))
    result = pytester.runpytest("--chaos-profile=bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--chaos-profile*invalid choice*'bogus'*"])


PROFILES_REGISTERED = """
from hypothesis import HealthCheck, settings

def test_profiles():
    expected = {
        "chaos-dev": (10, 10),
        "chaos-ci": (30, 20),
        "chaos-nightly": (500, 40),
    }
    for name, (examples, steps) in expected.items():
        profile = settings.get_profile(name)
        assert profile.max_examples == examples
        assert profile.stateful_step_count == steps
        assert profile.deadline is None
        assert set(profile.suppress_health_check) == set(HealthCheck)
"""


def test_hypothesis_profiles_are_registered_at_configure(pytester: pytest.Pytester) -> None:
    # a fresh interpreter, so the profiles cannot leak in from this session
    pytester.makepyfile(PROFILES_REGISTERED)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_marker_and_profiles_are_absent_without_the_plugin(pytester: pytest.Pytester) -> None:
    """The control: block the entry point and both disappear (a subprocess, since pytest caches
    known marker names and Hypothesis keeps profiles process-wide)."""
    pytester.makepyfile(test_profiles=PROFILES_REGISTERED, test_marked=MARKED)
    result = pytester.runpytest_subprocess("-p", "no:chaos_model")
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    result.stdout.fnmatch_lines(["*InvalidArgument*chaos-dev*"])
    result.stdout.fnmatch_lines(["*Unknown pytest.mark.chaos*"])
