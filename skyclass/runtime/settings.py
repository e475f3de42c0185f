"""One typed settings object, read from the environment once per process.

An explicit argument beats the environment variable, which beats the default:
``Settings.from_env(max_workers=2)``. Each process reads them once, where it builds its
objects (chalice_app/wiring.py, ec2_worker/__main__.py, the CLI), and hands them on.
Resource names left unset are derived from the stage and the account
(``skyclass.runtime.names``). The region comes from the chain the AWS SDKs and Chalice
use (``standard_region``), so every client, ``chalice`` itself and the resources they
make land in one region.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skyclass.runtime import constants as c
from skyclass.runtime.errors import ConfigurationError

# S3's rule for bucket names (no dots needed by skyclass, but allowed).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# The longest /classify may wait for a result: API Gateway ends an integration at 29 s,
# and the upload before the wait and the answer after it need the rest.
MAX_CLASSIFY_WAIT = 28.0
# The retention periods CloudWatch Logs accepts (PutRetentionPolicy), in days.
LOG_RETENTION_CHOICES = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                         1827, 2192, 2557, 2922, 3288, 3653)


def _env(name: str, **extra: Any) -> dict[str, Any]:
    return {"env": name, **extra}


@dataclass(frozen=True)
class Settings:
    stage: str = field(default="local", metadata=_env(c.STAGE))
    # None when no region is found anywhere (AwsClients then says so plainly).
    region: str | None = field(default=None, metadata=_env(c.REGION))
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

    # API behaviour. /classify waits below API Gateway's 29 s limit (a client may ask for
    # another wait, up to MAX_CLASSIFY_WAIT).
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
    # Why the fleet's limits are what they are, where something chose them for the
    # operator (`skyclass up` sizes the local fleet to the machine); GET /fleet shows it.
    fleet_note: str | None = field(default=None, metadata=_env(c.FLEET_NOTE))

    # Bulk jobs (docs/bulk.md): the buckets the stage classifies in place (comma-separated
    # names; nothing else may be a job's source), keys per listing page (S3's most is
    # 1,000), and the seconds a listing or completion task may run (the Lambdas' timeout;
    # their queues hide a task six times as long, as AWS advises).
    source_buckets: str | None = field(default=None, metadata=_env(c.SOURCE_BUCKETS))
    list_page_size: int = field(default=1000, metadata=_env(c.LIST_PAGE_SIZE))
    task_timeout: int = field(default=300, metadata=_env(c.TASK_TIMEOUT))
    # Days CloudWatch Logs keeps the stage's logs (its Lambdas' and its workers').
    log_retention_days: int = field(default=30, metadata=_env(c.LOG_RETENTION_DAYS))

    # Local mode (``skyclass up``): where the API and the emulator listen.
    api_port: int = field(default=8000, metadata=_env(c.API_PORT))
    aws_port: int = field(default=4566, metadata=_env(c.AWS_PORT))

    # Which fields were given (by argument or variable) rather than defaulted: a worker
    # picks its batch size for a GPU only if none was given, and a deployed stage's
    # Lambdas get exactly the settings the operator chose.
    configured: frozenset[str] = field(default=frozenset(), compare=False, repr=False,
                                       metadata={"env": None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Raises ConfigurationError, naming the variable, for a value that cannot be
        used: a bad setting is the operator's to fix, not the client's."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in _setting_fields():
            if f.name in overrides and overrides[f.name] is not None:
                values[f.name] = overrides[f.name]
                continue
            raw = environ.get(f.metadata["env"])
            if raw not in (None, ""):
                values[f.name] = _parse(f, raw)
        unknown = set(overrides) - {f.name for f in _setting_fields()}
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        configured = frozenset(values)
        if "region" not in values:
            values["region"] = standard_region(environ)
        settings = cls(**values, configured=configured)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers:
            raise ConfigurationError(
                f"need 0 <= {c.MIN_WORKERS} ({self.min_workers}) <= {c.MAX_WORKERS} "
                f"({self.max_workers})")
        if self.top_k < 1:
            raise ConfigurationError(f"{c.TOP_K} must be at least 1, not {self.top_k}")
        if self.batch_size < 1:
            raise ConfigurationError(f"{c.BATCH_SIZE} must be at least 1, not {self.batch_size}")
        if not 0 <= self.classify_timeout <= MAX_CLASSIFY_WAIT:
            raise ConfigurationError(
                f"{c.CLASSIFY_TIMEOUT} must be within 0..{MAX_CLASSIFY_WAIT:g} s (API "
                f"Gateway ends a request at 29 s), not {self.classify_timeout:g}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigurationError(
                f"{c.PRECISION} must be fp32 or bf16, not {self.precision!r}")
        if self.engine not in ("auto", "tensorflow", "openvino", "onnxruntime"):
            raise ConfigurationError(f"{c.ENGINE} must be auto, tensorflow, openvino or "
                                     f"onnxruntime, not {self.engine!r}")
        if not 1 <= self.list_page_size <= 1000:
            raise ConfigurationError(
                f"{c.LIST_PAGE_SIZE} must be 1 to 1000 (S3 lists at most 1000 keys a page), "
                f"not {self.list_page_size}")
        if self.task_timeout < 1:
            raise ConfigurationError(f"{c.TASK_TIMEOUT} must be at least 1, not "
                                     f"{self.task_timeout}")
        for bucket in self.source_bucket_names:
            if not _BUCKET.match(bucket):
                raise ConfigurationError(
                    f"{c.SOURCE_BUCKETS} names {bucket!r}, which is no S3 bucket name")
        if self.log_retention_days not in LOG_RETENTION_CHOICES:
            raise ConfigurationError(
                f"{c.LOG_RETENTION_DAYS} must be one of CloudWatch Logs' retention periods "
                f"{', '.join(map(str, LOG_RETENTION_CHOICES))}, not {self.log_retention_days}")

    @property
    def source_bucket_names(self) -> tuple[str, ...]:
        """``SKYCLASS_SOURCE_BUCKETS`` as bucket names, in the order given."""
        return tuple(dict.fromkeys(
            b.strip() for b in (self.source_buckets or "").split(",") if b.strip()))

    def is_configured(self, name: str) -> bool:
        """Whether field ``name`` was given rather than left at its default."""
        return name in self.configured

    def as_env(self, only_configured: bool = False) -> dict[str, str]:
        """The settings as environment variables, to hand to a child process
        (``only_configured``: just those given rather than defaulted)."""
        env = {}
        for f in _setting_fields():
            value = getattr(self, f.name)
            if value is not None and (not only_configured or self.is_configured(f.name)):
                env[f.metadata["env"]] = str(value)
        return env

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, which count as configured."""
        return dataclasses.replace(self, **changes,
                                   configured=self.configured | frozenset(changes))


def standard_region(environ: Mapping[str, str]) -> str | None:
    """The region as the AWS CLI, the SDKs and Chalice find it: ``AWS_REGION``, then
    ``AWS_DEFAULT_REGION`` (the one botocore reads), then the ``region`` of the profile
    (``AWS_PROFILE``, else ``default``) in the shared config file; None if none has one."""
    for name in (c.REGION, c.DEFAULT_REGION):
        if environ.get(name):
            return environ[name]
    return _profile_region(environ)


def _profile_region(environ: Mapping[str, str]) -> str | None:
    # botocore's own reader of the shared files (a Session would cost ~30 ms a call).
    from botocore.configloader import load_config

    profile = environ.get(c.PROFILE) or environ.get(c.DEFAULT_PROFILE)
    config_file = environ.get(c.CONFIG_FILE) or "~/.aws/config"
    profiles = _profiles(load_config, config_file)
    if profile and profile not in profiles and profile not in _profiles(
            load_config, environ.get(c.CREDENTIALS_FILE) or "~/.aws/credentials"):
        raise ConfigurationError(f"{c.PROFILE}={profile!r} names no profile in {config_file}")
    return profiles.get(profile or "default", {}).get("region") or None


def _profiles(load_config: Any, path: str) -> dict[str, dict[str, Any]]:
    from botocore.exceptions import ConfigNotFound

    try:
        return load_config(path).get("profiles", {})
    except ConfigNotFound:
        return {}


def _setting_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Settings) if f.metadata["env"]]


def _parse(f: dataclasses.Field, raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{f.metadata['env']}={raw!r} is not a number") from exc
    return raw
