"""One settings class for the CLI, the API and the portal plugin (environment prefix ``KB_``)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from search_service.ranking.config import DEFAULT_RANKING, RankingConfig

TUNING_FILE = ".kb-tuning.json"  # in the content folder: ranking weights `kb tune --save` chose for it


def _usable_weights(value: tuple[float, float, float]) -> tuple[float, float, float]:
    if any(w < 0 for w in value) or not any(value):
        raise ValueError("fusion weights must be non-negative and not all zero")
    return value


class CorpusTuning(BaseModel):
    """Ranking weights (and, when calibrated, the abstention threshold) chosen for one corpus by
    `kb tune --save`, kept in its content folder.

    They apply to that corpus's index unless the environment sets the same ``KB_`` variables.
    """

    model_config = ConfigDict(extra="ignore")

    fusion_weights: tuple[float, float, float]
    rerank_weight: float = Field(ge=0, le=10)
    rerank_depth: int = Field(ge=0, le=200)
    abstain_threshold: float | None = Field(None, ge=-1, le=1, description="None: the setting's value.")

    @field_validator("fusion_weights")
    @classmethod
    def _weights_are_usable(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return _usable_weights(value)


def load_tuning(content_dir: Path) -> CorpusTuning | None:
    """The content folder's tuning file, or None. Raises ValueError naming the file when it is unusable."""
    path = Path(content_dir) / TUNING_FILE
    if not path.is_file():
        return None
    try:
        return CorpusTuning.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError) as exc:
        raise ValueError(f"{path}: not a usable tuning file ({exc}); fix it, re-create it with "
                         "`kb tune --save`, or delete it to use the defaults") from exc


class Settings(BaseSettings):
    """Service and tooling settings, read from ``KB_*`` variables or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="KB_", env_file=".env", extra="ignore")

    content_dir: Path = Field(Path("playbooks"), description="Folder of Markdown pages to index and lint.")
    index_dir: Path = Field(Path(".kb/index"), description="Where `kb index` writes the search index.")
    site_dir: Path = Field(Path("site"), description="Built MkDocs site served at / by `kb serve`.")
    codeowners: Path = Field(Path("CODEOWNERS"), description="CODEOWNERS file that page owners must appear in.")
    site_url: str = Field("/", description="URL prefix of the portal, used to build citation links.")

    model: str = Field("", description="sentence-transformers model name or path; empty = packaged all-MiniLM-L6-v2.")
    backend: Literal["torch", "onnx-int8"] = Field(
        "torch", description="Embedding runtime; onnx-int8 is faster on CPU (needs onnx + onnxruntime).")
    batch_size: int = Field(32, ge=1, le=1024)
    index_type: Literal["flat", "hnsw"] = "flat"
    rerank_depth: int = Field(DEFAULT_RANKING.rerank_depth, ge=0, le=200, description=(
        "Pages re-ranked by late interaction (MaxSim over word-piece vectors); 0 turns the stage off."))
    rerank_weight: float = Field(DEFAULT_RANKING.rerank_weight, ge=0, le=10,
                                 description="Weight of the late-interaction score in re-ranking.")
    fusion_weights: tuple[float, float, float] = Field(DEFAULT_RANKING.fusion_weights, description=(
        "Weights of the dense, section-keyword and page-keyword signals, as JSON, e.g. [0.4, 0.1, 0.1]; "
        "measure a change with `kb eval --content` on your own labelled questions."))

    @field_validator("fusion_weights")
    @classmethod
    def _weights_are_usable(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return _usable_weights(value)

    def for_corpus(self, tuning: CorpusTuning | dict[str, Any] | None = None) -> CorpusTuning:
        """The tuning in force for a corpus: a ``KB_`` variable that is set wins, then the corpus's
        tuning file (stored in its index), then the defaults."""
        values = {name: getattr(self, name) for name in CorpusTuning.model_fields}
        if tuning is not None:
            tuned = CorpusTuning.model_validate(tuning)
            for name in CorpusTuning.model_fields:
                if name not in self.model_fields_set and getattr(tuned, name) is not None:
                    values[name] = getattr(tuned, name)
        return CorpusTuning(**values)

    def ranking_config(self, tuning: CorpusTuning | dict[str, Any] | None = None) -> RankingConfig:
        """The ranking configuration for a corpus: the defaults with the tuning in force
        (:meth:`for_corpus`) applied. The one place that turns settings into ranking parameters."""
        tuned = self.for_corpus(tuning)
        return DEFAULT_RANKING.with_tuning(fusion_weights=tuned.fusion_weights, rerank_weight=tuned.rerank_weight,
                                           rerank_depth=tuned.rerank_depth)

    search_exclude: str = Field("", description=(
        "Comma-separated glob patterns of pages kept out of search and answers, relative to the content "
        "folder, e.g. 'about/changelog.md,about/releases/*' (a page can also say `search: {exclude: true}`)."))

    def search_exclude_patterns(self) -> tuple[str, ...]:
        """The KB_SEARCH_EXCLUDE patterns as a tuple."""
        return tuple(p.strip() for p in self.search_exclude.split(",") if p.strip())

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    abstain_threshold: float = Field(
        0.34, description="Evidence below this abstains (calibrated with `kb eval`, see docs/search-quality.md).")
    llm_base_url: str = Field(
        "", description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; empty = extractive only.")
    llm_model: str = Field("default", description="Model name sent to the LLM endpoint.")
    llm_api_key: str = Field("", description="Bearer key for the LLM endpoint, if it needs one.")
    llm_timeout: float = Field(30.0, gt=0, description="Seconds to wait for the LLM before falling back to extractive.")
    llm_max_tokens: int = Field(400, ge=16, le=4096)

    database_url: str = Field(
        "sqlite:///.kb/kb.sqlite3", description="Feedback/analytics store; postgresql+psycopg://... for replicas.")
    user_hash_secret: str = Field(
        "", description="Secret for pseudonymous user ids; empty = a random one kept next to the index.")
    log_retention_days: int = Field(180, ge=1, description="Ask logs and feedback older than this are deleted.")

    auth: Literal["none", "token", "proxy"] = Field(
        "none", description="none (loopback only), token (bearer tokens from `kb token`), proxy (SSO proxy headers).")
    trusted_proxies: str = Field("", description="Comma-separated addresses whose X-Forwarded-User/-Groups headers are trusted.")
    admin_group: str = Field("kb-admins", description="Group whose members may reload the index and read analytics.")
    rate_limit_per_minute: int = Field(120, ge=1, description="Requests per identity per minute on /v1 endpoints.")
    max_body_bytes: int = Field(16384, ge=1024, description="Largest request body accepted.")
    cors_origins: str = Field("", description="Comma-separated extra origins allowed to call the API from a browser.")

    today: dt.date | None = Field(None, description="Override today's date (review and stale checks).")

    def current_date(self) -> dt.date:
        """Today's date, or the configured override."""
        return self.today or dt.date.today()


@lru_cache
def get_settings() -> Settings:
    """Settings read once per process; tests clear the cache to override."""
    return Settings()
