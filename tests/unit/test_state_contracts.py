"""Every JSONPath the ASL reads or writes names a field of the state contracts
(reconciler/phases/contracts.py), and every Task's Parameters are its function's input model."""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from reconciler.phases import contracts as c

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "reconcile.asl.json"
PATH_KEYS = ("InputPath", "OutputPath", "ItemsPath", "TimeoutSecondsPath", "MaxConcurrencyPath", "ErrorPath",
             "CausePath", "Variable")
#: what a Pass state's Parameters (or ResultSelector) produce
PASS_OUTPUTS: dict[str, type[BaseModel]] = {
    "Start": c.StartOutput, "DiscoverCFFailed": c.SourceResult, "DiscoverBoshFailed": c.SourceResult,
    "ScanBatchCompleted": c.BatchResult, "ScanBatchSkipped": c.BatchResult, "ApplyBatchCompleted": c.BatchResult,
    "ApplyBatchSkipped": c.BatchResult, "LockHeld": c.Refusal, "Discover": c.Sources,
}


def _asl() -> dict[str, Any]:
    return json.loads(re.sub(r"(?<!\")\$\{\w+\}", "1", ASL.read_text()))  # numbers; ARNs stay names


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X | None`` / ``X``; None for plain data (dict, Any, lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := _model_of(a))]
        return models[0] if models else None
    return None


def resolve(model: type[BaseModel], path: str) -> str | None:
    """None when ``path`` names fields of ``model`` (into plain data, anything goes); else what is wrong."""
    if path.startswith("$$.") or path == "$" or path.startswith("$["):
        return None  # the context object, the whole input, a Parallel's result array
    parts = path.removeprefix("$.").split(".")
    current: type[BaseModel] | None = model
    for i, part in enumerate(parts):
        if current is None:
            return None
        fields = current.model_fields
        if part not in fields:
            return f"{path}: {current.__name__} has no field {part!r} (fields: {sorted(fields)})"
        current = _model_of(current.model_fields[part].annotation)
        if current is None and i < len(parts) - 1:
            return None
    return None


def _paths_in(value: Any) -> list[str]:
    """JSONPaths in a Parameters value: ``"k.$": "$.x"`` and intrinsic functions' arguments."""
    if isinstance(value, str):
        return re.findall(r"\$\.[A-Za-z_][\w.]*|\$\$\.[\w.]+|\$\[\d+\]|^\$$", value)
    return []


def _function(state: dict[str, Any]) -> str:
    return re.sub(r"\$\{(\w+)FunctionArn\}", r"\1", state.get("Resource", ""))


def _check_states(states: dict[str, Any], scope: type[BaseModel], problems: list[str], raw: dict[str, Any]) -> None:
    for name, state in states.items():
        here = c.StartOutput if name in ("Start", "Begin", "LockHeld", "AlreadyRunning") else scope
        for key in PATH_KEYS:
            if isinstance(state.get(key), str):
                problems += [f"{name}.{key}: {p}" for p in [resolve(here, state[key])] if p]
        for choice in state.get("Choices", []):
            for rule in [choice, *choice.get("And", []), *choice.get("Or", []),
                         *([choice["Not"]] if "Not" in choice else [])]:
                if "Variable" in rule:
                    problems += [f"{name}.Choices: {p}" for p in [resolve(here, rule["Variable"])] if p]
        target = c.TASK_INPUTS.get(_function(raw.get(name, state))) if state.get("Type") == "Task" else None
        target = target or PASS_OUTPUTS.get(name)
        for block in ("Parameters", "ItemSelector", "ResultSelector"):
            params = state.get(block)
            if not isinstance(params, dict):
                continue
            model = c.BatchState if block == "ItemSelector" else (
                {"Discover": c.Sources, "Handover": c.HandoverResult}[name] if block == "ResultSelector" else target)
            for key, value in params.items():
                field = key.removesuffix(".$")
                if model is not None and field not in model.model_fields:
                    problems.append(f"{name}.{block}: {model.__name__} has no field {field!r}")
                if key.endswith(".$") and block != "ResultSelector":
                    problems += [f"{name}.{block}.{key}: {p}" for path in _paths_in(value)
                                 for p in [resolve(here, path)] if p]
        for target_path in [state.get("ResultPath"), *[k.get("ResultPath") for k in state.get("Catch", [])]]:
            if isinstance(target_path, str) and target_path != "$":
                problems += [f"{name}.ResultPath: {p}" for p in [resolve(here, target_path)] if p]
        for sub in ("Iterator", "ItemProcessor"):
            if sub in state:
                _check_states(state[sub]["States"], c.BatchState, problems, state[sub]["States"])
        for branch in state.get("Branches", []):
            _check_states(branch["States"], scope if name != "Discover" else c.StateData, problems, branch["States"])


def test_every_asl_path_is_a_contract_field():
    problems: list[str] = []
    states = _asl()["States"]
    _check_states(states, c.StateData, problems, states)
    assert problems == []


def test_every_task_has_an_input_model():
    functions = set()

    def collect(states: dict[str, Any]) -> None:
        for state in states.values():
            if state.get("Type") == "Task":
                functions.add(_function(state))
            for sub in ("Iterator", "ItemProcessor"):
                if sub in state:
                    collect(state[sub]["States"])
            for branch in state.get("Branches", []):
                collect(branch["States"])

    collect(_asl()["States"])
    assert functions == set(c.TASK_INPUTS)


@pytest.mark.parametrize(("path", "ok"), [("$.run.timeouts.deployment_scan", True), ("$.run.timeout.x", False),
                                          ("$.sources.bosh.batches", True), ("$.sources.vault.status", False),
                                          ("$.error.Cause", True), ("$.done", False)])
def test_the_path_check_can_fail(path, ok):
    assert (resolve(c.StateData, path) is None) is ok


def test_a_phase_refuses_an_event_of_the_wrong_shape():
    from reconciler.errors import InvalidInput

    with pytest.raises(InvalidInput, match="BatchInput: batch"):
        c.parse(c.BatchInput, {"run_id": "r", "batch": "first", "offset": 0}, "run_id")
    with pytest.raises(InvalidInput, match=r"event is missing \['run'\]"):
        c.parse(c.RunInput, {}, "run")
    run = c.parse(c.RunInput, {"run": {"run_id": "r", "anything": 1}}, "run").run
    assert (run.run_id, run.model_extra) == ("r", {"anything": 1})  # what a state does not read is kept
