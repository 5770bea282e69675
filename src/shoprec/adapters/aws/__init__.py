"""AWS adapters: DynamoDB user state, ElastiCache (Redis) cache, S3 bundles and the SageMaker ranker.

Clients come from :func:`shoprec.adapters.aws.clients.aws_client`; endpoints from the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` variables, so the same code reaches moto or a local
ranking endpoint in tests.
"""
