"""One dynamic partition per campaign: the inbox sensor and `video-pipeline run` add them."""

from dagster import DynamicPartitionsDefinition

campaign_partitions = DynamicPartitionsDefinition(name="campaigns")
