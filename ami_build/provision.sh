#!/usr/bin/env bash
# Provisions a skyclass worker image: system packages (with the CloudWatch agent, which
# ships the worker's log), a venv with the worker and TensorFlow (CPU or GPU build) and
# its peer engines, the ResNet-50 ImageNet weights baked in with their OpenVINO/ONNX
# conversions and this machine's engine choice, and the systemd unit. Runs as the bake
# builder's user data, or by hand into a prefix:
#
#   ami_build/provision.sh --source . --prefix /opt/skyclass [--gpu auto|yes|no]
#                          [--no-system] [--no-weights] [--systemd-dir DIR]
#                          [--log-dir DIR]
#
# On success it writes PREFIX/READY and exits 0. The bake driver does not look for that
# file: it waits for bake/<id>/status.json, which the builder's user data PUTs to a
# presigned URL once this script has exited, "ready" or "failed" with the log's tail
# (ami_build/bake.py, builder_user_data).
set -euo pipefail

source_dir=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/skyclass
gpu=auto
system=yes
weights=yes
systemd_dir=/etc/systemd/system
log_dir=
python=${PYTHON:-python3}

while [ $# -gt 0 ]; do
  case "$1" in
    --source) source_dir=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --gpu) gpu=$2; shift 2 ;;
    --no-system) system=no; shift ;;
    --no-weights) weights=no; shift ;;
    --systemd-dir) systemd_dir=$2; shift 2 ;;
    --log-dir) log_dir=$2; shift 2 ;;
    *) echo "provision.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { echo "[provision $(date -u +%H:%M:%S)] $*"; }

# The worker's log file (the CloudWatch agent ships it); into the prefix off an instance.
if [ -z "$log_dir" ]; then
  if [ "$system" = yes ]; then log_dir=/var/log/skyclass; else log_dir=$prefix/log; fi
fi

if [ "$gpu" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 || [ -e /dev/nvidia0 ]; then gpu=yes; else gpu=no; fi
fi

if [ "$system" = yes ]; then
  log "system packages"
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q python3 python3-venv python3-pip curl
    log "no CloudWatch agent from apt: worker logs stay in $log_dir (see docs/deploy.md)"
  else  # Amazon Linux 2023, the bake's default base image
    dnf install -y -q python3.11 python3.11-pip tar gzip amazon-cloudwatch-agent
    python=python3.11
  fi
  if [ -d /etc/logrotate.d ]; then  # the agent follows a file truncated in place
    cat >/etc/logrotate.d/skyclass-worker <<ROTATE
$log_dir/worker.log {
  size 50M
  rotate 3
  copytruncate
  compress
  missingok
  notifempty
}
ROTATE
  fi
  id skyclass >/dev/null 2>&1 || useradd --system --home-dir "$prefix" --shell /usr/sbin/nologin skyclass
fi

log "venv in $prefix/venv (gpu=$gpu)"
mkdir -p "$prefix/bin" "$prefix/keras/models"
"$python" -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --quiet --upgrade pip
# The GPU build of TensorFlow brings its CUDA libraries as wheels.
if [ "$gpu" = yes ]; then build=gpu; else build=cpu; fi
"$prefix/venv/bin/pip" install --quiet -c "$source_dir/constraints.txt" "$source_dir[worker,$build]"

if [ "$weights" = yes ]; then
  log "ResNet-50 ImageNet weights into $prefix/keras"
  KERAS_HOME="$prefix/keras" "$prefix/venv/bin/python" -m ec2_worker.weights
  # Convert ResNet-50 for OpenVINO and ONNX Runtime, check them against TensorFlow and
  # measure every engine on this machine, so a worker on the same instance type starts
  # from the record (SKYCLASS_ENGINE=auto). A GPU worker keeps TensorFlow, so has no use
  # for it. Whatever fails here, workers run TensorFlow: the bake goes on.
  if [ "$gpu" = no ]; then
    log "engines: convert, check and measure ResNet-50 (ec2_worker.engines)"
    KERAS_HOME="$prefix/keras" "$prefix/venv/bin/python" -m ec2_worker.engines \
      || log "engines: not prepared; workers will prepare them at first start or run TensorFlow"
  fi
fi

log "systemd unit"
install -m 0755 "$source_dir/ami_build/fetch-settings" "$prefix/bin/fetch-settings"
install -m 0755 "$source_dir/ami_build/start-log-agent" "$prefix/bin/start-log-agent"
mkdir -p "$systemd_dir" "$log_dir"
sed -e "s#@PREFIX@#$prefix#g" -e "s#@LOG_DIR@#$log_dir#g" \
  "$source_dir/ami_build/skyclass-worker.service" >"$systemd_dir/skyclass-worker.service"
if [ "$system" = yes ] && command -v systemctl >/dev/null 2>&1; then
  chown -R skyclass "$prefix"
  systemctl daemon-reload
  systemctl enable skyclass-worker.service
fi

date -u +%Y-%m-%dT%H:%M:%SZ >"$prefix/READY"
log "ready"
