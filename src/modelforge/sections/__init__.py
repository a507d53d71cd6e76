"""The policy sections of a provider's config (``retry``, ``rate_limit``, ``cache``, ``optimizations``,
``batch``): their settings and validation, in the config layer.

``modelforge.config_schema`` validates a config file with them when it is loaded, and the policies that
use a section (``modelforge.policies``, ``modelforge.cache``, ``modelforge.optimizers``,
``modelforge.batch``) read it through them, so the schema never has to import the policies.
"""
