"""A Server for an already running OpenAI-compatible endpoint (no process of ours behind it)."""

from __future__ import annotations

from pathlib import Path

import httpx

from stackcert.config import StackSpec
from stackcert.engines.base import ServerInfo
from stackcert.evidence.findings import Finding
from stackcert.secrets import auth_headers


class UrlServer:
    """Satisfies engines.base.Server for a base URL (`http://host:port`, the API under /v1)."""

    def __init__(self, name: str, base_url: str, served_model: str) -> None:
        self.stack = StackSpec(name=name, engine="endpoint", url=base_url)
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.served_model = served_model
        self.log_path: Path | None = None
        self.info = ServerInfo(
            stack=name, engine="endpoint", launcher="url", base_url=self.base_url, served_model=served_model
        )

    def alive(self) -> bool:
        """Whether GET /v1/models answers 200 within 5 s."""
        try:
            url = self.base_url + "/v1/models"
            return httpx.get(url, timeout=5.0, headers=auth_headers(url)).status_code == 200
        except httpx.HTTPError:
            return False

    def findings(self) -> list[Finding]:
        """Nothing: there is no log of ours to read for a server we did not start."""
        return []
