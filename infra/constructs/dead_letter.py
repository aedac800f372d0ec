"""The dead-letter queue: where every failed event waits, with its reason, to be redriven."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# SQS's maximum: two weeks to notice, fix and redrive.
RETENTION = Duration.days(14)


class DeadLetterQueue(Construct):
    """An encrypted queue (SQS-managed keys) whose policy refuses anything but TLS."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # SQS-managed encryption rather than a customer key: Lambda destinations, the scheduler and
        # the function itself can all send without a key policy to keep in step.
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=RETENTION,
            removal_policy=RemovalPolicy.RETAIN,
        )
