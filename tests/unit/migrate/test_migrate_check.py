"""`stackcert migrate-check` on fixture models in a fake plugin tree, and on a real vLLM model file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from plugin_tree import FIXTURES, add_model, expected, make_plugin

from stackcert.cli.app import main
from stackcert.migrate.apiindex import ModuleIndex
from stackcert.migrate.check import migrate_check
from stackcert.migrate.rules import RULES


@pytest.fixture(scope="module")
def vllm_index() -> ModuleIndex:
    """One index of the installed vLLM for the module: its confirming imports are paid once."""
    index = ModuleIndex.installed("vllm")
    assert index is not None
    return index


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return make_plugin(tmp_path / "vllm-plugin-FL")


def _found(result_issues: list, file: Path) -> set[tuple[int, str]]:
    return {(i.line, i.rule) for i in result_issues if i.file == str(file)}


def test_clean_model_has_no_issue(plugin: Path, vllm_index: ModuleIndex) -> None:
    model = add_model(plugin, "clean_model.py", "tiny")
    result = migrate_check(plugin, model, config_file=FIXTURES / "good_config.py", vllm=vllm_index)
    assert result.issues == []
    assert result.module == "vllm_fl.models.tiny"
    assert result.vllm_version  # the installed vLLM was checked, not skipped


def test_bad_model_reports_each_issue_on_its_line(plugin: Path, vllm_index: ModuleIndex) -> None:
    model = add_model(plugin, "bad_model.py", "bad")
    result = migrate_check(plugin, model, vllm=vllm_index)
    assert _found(result.issues, model) == expected(model)
    by_rule = {i.rule: i for i in result.issues}
    api = sorted((i.message, i.fix) for i in result.issues if i.rule == "missing-vllm-api")
    assert api == [
        (
            "vllm.logprobs has no 'NoSuchKind' in the installed vLLM (imported)",
            "this vLLM defines NoSuchKind nowhere: port it into vllm_fl (a shim) or stop using it",
        ),
        (
            "vllm.logprobs has no 'NoSuchLogprob' in the installed vLLM (imported)",
            "this vLLM defines NoSuchLogprob nowhere: port it into vllm_fl (a shim) or stop using it",
        ),
        (  # a real name imported from the wrong module: the fix says where this vLLM has it
            "vllm.logprobs has no 'SamplingParams' in the installed vLLM (imported)",
            "this vLLM defines it in vllm.sampling_params: `from vllm.sampling_params import SamplingParams`",
        ),
    ]
    assert (
        by_rule["relative-import"].fix
        == "use the absolute import `from vllm.model_executor.models.utils import maybe_prefix`"
    )
    assert by_rule["unregistered-model"].fix == (
        'add `ModelRegistry.register_model("BadForCausalLM", "vllm_fl.models.bad:BadForCausalLM")` '
        "to register_model()"
    )
    # The init file registers vllm_fl.models.bad:GhostForCausalLM, which bad.py does not define.
    ghost = [i for i in result.issues if i.rule == "registration-target"]
    assert (
        len(ghost) == 1
        and ghost[0].file.endswith("vllm_fl/__init__.py")
        and "GhostForCausalLM" in ghost[0].message
    )
    assert all(i.fix for i in result.issues) and set(by_rule) <= set(RULES)


def test_config_bridge_without_model_type(plugin: Path, vllm_index: ModuleIndex) -> None:
    model = add_model(plugin, "clean_model.py", "tiny")
    bad = FIXTURES / "bad_config.py"
    result = migrate_check(plugin, model, config_file=bad, vllm=vllm_index)
    assert _found(result.issues, bad) == expected(bad)
    empty = plugin / "empty_config.py"
    empty.write_text("HIDDEN = 16\n")
    result = migrate_check(plugin, model, config_file=empty, vllm=vllm_index)
    assert [(i.rule, i.line) for i in result.issues] == [("config-no-class", 1)]


def test_only_this_files_classes_are_checked_for_registration(plugin: Path, vllm_index: ModuleIndex) -> None:
    # Three other models are registered (one of them not even present): none of them is this file's concern.
    model = add_model(plugin, "clean_model.py", "tiny")
    init = plugin / "vllm_fl" / "__init__.py"
    init.write_text(
        init.read_text().replace('"TinyForCausalLM", "vllm_fl.models.tiny:TinyForCausalLM"', '"X", "m:X"')
    )
    result = migrate_check(plugin, model, vllm=vllm_index)
    assert [(i.rule, i.message) for i in result.issues] == [
        ("unregistered-model", f"model class TinyForCausalLM is not registered in {init}")
    ]


def test_registrations_in_patch_modules_constants_and_fstrings_count(
    plugin: Path, vllm_index: ModuleIndex
) -> None:
    # As in the real plugin: registration in a patch module, the architecture in a module constant,
    # and a loop registering a table of classes through an f-string target.
    init = plugin / "vllm_fl" / "__init__.py"
    init.write_text(
        init.read_text().replace('"TinyForCausalLM", "vllm_fl.models.tiny:TinyForCausalLM"', '"X", "m:X"')
    )
    patches = plugin / "vllm_fl" / "patches"
    patches.mkdir()
    (patches / "tiny.py").write_text(
        "from vllm.model_executor.models import registry as model_registry\n"
        '_ARCH = "TinyForCausalLM"\n'
        "def apply():\n"
        '    model_registry.ModelRegistry.register_model(_ARCH, "vllm_fl.models.tiny:TinyForCausalLM")\n'
        '    for arch, name in {"TwoForCausalLM": "TwoForCausalLM"}.items():\n'
        '        model_registry.ModelRegistry.register_model(arch, f"vllm_fl.models.two:{name}")\n'
    )
    model = add_model(plugin, "clean_model.py", "tiny")
    result = migrate_check(plugin, model, vllm=vllm_index)
    assert result.issues == []
    assert result.registration_files == [str(init), str(patches / "tiny.py")]
    two = plugin / "vllm_fl" / "models" / "two.py"
    two.write_text("class TwoForCausalLM:\n    pass\n\n\nclass TwoForSequenceClassification:\n    pass\n")
    assert migrate_check(plugin, two, vllm=vllm_index).issues == []  # the f-string may name either
    # The constant-named registration of a class tiny.py does not define is reported where it is made.
    (patches / "tiny.py").write_text((patches / "tiny.py").read_text().replace("tiny:Tiny", "tiny:Ghost"))
    issues = migrate_check(plugin, model, vllm=vllm_index).issues
    assert sorted((i.rule, Path(i.file).name, i.line) for i in issues) == [
        ("registration-target", "tiny.py", 4),
        ("unregistered-model", "tiny.py", 35),
    ]
    assert "architecture TinyForCausalLM is registered as vllm_fl.models.tiny:GhostForCausalLM" in "".join(
        i.message for i in issues
    )


def test_init_file_option_and_a_file_outside_the_tree(
    plugin: Path, tmp_path: Path, vllm_index: ModuleIndex
) -> None:
    outside = tmp_path / "tiny.py"
    shutil.copyfile(FIXTURES / "clean_model.py", outside)
    reg = tmp_path / "registry.py"
    reg.write_text(
        "from vllm import ModelRegistry\n"
        "from vllm_fl.models.tiny import TinyForCausalLM\n"
        'ModelRegistry.register_model("TinyForCausalLM", TinyForCausalLM)\n'
    )
    result = migrate_check(plugin, outside, init_file=reg, vllm=vllm_index)
    assert result.module == "vllm_fl.models.tiny" and result.init_file == str(reg)
    assert result.issues == []


def test_real_vllm_model_file_has_no_false_vllm_api_issue(plugin: Path, vllm_index: ModuleIndex) -> None:
    model = plugin / "vllm_fl" / "models" / "gemma3.py"
    shutil.copyfile(vllm_index.root / "model_executor" / "models" / "gemma3.py", model)
    result = migrate_check(plugin, model, vllm=vllm_index)
    relative_lines = {
        n
        for n, line in enumerate(model.read_text().splitlines(), start=1)
        if re.match(r"from \.+\w* import", line)
    }
    assert relative_lines  # the copied file still imports its vLLM siblings relatively
    assert {(i.line, i.rule) for i in result.issues} == {(n, "relative-import") for n in relative_lines}
    assert result.notes == []
    # Apply the suggested fixes: the file must then be clean, so the suggestions resolve in this vLLM.
    lines = model.read_text().splitlines()
    for issue in sorted(result.issues, key=lambda i: -i.line):  # bottom-up: line numbers stay valid
        fixed = issue.fix.removeprefix("use the absolute import `").removesuffix("`")
        lines[issue.line - 1 : issue.end_line or issue.line] = [fixed]
    model.write_text("\n".join(lines) + "\n")
    assert migrate_check(plugin, model, vllm=vllm_index).issues == []


def test_without_vllm_the_api_rules_are_skipped_with_a_note(
    plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ModuleIndex, "installed", classmethod(lambda cls, package: None))
    model = add_model(plugin, "bad_model.py", "bad")
    result = migrate_check(plugin, model)
    assert result.vllm_version is None
    assert "vLLM is not installed" in result.notes[0]
    assert not {i.rule for i in result.issues} & {"missing-vllm-api", "missing-vllm-module"}
    assert "missing-plugin-module" in {i.rule for i in result.issues}


def test_syntax_error_is_an_issue(plugin: Path, vllm_index: ModuleIndex) -> None:
    model = plugin / "vllm_fl" / "models" / "broken.py"
    model.write_text("def f(:\n")
    result = migrate_check(plugin, model, vllm=vllm_index)
    assert [(i.rule, i.line) for i in result.issues] == [("syntax-error", 1)]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["migrate-check", *args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_cli_exit_codes_and_json(plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = add_model(plugin, "clean_model.py", "tiny")
    bad = add_model(plugin, "bad_model.py", "bad")
    try:
        main(["migrate-check", str(plugin), str(clean)])
    except SystemExit as exc:  # typer may exit 0 explicitly
        assert not exc.code
    assert "no issues" in capsys.readouterr().out
    code, out, _ = _run(capsys, str(plugin), str(bad), "--json")
    data = json.loads(out)
    assert code == 1 and data["clean"] is False
    assert {(i["line"], i["rule"]) for i in data["issues"] if i["file"] == str(bad)} == expected(bad)
    assert set(data["issues"][0]) == {"file", "line", "end_line", "rule", "message", "fix"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nowhere", "{model}"], "error: plugin folder not found: {tmp}/nowhere"),
        (["{tmp}", "{model}"], "error: no vllm_fl package (with __init__.py) in {tmp}"),
        (["{plugin}", "{tmp}/nope.py"], "error: model file not found: {tmp}/nope.py"),
        (["{plugin}", "{model}", "--config-file", "{tmp}/c.py"], "error: config file not found: {tmp}/c.py"),
        (["{plugin}", "{model}", "--init-file", "{tmp}/i.py"], "error: init file not found: {tmp}/i.py"),
    ],
)
def test_cli_bad_paths_are_one_line_exit_2(
    plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    model = add_model(plugin, "clean_model.py", "tiny")
    fill = {"tmp": str(tmp_path), "plugin": str(plugin), "model": str(model)}
    code, out, err = _run(capsys, *[a.format(**fill) for a in args])
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(**fill)) and "— fix:" in lines[0]
