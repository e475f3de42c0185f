"""Getting the ResNet-50 ImageNet weights onto a machine, once.

The AMI bake (ami_build/provision.sh) and ``skyclass up`` call this before any worker
starts; workers only read the file (ec2_worker/model.py), so a fleet of them never
downloads anything at boot. Where the file cannot be downloaded (an offline machine)
this says so plainly and names the file; nothing falls back to random weights.

    python -m ec2_worker.weights        # exit 0: the file is there; 2: it is not
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import urllib.request
from pathlib import Path

from ec2_worker.model import RESNET50_WEIGHTS_URL, resnet50_weights_path
from skyclass.runtime.errors import ModelUnavailableError

# Keras' own checksum of this file (keras/src/applications/resnet.py, WEIGHTS_HASHES).
RESNET50_WEIGHTS_MD5 = "2cb95161c43110f7111970584f804107"


def fetch_resnet50_weights(
    dest: Path | None = None,
    url: str = RESNET50_WEIGHTS_URL,
    md5: str = RESNET50_WEIGHTS_MD5,
    timeout: float = 30.0,
) -> Path:
    """The weights file at ``dest`` (Keras' cache by default), downloaded and checked if
    it is not there yet. Raises ModelUnavailableError naming the file if it cannot be."""
    dest = dest or resnet50_weights_path()
    if dest.is_file():
        return dest
    partial = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.md5()
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise ModelUnavailableError(
                f"the file downloaded from {url} has checksum {digest.hexdigest()}, not {md5}; "
                f"{dest} was not written"
            )
        shutil.move(partial, dest)
    except OSError as exc:
        raise ModelUnavailableError(
            f"cannot download the ResNet-50 ImageNet weights from {url} to {dest} ({exc}). "
            f"Copy that file there by other means, or serve a custom model with "
            f"SKYCLASS_MODEL=/path/model.keras SKYCLASS_LABELS=/path/labels.txt"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    return dest


def main() -> int:
    try:
        path = fetch_resnet50_weights()
    except ModelUnavailableError as exc:
        print(f"ResNet-50 weights: {exc.message}", file=sys.stderr)
        return 2
    print(f"ResNet-50 weights: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
