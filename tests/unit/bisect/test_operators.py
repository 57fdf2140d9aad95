"""operators.apply with the fault_ops TEST FIXTURE library: real aten overrides on the CPU key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stackcert.config import OperatorSelection
from stackcert.diagnose.probe_worker import operator_from_exception
from stackcert.engines import operators
from stackcert.errors import UsageError
from stackcert.oplibs import fault_ops


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    operators.reset()
    yield
    operators.reset()


def sel(**kw: object) -> OperatorSelection:
    return OperatorSelection.model_validate({"library": "fault_ops", **kw})


def test_effective_set_is_what_is_registered(tmp_path: Path) -> None:
    rec = tmp_path / "ops.json"
    got = operators.apply(sel(include=["mm", "add", "gelu"], exclude=["add"]), record_path=rec)
    assert got == ["gelu", "mm"] == fault_ops.active()
    data = json.loads(rec.read_text())
    assert data["effective"] == ["gelu", "mm"]
    assert data["requested"]["exclude"] == ["add"]
    assert data["pid"] > 0 and "schema_version" in data


def test_all_ops_by_default() -> None:
    assert operators.apply(sel()) == sorted(fault_ops.ALL_OPS)
    assert len(fault_ops.ALL_OPS) >= 25


def test_no_fault_overrides_are_bit_exact() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    x = torch.randn(4, 6)
    idx = torch.tensor([0, 2, 3])

    def compute() -> list[torch.Tensor]:
        return [
            torch.mm(a, b),
            x + 1,
            x * x,
            x / 3.0,
            torch.rsqrt(x.abs() + 1),
            x.pow(2),
            x.mean(-1, keepdim=True),
            torch.nn.functional.gelu(x, approximate="tanh"),
            torch.tanh(x),
            torch.softmax(x, -1),
            torch.exp(x),
            torch.cat([x, x]),
            x.index_select(0, idx),
            torch.where(x > 0, x, -x),
            torch.nn.functional.embedding(idx, x),
            x - 2,
            1 - x,
            -x,
            torch.sin(x),
            torch.cos(x),
            torch.cumsum(x, 1),
            x.argmax(-1),
        ]

    native = compute()
    operators.apply(sel())
    overridden = compute()
    for n, o in zip(native, overridden, strict=True):
        assert torch.equal(n, o)


def test_override_is_really_called_and_crash_names_the_operator() -> None:
    operators.apply(sel(faults={"mm": "crash"}))
    with pytest.raises(RuntimeError, match="planted kernel failure in operator 'mm'"):
        torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    operators.reset()
    assert torch.equal(torch.mm(torch.ones(2, 2), torch.ones(2, 2)), torch.full((2, 2), 2.0))


def test_nan_and_drift_faults() -> None:
    x = torch.ones(3)
    operators.apply(sel(faults={"exp": "nan", "tanh": "drift"}))
    assert torch.isnan(torch.exp(x)).all()
    drifted = torch.tanh(x)
    operators.reset()
    assert torch.allclose(drifted, torch.tanh(x) * (1 + fault_ops.DRIFT))
    assert not torch.equal(drifted, torch.tanh(x))


def test_excluded_operator_is_native() -> None:
    operators.apply(sel(faults={"mm": "crash"}, exclude=["mm"]))
    assert "mm" not in fault_ops.active()
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))  # no crash: excluded means native


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"include": ["addmn"]}, "did you mean 'addmm'"),
        ({"exclude": ["softmx"]}, "did you mean 'softmax'"),
        ({"faults": {"rsqrtt": "nan"}}, "did you mean 'rsqrt'"),
        ({"faults": {"mm": "explode"}}, "crash, nan, drift"),
    ],
)
def test_bad_names_are_usage_errors(kw: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        operators.apply(sel(**kw))
    assert needle in info.value.one_line()


def test_faults_need_the_fixture_library() -> None:
    with pytest.raises(UsageError, match="fault_ops"):
        operators.apply(OperatorSelection(library="flag_gems", faults={"mm": "crash"}))


def test_operator_from_exception() -> None:
    operators.apply(sel(faults={"gelu": "crash"}))
    try:
        torch.nn.functional.gelu(torch.ones(2))
    except RuntimeError as exc:
        assert operator_from_exception(exc, ["gelu", "mm"]) == "gelu"
        assert operator_from_exception(exc, ["mm"]) is None
    else:
        pytest.fail("the planted crash did not fire")


def test_drift_magnitude_is_a_parameter_of_the_fault() -> None:
    import torch

    from stackcert.oplibs import fault_ops

    assert fault_ops.parse_fault("drift") == ("drift", fault_ops.DRIFT)
    assert fault_ops.parse_fault("drift:1e-3") == ("drift", 1e-3)
    for bad in ("drift:x", "nan:1e-3", "wobble"):
        with pytest.raises(fault_ops.FaultOpsError):
            fault_ops.parse_fault(bad)
    x = torch.ones(4)
    try:
        fault_ops.enable(include=["tanh"], faults={"tanh": "drift:0.1"})
        out = torch.tanh(x)
    finally:
        fault_ops.disable()
    assert torch.allclose(out, torch.tanh(x) * 1.1)
