"""skyclass: elastic image classification on AWS.

This package is the core shared by every process in ARCHITECTURE.md's data flow: the
Lambdas (chalice_app/), the EC2 workers (ec2_worker/) and the local stack. It imports
only boto3 and the standard library, so it fits in the Lambda package.
"""

__version__ = "0.1.0"
