"""Baking the worker AMI: ``provision.sh`` (what goes into the image) and ``bake``
(the driver that runs it on a builder instance and turns the result into an AMI)."""
