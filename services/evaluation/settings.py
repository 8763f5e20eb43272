"""The evaluation service's own settings (environment prefix ``HOTLINE_EVALUATION_``).
Where and how evidence files are kept is deployment configuration, not policy."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.evaluation.domain import EvidenceLimits

DEFAULT_CONTENT_TYPES = (
    "application/pdf",
    "image/jpeg",
    "image/png",
    "text/plain",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "audio/mpeg",
)


class EvaluationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_EVALUATION_", extra="ignore")

    # Evidence files of exemptions (Art 24), one folder per exemption.
    files_dir: Path = Path("var/evaluation-files")
    max_files: int = 10
    max_file_bytes: int = 10 * 1024 * 1024
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES

    @property
    def evidence_limits(self) -> EvidenceLimits:
        return EvidenceLimits(self.max_files, self.max_file_bytes, frozenset(self.content_types))
