"""Deploying a stage to AWS: bake the worker AMI, bootstrap the stage's resources, run
``chalice deploy``, and tear it all down again (docs/deploy.md).

The pieces are small modules: ``chalice_project`` (the stage's entries in ``.chalice/``
and the ``chalice`` subprocess), ``bootstrap`` (skyclass.operations.provision plus those
entries), ``teardown`` and ``deployer`` (the one-command flow). Everything goes through
``AwsClients``, so the same code rehearses a deploy against ``skyclass emulator``.
"""
