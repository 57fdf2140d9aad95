"""What the running engine was configured with: its argv, the engine-config lines of its log, /metrics info.

Every setting keeps where it was read (`source`) and, from a log, the line itself, so a feature decided
from configuration can show the field that decided it. Nothing here sends a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from stackcert.answers import clean
from stackcert.engines.base import Server, ServerInfo

LOG_READ_CAP = 8 << 20  # the engine configuration is logged at startup: the log's head is enough
LINE_SHOWN = 400

# argv flags -> setting names (store-true flags and their --no- forms; value flags).
_BOOL_FLAGS = {
    "--enforce-eager": ("enforce_eager", "True"),
    "--enable-prefix-caching": ("enable_prefix_caching", "True"),
    "--no-enable-prefix-caching": ("enable_prefix_caching", "False"),
    "--enable-chunked-prefill": ("enable_chunked_prefill", "True"),
    "--no-enable-chunked-prefill": ("enable_chunked_prefill", "False"),
}
_VALUE_FLAGS = {
    "--max-model-len": "max_model_len",
    "--max-num-seqs": "max_num_seqs",
    "--max-num-batched-tokens": "max_num_batched_tokens",
    "--compilation-config": "compilation_config",
    "-cc": "compilation_config",
    "-O": "optimization_level",
    "--speculative-config": "speculative_config",
    "--load-format": "load_format",
    "--enable-expert-parallel": "enable_expert_parallel",
    "--tensor-parallel-size": "tensor_parallel_size",
}

_ENGINE_LINE = re.compile(r"Initializing a V\d LLM engine .*with config:")
_LOG_FIELDS = {
    "enforce_eager": re.compile(r"\benforce_eager=(True|False)\b"),
    "enable_prefix_caching": re.compile(r"\benable_prefix_caching=(True|False)\b"),
    "enable_chunked_prefill": re.compile(r"\benable_chunked_prefill=(True|False)\b"),
    "speculative_config": re.compile(r"\bspeculative_config=(None|[A-Za-z]+\([^)]*\)|\{[^}]*\})"),
    "max_seq_len": re.compile(r"\bmax_seq_len=(\d+)"),
    "load_format": re.compile(r"\bload_format=([\w.-]+)"),
    "compilation_mode": re.compile(r"'mode': <CompilationMode\.(\w+): \d+>"),
    "compilation_backend": re.compile(r"'backend': '(\w*)'"),
    "cudagraph_mode": re.compile(r"'cudagraph_mode': <CUDAGraphMode\.(\w+): \d+>"),
}
_OTHER_LINES: list[tuple[str, re.Pattern[str]]] = [
    ("max_num_batched_tokens", re.compile(r"Chunked prefill is enabled with max_num_batched_tokens=(\d+)")),
    ("kv_cache_tokens", re.compile(r"KV cache size: ([\d,]+) tokens")),
    ("max_concurrency", re.compile(r"Maximum concurrency for [\d,]+ tokens per request: ([\d.]+)x")),
    ("max_model_len", re.compile(r"Using max model len (\d+)")),
    ("enforce_eager_warning", re.compile(r"(Enforce eager set)")),
    ("max_num_seqs", re.compile(r"\bmax_num_seqs['\"]?\s*[:=]\s*(\d+)")),
    ("max_num_batched_tokens", re.compile(r"\bmax_num_batched_tokens['\"]?\s*[:=]\s*(\d+)")),
]


@dataclass(frozen=True)
class Setting:
    """One configuration value and where it was read: `argv`, `log` (with its line), `metrics`, `api`."""

    name: str
    value: str
    source: str
    line: str | None = None

    def describe(self) -> str:
        """'name=value (source)' for a FeatureResult's decided_by."""
        return f"{self.name}={self.value} ({self.source})"


@dataclass
class EngineView:
    """The settings known about a running engine; the first source read for a name wins."""

    settings: dict[str, Setting] = field(default_factory=dict)
    argv: dict[str, Setting] = field(default_factory=dict, repr=False)  # what the command line asked
    has_log: bool = False
    has_argv: bool = False

    def add(self, setting: Setting) -> None:
        """Keep `setting` unless that name is already known."""
        self.settings.setdefault(setting.name, setting)

    def get(self, name: str) -> Setting | None:
        """The setting `name`, if known."""
        return self.settings.get(name)

    def flag(self, name: str) -> bool | None:
        """A boolean setting, None when unknown or not a boolean."""
        s = self.settings.get(name)
        if s is None or s.value not in ("True", "False"):
            return None
        return s.value == "True"

    def number(self, name: str) -> int | None:
        """An integer setting, None when unknown or not an integer."""
        s = self.settings.get(name)
        if s is None:
            return None
        try:
            return int(float(s.value.replace(",", "")))
        except ValueError:
            return None

    def lines(self, *names: str) -> list[str]:
        """The log lines the named settings were read from (each once)."""
        out: list[str] = []
        for name in names:
            s = self.settings.get(name)
            if s is not None and s.line and s.line not in out:
                out.append(s.line)
        return out


def server_info(server: Server) -> ServerInfo | None:
    """The ServerInfo of a server started by stackcert (argv, launcher), None for others."""
    info = getattr(server, "info", None)
    return info if isinstance(info, ServerInfo) else None


def read_view(server: Server) -> EngineView:
    """The settings of `server`: its argv first (what was asked), then its log (what the engine did)."""
    view = EngineView()
    info = server_info(server)
    # The log says what the engine resolved (defaults included), so it is read first; argv fills gaps.
    log_path = server.log_path or (info.log_path if info else None)
    if log_path is not None:
        read_log(view, Path(log_path))
    if info is not None and info.argv:
        read_argv(view, info.argv)
    return view


def read_argv(view: EngineView, argv: list[str]) -> None:
    """Settings from the engine's command line."""
    view.has_argv = True
    for i, arg in enumerate(argv):
        key, eq, inline = arg.partition("=")
        if key in _BOOL_FLAGS:
            name, value = _BOOL_FLAGS[key]
            view.argv[name] = Setting(name, value, f"argv {arg}")
            view.add(view.argv[name])
        elif key in _VALUE_FLAGS:
            value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            if key == "--enable-expert-parallel" and not eq:
                value = "True"
            name = _VALUE_FLAGS[key]
            view.argv[name] = Setting(name, clean(value, 200), f"argv {key}")
            view.add(view.argv[name])


def read_log(view: EngineView, path: Path) -> None:
    """Settings from the engine-config line and other startup lines of a vLLM log."""
    try:
        with path.open("rb") as fh:
            head = fh.read(LOG_READ_CAP)
    except OSError:
        return
    view.has_log = True
    for number, raw in enumerate(head.decode("utf-8", "replace").splitlines(), start=1):
        where = f"log line {number}"
        if _ENGINE_LINE.search(raw):
            for name, rx in _LOG_FIELDS.items():
                m = rx.search(raw)
                if m:
                    view.add(Setting(name, m.group(1), where, _excerpt(raw, m)))
            continue
        for name, rx in _OTHER_LINES:
            m = rx.search(raw)
            if m:
                view.add(Setting(name, m.group(1).replace(",", ""), where, clean(raw, LINE_SHOWN)))


def _excerpt(line: str, m: re.Match[str]) -> str:
    """The part of a very long config line around a match."""
    start = max(0, m.start() - 80)
    head = "…" if start else ""
    return head + clean(line[start : m.end() + 80])


def parse_prometheus(text: str) -> dict[str, float]:
    """`name{labels} value` lines as {'name{labels}': value}; comments and broken lines skipped."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if not name:
            continue
        try:
            out[name.strip()] = float(value)
        except ValueError:
            continue
    return out


def metric_sum(metrics: dict[str, float], name: str) -> float | None:
    """The sum of a metric over its label sets (counters of `name` or `name_total`); None if absent."""
    found = [
        v
        for key, v in metrics.items()
        if key.split("{", 1)[0] in (name, f"{name}_total") and v == v  # NaN is no count
    ]
    return sum(found) if found else None


def info_labels(metrics_text: str, name: str) -> dict[str, str]:
    """The labels of an info gauge such as `vllm:cache_config_info{...} 1`."""
    for line in metrics_text.splitlines():
        if line.startswith(name + "{"):
            body = line[len(name) + 1 : line.rfind("}")]
            return dict(re.findall(r'(\w+)="([^"]*)"', body))
    return {}
