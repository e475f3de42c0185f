"""The runtime layer: everything the Lambdas and the workers import (see skyclass/__init__.py).
Nothing here imports ``skyclass.operations`` or ``ami_build``."""
