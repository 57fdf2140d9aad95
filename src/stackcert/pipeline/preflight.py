"""Checks of a run's input before anything starts: each problem is one line and exit 2, never a
step that fails minutes later (a missing model, an unset key variable, a taken port)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from stackcert.config import StackSpec
from stackcert.errors import ConfigError, UsageError
from stackcert.pipeline.devices import check_devices, device_counter
from stackcert.runmodel.config import RunConfig
from stackcert.secrets import looks_secret
from stackcert.targets import open_target


def preflight(config: RunConfig) -> None:
    """Raise a ConfigError/UsageError (exit 2) for input that cannot work."""
    target = open_target(config.target)
    target.check()  # docker: the container runs; ssh: known host key, login, Python
    model = config.model
    if model.source == "path":
        path = Path(os.path.expanduser(model.path or ""))
        if not path.is_dir():
            raise ConfigError(
                f"model.path {path} is not a folder",
                where="model.path",
                fix="give the folder of a Hugging Face checkpoint (with config.json)",
            )
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"model.path {path} has no config.json",
                where="model.path",
                fix="give the folder of a Hugging Face checkpoint (with config.json)",
            )
        # The engines read the weights in the target; the analysis here reads config and tokenizer.
        if target.remote and not target.exists(path / "config.json"):
            raise ConfigError(
                f"model.path {path} has no config.json in the {target.kind} target",
                where="model.path",
                fix="the checkpoint must be at the same path in the target and here (mount or copy it)",
            )
    if target.remote and config.phases.smoke.enabled and config.phases.smoke.options.offline:
        raise ConfigError(
            f"the offline smoke check runs on the local target only (this run: {target.kind})",
            where="phases.smoke.options.offline",
            fix="set it to false: the served checks run through the target",
        )
    for role in ("reference", "candidate"):
        stack = config.stacks[getattr(config, role)]
        check_stack(stack, where=f"stacks.{getattr(config, role)}", local=not target.remote)
    check_devices(config, counter=device_counter(config.target))  # TP × PP against the target's devices


def redaction_note(config: RunConfig) -> str | None:
    """One line naming the secrets of the config that run files will show as `<redacted>`."""
    names = []
    for stack in config.stacks.values():
        names += [f"{k} (stack {stack.name})" for k, v in stack.env.items() if v and looks_secret(k)]
        if stack.url and "@" in urlsplit(stack.url).netloc:
            names.append(f"the key in the URL of stack {stack.name}")
    if not names:
        return None
    return "secrets are redacted from every file of the run folder: " + ", ".join(names)


def check_stack(stack: StackSpec, *, where: str, local: bool = True) -> None:
    """One stack's own input: an endpoint's URL and key variable, a fixed port that is taken here."""
    if stack.engine == "endpoint":
        parts = urlsplit(stack.url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"stack '{stack.name}': url is not an http(s) URL",
                where=f"{where}.url",
                fix="e.g. http://host:8000/v1",
            )
        if stack.api_key_env and not os.environ.get(stack.api_key_env):
            raise UsageError(
                f"stack '{stack.name}': the variable {stack.api_key_env} (api_key_env) is not set",
                where=f"{where}.api_key_env",
                fix=f"export {stack.api_key_env}=<key>",
            )
        return
    if not local:  # a taken port in the target shows in the engine's log, as a located finding
        return
    from stackcert.engines.server import require_free_port

    require_free_port(stack)
