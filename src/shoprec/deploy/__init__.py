"""Operating shoprec on SageMaker: training jobs, model publishing, endpoint deployment, promotion, rollback.

This is tooling for operators (``shoprec sagemaker ...``), not part of the serving path. It talks to AWS
only through clients from :func:`shoprec.adapters.aws.clients.aws_client` (or clients passed in, which is
how tests point it at moto or a botocore ``Stubber``); the SageMaker Python SDK (the ``aws`` extra) is
imported by :mod:`shoprec.deploy.training_jobs` alone.

S3 layout in the artifact bucket::

    models/{version}/            one published bundle: manifest.json and every file it lists
    models/{version}/model.tar.gz  the same bundle as SageMaker's ModelDataUrl
    training/...                 training jobs: staged code, checkpoints, {job}/output/model.tar.gz

``{version}`` is the bundle's content hash (the 64 hex digits of ``manifest.model_version``).
"""
