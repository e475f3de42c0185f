"""One typed settings object, read from the environment once per process.

An explicit argument beats the environment variable, which beats the default:
``Settings.from_env(max_workers=2)``. Resource names left unset are derived from the
stage and the account (see ``skyclass.resources``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skyclass import constants as c
from skyclass.errors import BadRequestError


def _env(name: str, **extra: Any) -> dict[str, Any]:
    return {"env": name, **extra}


@dataclass(frozen=True)
class Settings:
    stage: str = field(default="local", metadata=_env(c.STAGE))
    region: str = field(default="us-east-1", metadata=_env(c.REGION))
    input_bucket: str | None = field(default=None, metadata=_env(c.INPUT_BUCKET))
    output_bucket: str | None = field(default=None, metadata=_env(c.OUTPUT_BUCKET))
    queue_url: str | None = field(default=None, metadata=_env(c.QUEUE_URL))
    dlq_url: str | None = field(default=None, metadata=_env(c.DLQ_URL))

    # Model: "resnet50" or a path to a .keras model (with a labels file).
    model: str = field(default="resnet50", metadata=_env(c.MODEL))
    labels: str | None = field(default=None, metadata=_env(c.LABELS))
    top_k: int = field(default=5, metadata=_env(c.TOP_K))
    batch_size: int = field(default=32, metadata=_env(c.BATCH_SIZE))
    precision: str = field(default="fp32", metadata=_env(c.PRECISION))
    # What runs the model on a worker: "auto" measures the engines there and keeps the
    # fastest that agrees with TensorFlow (ec2_worker/engines).
    engine: str = field(default="auto", metadata=_env(c.ENGINE))
    worker_id: str | None = field(default=None, metadata=_env(c.WORKER_ID))

    # Input policy.
    max_image_bytes: int = field(default=20 * 1024 * 1024, metadata=_env(c.MAX_IMAGE_BYTES))
    max_image_pixels: int = field(default=40_000_000, metadata=_env(c.MAX_IMAGE_PIXELS))

    # Queue behaviour.
    max_receives: int = field(default=5, metadata=_env(c.MAX_RECEIVES))
    visibility_timeout: int = field(default=120, metadata=_env(c.VISIBILITY_TIMEOUT))

    # API behaviour. /classify waits below API Gateway's 29 s limit.
    classify_timeout: float = field(default=20.0, metadata=_env(c.CLASSIFY_TIMEOUT))
    upload_expires: int = field(default=300, metadata=_env(c.UPLOAD_EXPIRES))
    # API key: required on every route but the page and /health when set. Deployed
    # stages name an SSM SecureString parameter (no secret in config files); locally a
    # literal key may be given, or none (open).
    api_key: str | None = field(default=None, metadata=_env(c.API_KEY))
    api_key_parameter: str | None = field(default=None, metadata=_env(c.API_KEY_PARAMETER))

    # Scaling policy.
    min_workers: int = field(default=0, metadata=_env(c.MIN_WORKERS))
    max_workers: int = field(default=4, metadata=_env(c.MAX_WORKERS))
    idle_grace: float = field(default=300.0, metadata=_env(c.IDLE_GRACE))
    target_latency: float = field(default=60.0, metadata=_env(c.TARGET_LATENCY))
    worker_throughput: float = field(default=20.0, metadata=_env(c.WORKER_THROUGHPUT))
    boot_delay: float = field(default=0.0, metadata=_env(c.BOOT_DELAY))
    # Expected seconds from StartInstances to a worker taking messages (EC2 boot, systemd,
    # model load); the policy counts an instance this young as booting, not as idle.
    boot_time: float = field(default=70.0, metadata=_env(c.BOOT_TIME))
    instance_type: str = field(default="c7i.large", metadata=_env(c.INSTANCE_TYPE))
    scale_period: float = field(default=60.0, metadata=_env(c.SCALE_PERIOD))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in overrides and overrides[f.name] is not None:
                values[f.name] = overrides[f.name]
                continue
            raw = environ.get(f.metadata["env"])
            if raw not in (None, ""):
                values[f.name] = _parse(f, raw)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers:
            raise BadRequestError(
                f"need 0 <= min_workers ({self.min_workers}) <= max_workers ({self.max_workers})"
            )
        if self.top_k < 1:
            raise BadRequestError(f"top_k must be at least 1, not {self.top_k}")
        if self.precision not in ("fp32", "bf16"):
            raise BadRequestError(f"precision must be fp32 or bf16, not {self.precision!r}")
        if self.engine not in ("auto", "tensorflow", "openvino", "onnxruntime"):
            raise BadRequestError("engine must be auto, tensorflow, openvino or onnxruntime, "
                                  f"not {self.engine!r}")

    def as_env(self) -> dict[str, str]:
        """The settings as environment variables, to hand to a child process."""
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                env[f.metadata["env"]] = str(value)
        return env

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _parse(f: dataclasses.Field, raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError as exc:
        raise BadRequestError(f"{f.metadata['env']}={raw!r} is not a number") from exc
    return raw
