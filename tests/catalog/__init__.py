"""Tests of the model catalogue, the models.dev client, EnhancedLLM and telemetry."""
